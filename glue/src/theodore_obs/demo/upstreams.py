"""Local stand-ins for what the demo service calls out to: company pages and an LLM API.

The LLM endpoint answers ``POST /v1/chat/completions`` in OpenAI's response shape, token usage
included, so the OpenAI client and its instrumentation behave as against the real service.
Companies named ``broken-*`` fail to scrape (HTTP 500); prompts mentioning ``overload`` fail
at the LLM (HTTP 503). ``/faults`` switches whole outages on and off (see ``faults``).
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .faults import FaultSwitch, handle

FAULTS = FaultSwitch()


def company_page(name: str) -> str:
    return (f"<html><head><title>{name}</title></head><body><h1>{name}</h1>"
            f"<p>{name} builds tools for research teams. Founded in 2019, {name} serves "
            "customers in 12 countries and is hiring engineers.</p></body></html>")


def chat_completion(request: dict[str, Any], usage_factor: float = 1.0) -> dict[str, Any]:
    prompt = " ".join(str(m.get("content", "")) for m in request.get("messages", []))
    model = request.get("model", "gpt-4o-mini")
    prompt_tokens = int(max(1, len(prompt) // 4) * usage_factor)
    completion_tokens = int((40 + len(prompt) % 60) * usage_factor)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": f"{model}-2024-07-18",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant",
                                 "content": "A research-tools company with steady growth."}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _faults(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status, answer = handle(FAULTS, method, self.path, body)
        self._send(status, json.dumps(answer).encode(), "application/json")

    def do_PUT(self) -> None:
        self._faults("PUT")

    def do_DELETE(self) -> None:
        self._faults("DELETE")

    def do_GET(self) -> None:
        if self.path.startswith("/faults"):
            self._faults("GET")
            return
        if self.path == "/healthz":
            self._send(200, b"ok", "text/plain")
            return
        name = self.path.removeprefix("/companies/")
        if name == self.path or not name:
            self._send(404, b"not found", "text/plain")
        elif name.startswith("broken") or FAULTS.hits("error_burst"):
            self._send(500, b"upstream error", "text/plain")
        else:
            self._send(200, company_page(name).encode(), "text/html")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions":
            self._send(404, b"{}", "application/json")
        elif "overload" in json.dumps(request.get("messages", [])) or FAULTS.hits("ai_failures"):
            self._send(503, json.dumps({"error": {"message": "overloaded", "type": "server_error"}}).encode(),
                       "application/json")
        else:
            answer = chat_completion(request, FAULTS.factor("cost_spike"))
            self._send(200, json.dumps(answer).encode(), "application/json")

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
