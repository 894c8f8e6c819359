"""Reading the rendered dashboards the way Grafana does: panels, targets, variables, macros."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .conftest import ROOT

VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
LOGS = "victoriametrics-logs-datasource"
"""The VictoriaLogs plugin's data source type."""
BUILTIN = {"__rate_interval", "__interval", "__interval_ms", "__range", "__auto", "__from", "__to",
           "__all", "__tags", "__field", "__value", "__span", "__trace"}


def rendered(env: str) -> Path:
    return ROOT / "rendered" / env / "grafana"


def dashboards(env: str) -> dict[str, dict[str, Any]]:
    """Relative path under grafana/dashboards → the dashboard JSON."""
    base = rendered(env) / "dashboards"
    return {str(p.relative_to(base)): json.loads(p.read_text()) for p in sorted(base.rglob("*.json"))}


def provisioned_datasources(env: str) -> dict[str, dict[str, Any]]:
    text = (rendered(env) / "provisioning" / "datasources" / "datasources.yaml").read_text()
    return {ds["uid"]: ds for ds in yaml.safe_load(text)["datasources"]}


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    repeat: str | None
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.body["datasource"]["type"]

    @property
    def query(self) -> str:
        return self.body.get("expr") or json.dumps({k: self.body.get(k) for k in ("service", "tags")})

    def where(self) -> str:
        return f"dashboard {self.dashboard!r}, panel {self.panel!r}, query {self.query!r}"


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(board: dict[str, Any]) -> Iterator[Target]:
    for panel in panels(board):
        for body in panel.get("targets", []):
            yield Target(board["uid"], panel["title"], panel.get("repeat"), body)


def variables_used(value: Any) -> set[str]:
    text = json.dumps(value)
    return {a or b for a, b in VARIABLE.findall(text)} - BUILTIN
