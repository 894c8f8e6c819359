"""Where each running component answers: its readiness URL and the API that names its version."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from .clients._http import get_json, open_url, summarise
from .components import VersionFormat, native_components
from .spec import observed_services


@dataclass(frozen=True)
class Endpoint:
    component: str
    ready_url: str
    version_url: str | None = None
    version_format: VersionFormat = "build_info"


@dataclass(frozen=True)
class Health:
    component: str
    healthy: bool
    detail: str
    latency_ms: float
    version: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stack_endpoints(spec: dict[str, Any], host: str = "127.0.0.1") -> list[Endpoint]:
    """Each natively run component's readiness URL and version API, from the registry."""
    p = spec["ports"]
    return [Endpoint(c.name, c.health_url(p, host), c.version_url(p, host), c.version_format)
            for c in native_components()]


def service_endpoints(spec: dict[str, Any], host: str = "127.0.0.1") -> list[Endpoint]:
    """Each observed app's health endpoint (the demo service when it runs)."""
    return [Endpoint(name, f"http://{host}:{svc['port']}{svc['health_path']}")
            for name, svc in observed_services(spec).items()]


VM_APP_VERSION = re.compile(r'^vm_app_version\{[^}]*short_version="v?([^"]+)"', re.MULTILINE)
"""The version line of a VictoriaMetrics component's /metrics (VictoriaLogs, vmalert)."""


def _version(url: str | None, timeout: float, kind: VersionFormat = "build_info") -> str | None:
    """The version a component's build-info API (or its VictoriaMetrics-style /metrics) names,
    or None for any other answer."""
    if url is None:
        return None
    if kind == "vm_metrics":
        try:
            status, body, _kind = open_url(url, timeout)
        except (OSError, ValueError):
            return None
        found = VM_APP_VERSION.search(body.decode(errors="replace")) if status == 200 else None
        return found.group(1) if found else None
    status, data = get_json(url, timeout)
    info = data.get("data", data) if status == 200 and isinstance(data, dict) else None
    if not isinstance(info, dict):
        return None
    nested = info.get("versionInfo")
    version = info.get("version") or (nested.get("version") if isinstance(nested, dict) else None)
    return version if isinstance(version, str) else None


def probe(endpoint: Endpoint, timeout: float = 2.0) -> Health:
    start = time.monotonic()
    try:
        status, body, kind = open_url(endpoint.ready_url, timeout)
        healthy = status == 200
        detail = f"HTTP {status}" + ("" if healthy else f": {summarise(body, kind)}")
    except (OSError, ValueError) as exc:
        healthy, detail = False, f"not answering ({getattr(exc, 'reason', exc)})"
    latency = (time.monotonic() - start) * 1000
    version = _version(endpoint.version_url, timeout, endpoint.version_format) if healthy else None
    return Health(endpoint.component, healthy, detail, round(latency, 1), version)


def probe_all(endpoints: list[Endpoint], timeout: float = 2.0) -> list[Health]:
    with ThreadPoolExecutor(max_workers=len(endpoints) or 1) as pool:
        return list(pool.map(lambda e: probe(e, timeout), endpoints))
