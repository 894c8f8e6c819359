"""Local stand-ins for the services the collector's integrations send to (``integrations.py``).

One HTTP server on 127.0.0.1 (an ephemeral port) answers ``/<integration>/<path>`` for each
:class:`Route` it is given. A route checks what the real service checks before it accepts a
request: the method and path, the credential header (a wrong or missing one gets 401, as the
services answer), the content type and the payload's shape (a malformed one gets 400). An
accepted request is recorded as a :class:`Received`, and then either answered like the
service or forwarded to a real server of that protocol (``upstream``), whose answer goes
back: VictoriaLogs speaks Elasticsearch's bulk API, Splunk's HEC and OTLP, so the data lands
in a store that can be queried.

Shape checks return the problems found (empty when the payload is valid), like the alert
receivers of ``receivers.py``:

- :func:`bulk_problems`: Elasticsearch ``_bulk`` NDJSON (an action line ``create``/``index``,
  then a JSON document, per item);
- :func:`hec_problems`: Splunk HEC events (concatenated JSON objects with ``event`` and a
  numeric ``time``);
- :func:`otlp_problems`: OTLP/HTTP protobuf for ``/v1/traces``, ``/v1/metrics`` and
  ``/v1/logs`` (needs ``opentelemetry-proto``, imported when used).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from ..timing import wait_until

__all__ = ["IntegrationReceivers", "Received", "Route", "bulk_problems", "hec_problems",
           "otlp_problems", "otlp_request"]


PASSED_BACK = ("Content-Type", "X-Elastic-Product")
"""Headers of an upstream's answer passed back (Elasticsearch clients require the product one)."""

Answer = tuple[int, dict[str, str], bytes]
"""Status, headers and body of an answer."""


@dataclass(frozen=True)
class Received:
    """One accepted request: the path after the route's prefix, its headers (lower-case
    names) and its body (decompressed)."""

    route: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.time)


@dataclass
class Route:
    """What one integration's service accepts at ``/<name>``.

    ``auth_header`` must equal ``auth_value`` (None: the service takes no credential; change
    ``auth_value`` to revoke a secret while running), and each of ``required_headers`` its
    value; ``paths`` are the accepted paths after the prefix; ``check`` finds problems in
    (path, body); ``upstream`` is the base URL to forward accepted requests to, at
    ``upstream_path`` (the query string kept), with ``upstream_headers`` added."""

    name: str
    auth_header: str | None
    auth_value: str | None
    paths: tuple[str, ...]
    check: Callable[[str, bytes], list[str]]
    content_types: tuple[str, ...] = ("application/json",)
    upstream: str | None = None
    upstream_path: str = ""
    upstream_headers: dict[str, str] = field(default_factory=dict)
    answer: tuple[int, str, bytes] = (200, "application/json", b"{}")
    required_headers: dict[str, str] = field(default_factory=dict)


def _json_problems(where: str, value: Any, keys: dict[str, type | tuple[type, ...]]) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where} is not a JSON object"]
    return [f"{where}.{key} must be {getattr(kind, '__name__', kind)}" for key, kind in keys.items()
            if not isinstance(value.get(key), kind)]


def bulk_problems(_path: str, body: bytes) -> list[str]:
    """What makes ``body`` an invalid Elasticsearch bulk request (empty when valid)."""
    lines = [line for line in body.decode("utf-8", "replace").split("\n") if line.strip()]
    if not lines or len(lines) % 2:
        return [f"expected action/document line pairs, got {len(lines)} lines"]
    problems = []
    for i in range(0, len(lines), 2):
        try:
            action, document = json.loads(lines[i]), json.loads(lines[i + 1])
        except json.JSONDecodeError as exc:
            problems.append(f"item {i // 2}: not JSON ({exc.msg})")
            continue
        if not isinstance(action, dict) or not set(action) & {"create", "index"}:
            problems.append(f"item {i // 2}: action must be create or index, got {lines[i][:80]!r}")
        if not isinstance(document, dict) or "@timestamp" not in document:
            problems.append(f"item {i // 2}: document without @timestamp")
    return problems


def hec_events(body: bytes) -> list[Any]:
    """The JSON objects of a HEC request (they are concatenated, not a list)."""
    decoder, text, events, at = json.JSONDecoder(), body.decode("utf-8", "replace"), [], 0
    while at < len(text):
        while at < len(text) and text[at].isspace():
            at += 1
        if at < len(text):
            event, at = decoder.raw_decode(text, at)
            events.append(event)
    return events


def hec_problems(_path: str, body: bytes) -> list[str]:
    """What makes ``body`` an invalid Splunk HEC event request (empty when valid)."""
    try:
        events = hec_events(body)
    except json.JSONDecodeError as exc:
        return [f"not concatenated JSON objects ({exc.msg})"]
    if not events:
        return ["no events"]
    problems = []
    for i, event in enumerate(events):
        problems += _json_problems(f"event {i}", event, {"time": (int, float)})
        if isinstance(event, dict) and "event" not in event:
            problems.append(f"event {i} has no event field")
    return problems


def otlp_request(path: str, body: bytes) -> Any:
    """The OTLP export request a ``/v1/<signal>`` path carries, decoded (ValueError if not)."""
    # opentelemetry-proto comes with the app side and the tests, not with the glue.
    from google.protobuf.message import DecodeError  # noqa: PLC0415
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2  # noqa: PLC0415
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2  # noqa: PLC0415
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: PLC0415

    kinds = {"traces": trace_service_pb2.ExportTraceServiceRequest,
             "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
             "logs": logs_service_pb2.ExportLogsServiceRequest}
    signal = path.rstrip("/").rsplit("/", 1)[-1]
    if signal not in kinds:
        raise ValueError(f"{path} is not an OTLP signal path")
    request = kinds[signal]()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise ValueError(f"not an OTLP {signal} request ({exc})") from None
    return request


