"""Where each backend answers: the spec's ports on 127.0.0.1, overridable by flag or env."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..components import component

URL_ENV = "THEODORE_OBS_{name}_URL"
"""Environment variable overriding one backend's base URL, e.g. ``THEODORE_OBS_VICTORIALOGS_URL``."""


@dataclass(frozen=True)
class Backends:
    """Base URLs of the APIs the operator CLI talks to."""

    prometheus: str
    alertmanager: str
    victorialogs: str
    vmalert: str
    jaeger: str
    grafana: str

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @staticmethod
    def title(name: str) -> str:
        """How a backend is written in help texts: ``VictoriaLogs``, ``Prometheus``."""
        return TITLES.get(name, name.capitalize())


TITLES = {"victorialogs": "VictoriaLogs"}
"""Backend names whose written form is not just capitalised."""


def backends_from_spec(spec: dict[str, Any], overrides: dict[str, str | None] | None = None,
                       host: str = "127.0.0.1") -> Backends:
    """The spec's addresses (Grafana from ``grafana.url``), with non-empty ``overrides`` winning."""
    ports = spec["ports"]
    found = {name: component(name).base_url(ports, host) for name in Backends.names() if name != "grafana"}
    found["grafana"] = spec.get("grafana", {}).get("url") or component("grafana").base_url(ports, host)
    found.update({k: v.rstrip("/") for k, v in (overrides or {}).items() if v})
    return Backends(**found)
