"""Health checks for Theodore apps: liveness, readiness and a status report, as JSON.

``/healthz`` answers while the process can serve at all; ``/readyz`` is 200 only when every
critical dependency check passes (503 otherwise); ``/status`` reports every check with its
state and latency. ``HealthWSGIMiddleware`` serves the three paths in front of any WSGI app;
blackbox_exporter probes them.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    name: str
    healthy: bool
    critical: bool
    latency_ms: float
    detail: str


@dataclass(frozen=True)
class _Check:
    name: str
    probe: Callable[[], str]
    critical: bool

    def run(self) -> CheckResult:
        start = time.perf_counter()
        try:
            detail, healthy = self.probe(), True
        except Exception as exc:
            detail, healthy = f"{type(exc).__name__}: {exc}", False
        latency = round((time.perf_counter() - start) * 1000, 2)
        return CheckResult(self.name, healthy, self.critical, latency, detail)


class HealthChecks:
    """A set of dependency checks, run concurrently on each readiness or status request."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._checks: list[_Check] = []

    def add_callable(self, name: str, probe: Callable[[], object], critical: bool = True) -> None:
        """A check that passes when ``probe()`` returns without raising."""
        self._checks.append(_Check(name, lambda: str(probe() or "ok"), critical))

    def add_http(self, name: str, url: str, timeout: float = 2.0, critical: bool = True) -> None:
        def probe() -> str:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (configured URL)
                return f"HTTP {response.status}"

        self._checks.append(_Check(name, probe, critical))

    def add_tcp(self, name: str, host: str, port: int, timeout: float = 2.0,
                critical: bool = True) -> None:
        def probe() -> str:
            with socket.create_connection((host, port), timeout=timeout):
                return f"connected to {host}:{port}"

        self._checks.append(_Check(name, probe, critical))

    def run(self) -> list[CheckResult]:
        if not self._checks:
            return []
        with ThreadPoolExecutor(max_workers=len(self._checks)) as pool:
            return list(pool.map(_Check.run, self._checks))

    def liveness(self) -> tuple[int, dict[str, Any]]:
        return 200, {"service": self.service, "status": "alive"}

    def readiness(self) -> tuple[int, dict[str, Any]]:
        results = self.run()
        ready = all(r.healthy for r in results if r.critical)
        failing = [r.name for r in results if r.critical and not r.healthy]
        return (200 if ready else 503), {"service": self.service,
                                         "status": "ready" if ready else "not ready",
                                         "failing": failing}

    def status(self) -> tuple[int, dict[str, Any]]:
        results = self.run()
        if all(r.healthy for r in results):
            overall = "healthy"
        elif all(r.healthy for r in results if r.critical):
            overall = "degraded"
        else:
            overall = "unhealthy"
        return 200, {"service": self.service, "status": overall,
                     "checks": [asdict(r) for r in results]}


class HealthWSGIMiddleware:
    """Serves ``/healthz``, ``/readyz`` and ``/status`` before the wrapped WSGI app sees them."""

    def __init__(self, app: Callable[..., Iterable[bytes]], checks: HealthChecks) -> None:
        self.app = app
        self.routes = {"/healthz": checks.liveness, "/readyz": checks.readiness, "/status": checks.status}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route = self.routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            return self.app(environ, start_response)
        code, body = route()
        payload = json.dumps(body).encode()
        reason = "OK" if code == 200 else "Service Unavailable"
        start_response(f"{code} {reason}", [("Content-Type", "application/json"),
                                            ("Content-Length", str(len(payload)))])
        return [payload]