def otlp_problems(path: str, body: bytes) -> list[str]:
    """What makes ``body`` an invalid OTLP/HTTP protobuf export for ``path`` (empty when valid)."""
    try:
        request = otlp_request(path, body)
    except ValueError as exc:
        return [str(exc)]
    # An export with no resource at all is valid OTLP (the span metrics connector sends one at its
    # first flush when no span has arrived yet); a resource without its service is not ours.
    resources = [*getattr(request, "resource_spans", []), *getattr(request, "resource_metrics", []),
                 *getattr(request, "resource_logs", [])]
    return [] if all(r.resource.attributes for r in resources) else ["a resource without attributes"]


def _passed_back(headers: Any) -> dict[str, str]:
    return {name: headers[name] for name in PASSED_BACK if headers.get(name)}


def _same_credential(header: str, got: str | None, expected: str | None) -> bool:
    """Whether a credential header matches; an ``Authorization`` scheme in any case (RFC 9110:
    Elasticsearch takes ``APIKey`` and ``ApiKey`` alike)."""
    if got is None or expected is None:
        return False
    if header.lower() != "authorization":
        return got == expected
    (scheme, _, token), (want_scheme, _, want_token) = got.partition(" "), expected.partition(" ")
    return scheme.lower() == want_scheme.lower() and token == want_token


class IntegrationReceivers:
    """The local services, one :class:`Route` per integration; a context manager."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = {route.name: route for route in routes}
        self.received: list[Received] = []
        self.refused: list[tuple[str, int, str]] = []  # (route, status, why)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str, path: str = "") -> str:
        """The base URL of route ``name`` (what the spec's endpoint is set to), plus ``path``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{name}{path}"

    def of(self, name: str, predicate: Callable[[Received], bool] = lambda _: True) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.route == name and predicate(r)]

    def refusals(self, name: str) -> list[tuple[str, int, str]]:
        with self._lock:
            return [r for r in self.refused if r[0] == name]

    def wait_for(self, name: str, predicate: Callable[[Received], bool], timeout: float = 60) -> Received:
        """The first request to ``name`` matching ``predicate``; AssertionError after ``timeout``."""
        found = wait_until(lambda: self.of(name, predicate), timeout, every=0.2)
        if not found:
            raise AssertionError(f"no matching request to {name} within {timeout}s: "
                                 f"{len(self.of(name))} accepted, refused: {self.refusals(name)[-3:]!r}")
        return found[0]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _refuse(self, route: str, status: int, why: str) -> Answer:
        with self._lock:
            self.refused.append((route, status, why))
        return status, {"Content-Type": "application/json"}, json.dumps({"error": why}).encode()

    @staticmethod
    def _problem(route: Route, method: str, rest: str, headers: dict[str, str]) -> tuple[int, str] | None:
        """The status and reason the service would refuse this request with, before its body."""
        if method != "POST" or rest.partition("?")[0] not in route.paths:
            return 404, f"{method} {rest}: not an accepted path"
        got = headers.get((route.auth_header or "").lower())
        if route.auth_header and not _same_credential(route.auth_header, got, route.auth_value):
            shown = f"{got.split()[0]!r}…, {len(got)} characters" if got else "none"
            return 401, f"{route.auth_header}: missing or wrong (got {shown})"
        wrong = [k for k, v in route.required_headers.items() if headers.get(k.lower()) != v]
        if wrong:
            return 400, f"headers {wrong} missing or wrong"
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type not in route.content_types:
            return 415, f"content-type {content_type!r}"
        return None

    def _accept(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        name, _, rest = path.lstrip("/").partition("/")
        route, rest = self.routes.get(name), "/" + rest
        if route is None:
            return 404, {"Content-Type": "text/plain"}, b"no such integration"
        refusal = self._problem(route, method, rest, headers)
        if refusal:
            return self._refuse(name, *refusal)
        body = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
        problems = route.check(rest, body)
        if problems:
            return self._refuse(name, 400, f"{rest}: " + "; ".join(problems[:5]))
        with self._lock:
            self.received.append(Received(name, rest, headers, body))
        if route.upstream:
            return self._forward(route, rest, headers, raw)
        status, content_type, answer = route.answer
        return status, {"Content-Type": content_type}, answer

    @staticmethod
    def _forward(route: Route, rest: str, headers: dict[str, str], raw: bytes) -> Answer:
        """Pass an accepted request on to the real server (http only: a test's loopback one)."""
        query = rest.partition("?")[2]
        url = f"{route.upstream}{route.upstream_path}{'?' + query if query else ''}"
        if not url.startswith("http://"):
            raise ValueError(f"upstream {url!r}: expected http://")
        passed = {k: v for k, v in headers.items() if k in ("content-type", "content-encoding")}
        request = urllib.request.Request(url, data=raw, method="POST",  # noqa: S310 (http only, above)
                                         headers={**passed, **route.upstream_headers})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (http only, above)
                return answer.status, _passed_back(answer.headers), answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, _passed_back(exc.headers), exc.read()
        except OSError as exc:  # the upstream is down: a gateway's answer, retryable
            return 502, {"Content-Type": "text/plain"}, f"upstream: {exc}".encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length", 0)))
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)

            def _answer(self) -> None:
                raw = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer_headers, body = receivers._accept(self.command, self.path, headers, raw)
                self.send_response(status)
                for name, value in answer_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = do_HEAD = _answer

            def log_message(self, *_: Any) -> None:
                pass

        return Handler
