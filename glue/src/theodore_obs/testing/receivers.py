"""Local stand-ins for the SaaS that Alertmanager notifies: they check the payload and record it.

One HTTP server on 127.0.0.1 (an ephemeral port) answers three kinds of path:

- ``/slack/...``: a Slack incoming webhook (JSON with ``text`` or ``attachments``; answers
  ``ok`` like Slack);
- ``/pagerduty/...``: PagerDuty's Events API v2 ``enqueue`` (``routing_key``, ``event_action``,
  ``dedup_key``, ``payload.summary/source/severity`` for triggers, ``links``; answers 202 with
  the dedup key like PagerDuty);
- ``/webhook/...``: Alertmanager's generic webhook (version 4 JSON);

and an SMTP server (``smtp_address``) records mail as ``email`` deliveries.

A payload of the wrong shape gets HTTP 400 and lands in ``failures`` with every problem found,
so a test can assert both that notifications arrived and that none was malformed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlparse

from ..timing import wait_until
from .smtp import SMTPSink

PAGERDUTY_ACTIONS = {"trigger", "acknowledge", "resolve"}
PAGERDUTY_SEVERITIES = {"critical", "error", "warning", "info"}
INCIDENT_STATES = {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}
"""The state an event leaves its PagerDuty incident in."""


@dataclass(frozen=True)
class Delivery:
    """One accepted notification."""

    kind: str
    path: str
    body: dict[str, Any]
    received_at: float = field(default_factory=time.time)


def _is_url(value: Any) -> bool:
    parsed = urlparse(value) if isinstance(value, str) else None
    return bool(parsed and parsed.scheme in ("http", "https") and parsed.netloc)


def _attachment_problems(where: str, attachment: Any) -> list[str]:
    if not isinstance(attachment, dict):
        return [f"{where} is not an object"]
    problems = []
    if not any(isinstance(attachment.get(k), str) and attachment[k] for k in ("fallback", "text", "title")):
        problems.append(f"{where} has no fallback, text or title")
    for j, action in enumerate(attachment.get("actions", [])):
        if action.get("type") != "button" or not action.get("text"):
            problems.append(f"{where}.actions[{j}] is not a button with text")
        if "url" in action and not _is_url(action["url"]):
            problems.append(f"{where}.actions[{j}].url is not an http(s) URL: {action['url']!r}")
        elif "url" not in action and not (action.get("name") and action.get("value")):
            problems.append(f"{where}.actions[{j}] needs a url, or a name and a value")
    if "title_link" in attachment and not _is_url(attachment["title_link"]):
        problems.append(f"{where}.title_link is not an http(s) URL")
    return problems


def slack_problems(body: Any) -> list[str]:
    """What makes ``body`` an invalid Slack incoming-webhook message (empty when valid)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    problems = []
    attachments = body.get("attachments")
    if not body.get("text") and not attachments:
        problems.append("neither text nor attachments")
    for key in ("channel", "username", "text"):
        if key in body and not isinstance(body[key], str):
            problems.append(f"{key} is not a string")
    if attachments is not None and not isinstance(attachments, list):
        return [*problems, "attachments is not a list"]
    for i, attachment in enumerate(attachments or []):
        problems += _attachment_problems(f"attachments[{i}]", attachment)
    return problems


def pagerduty_problems(body: Any) -> list[str]:
    """What makes ``body`` an invalid PagerDuty Events API v2 event (empty when valid)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    problems = []
    key = body.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        problems.append("routing_key must be a 32-character string")
    action = body.get("event_action")
    if action not in PAGERDUTY_ACTIONS:
        problems.append(f"event_action must be one of {sorted(PAGERDUTY_ACTIONS)}, got {action!r}")
    dedup = body.get("dedup_key")
    if action in ("acknowledge", "resolve") and not dedup:
        problems.append(f"{action} needs a dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        problems.append("dedup_key must be a string of at most 255 characters")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            return [*problems, "trigger needs a payload object"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary or len(summary) > 1024:
            problems.append("payload.summary must be a non-empty string of at most 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            problems.append("payload.source must be a non-empty string")
        if payload.get("severity") not in PAGERDUTY_SEVERITIES:
            problems.append(f"payload.severity must be one of {sorted(PAGERDUTY_SEVERITIES)}, "
                            f"got {payload.get('severity')!r}")
    for i, link in enumerate(body.get("links") or []):
        if not isinstance(link, dict) or not _is_url(link.get("href")):
            problems.append(f"links[{i}].href is not an http(s) URL")
    return problems


def webhook_problems(body: Any) -> list[str]:
    """What makes ``body`` an invalid Alertmanager webhook notification (empty when valid)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    problems = []
    if body.get("version") != "4":
        problems.append(f"version must be '4', got {body.get('version')!r}")
    if body.get("status") not in ("firing", "resolved"):
        problems.append("status must be firing or resolved")
    alerts = body.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        problems.append("alerts must be a non-empty list")
    elif not all(isinstance(a, dict) and isinstance(a.get("labels"), dict) for a in alerts):
        problems.append("every alert needs a labels object")
    return problems


