"""Health checks: liveness always, readiness by critical checks, status with every check."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from theodore_telemetry.health import HealthChecks, HealthWSGIMiddleware


@pytest.fixture
def http_dependency():
    """A real HTTP server on loopback that answers 200."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(app, path: str) -> tuple[str, dict]:
    seen: dict = {}

    def start_response(status, headers):
        seen["status"] = status

    body = b"".join(app({"PATH_INFO": path}, start_response))
    return seen["status"], json.loads(body)


def test_readiness_follows_critical_checks_and_status_lists_all(http_dependency: str) -> None:
    checks = HealthChecks("demo")
    checks.add_http("pages", http_dependency)
    checks.add_tcp("cache", "127.0.0.1", _closed_port(), critical=False)
    checks.add_callable("store", lambda: "sqlite ok")
    app = HealthWSGIMiddleware(lambda e, s: [b"app"], checks)
    assert _call(app, "/readyz") == ("200 OK", {"service": "demo", "status": "ready", "failing": []})
    status_line, report = _call(app, "/status")
    assert status_line == "200 OK"
    assert report["status"] == "degraded"
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["pages"]["healthy"] and by_name["pages"]["detail"] == "HTTP 200"
    assert not by_name["cache"]["healthy"] and "Connection" in by_name["cache"]["detail"]
    assert by_name["store"]["detail"] == "sqlite ok" and by_name["store"]["latency_ms"] >= 0


def test_a_failing_critical_check_makes_the_app_not_ready_but_alive() -> None:
    checks = HealthChecks("demo")

    def broken() -> None:
        raise RuntimeError("disk full")

    checks.add_callable("store", broken)
    app = HealthWSGIMiddleware(lambda e, s: [b"app"], checks)
    assert _call(app, "/readyz") == ("503 Service Unavailable",
                                     {"service": "demo", "status": "not ready", "failing": ["store"]})
    assert _call(app, "/healthz") == ("200 OK", {"service": "demo", "status": "alive"})
    assert _call(app, "/status")[1]["checks"][0]["detail"] == "RuntimeError: disk full"


def test_other_paths_reach_the_app() -> None:
    app = HealthWSGIMiddleware(lambda e, s: [b"app"], HealthChecks("demo"))
    assert app({"PATH_INFO": "/research"}, lambda *a: None) == [b"app"]