def email_problems(message: dict[str, Any]) -> list[str]:
    """What makes a received mail unusable as an alert notification (empty when fine)."""
    problems = [f"no {key}" for key in ("from", "to", "subject") if not message.get(key)]
    if not message.get("text") and not message.get("html"):
        problems.append("no text or HTML body")
    return problems


CHECKS: dict[str, Callable[[Any], list[str]]] = {
    "slack": slack_problems, "pagerduty": pagerduty_problems, "webhook": webhook_problems}


class Receivers:
    """The local receivers; use as a context manager or call ``close()``."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.failures: list[tuple[str, str, list[str]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._smtp = SMTPSink(self._record_email)

    @property
    def smtp_address(self) -> str:
        """host:port of the SMTP server (no STARTTLS: receivers need ``require_tls: false``)."""
        return self._smtp.address

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, kind: str, name: str = "default") -> str:
        if kind not in CHECKS:
            raise ValueError(f"unknown receiver kind {kind!r}")
        return f"{self.base}/{kind}/{name}"

    def of(self, kind: str, predicate: Callable[[Delivery], bool] = lambda _: True) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.kind == kind and predicate(d)]

    def incidents(self) -> dict[str, str]:
        """PagerDuty's incidents as the accepted events leave them: dedup_key → ``triggered``,
        ``acknowledged`` or ``resolved`` (one incident per key; an acknowledge or resolve for a
        key never triggered changes nothing, as at PagerDuty)."""
        found: dict[str, str] = {}
        for d in self.of("pagerduty"):
            key, action = d.body.get("dedup_key"), d.body["event_action"]
            if key and (action == "trigger" or key in found):
                found[key] = INCIDENT_STATES[action]
        return found

    def wait_for(self, kind: str, predicate: Callable[[Delivery], bool], timeout: float = 60) -> Delivery:
        """The first ``kind`` delivery matching ``predicate``; AssertionError after ``timeout``."""
        found = wait_until(lambda: self.of(kind, predicate), timeout, every=0.1)
        if not found:
            raise AssertionError(f"no matching {kind} notification within {timeout}s; got "
                                 f"{[d.body for d in self.of(kind)]!r}; malformed: {self.failures!r}")
        return found[0]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._smtp.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _record_email(self, message: dict[str, Any]) -> None:
        problems = email_problems(message)
        with self._lock:
            if problems:
                self.failures.append(("email", "smtp", problems))
            else:
                self.deliveries.append(Delivery("email", "smtp", message))

    def _record(self, kind: str, path: str, raw: bytes) -> tuple[int, bytes, str]:
        try:
            body = json.loads(raw)
        except ValueError:
            body, problems = None, ["body is not JSON"]
        else:
            problems = CHECKS[kind](body)
        with self._lock:
            if problems:
                self.failures.append((kind, path, problems))
            else:
                self.deliveries.append(Delivery(kind, path, body))
        if problems:
            answer = {"status": "invalid event", "errors": problems}
            return 400, json.dumps(answer).encode(), "application/json"
        if kind == "pagerduty":
            answer = {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")}
            return 202, json.dumps(answer).encode(), "application/json"
        return 200, b"ok", "text/plain"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                kind = self.path.strip("/").split("/", 1)[0]
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if kind not in CHECKS:
                    status, body, ctype = 404, b"no such receiver", "text/plain"
                else:
                    status, body, ctype = receivers._record(kind, self.path, raw)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
