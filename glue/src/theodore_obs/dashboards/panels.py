"""Grafana dashboard JSON built from plain Python: targets, panels, variables and a grid.

A ``Board`` places panels left to right in rows of 24 columns, numbers them and wraps, so ids
are unique and grid positions never overlap by construction (the structural tests check both
on the output anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LOGS = "victoriametrics-logs-datasource"
"""The VictoriaLogs plugin's data source type."""
DATASOURCES = {"prometheus": "prometheus", LOGS: "victorialogs", "jaeger": "jaeger"}
"""Data source type → the uid it is provisioned with (grafana/templates/provisioning)."""
MAX_LINES = 200
"""Lines a logs panel asks for (the most recent ones of its time range)."""

GRID_WIDTH = 24
SCHEMA_VERSION = 41


def datasource(kind: str) -> dict[str, str]:
    return {"type": kind, "uid": DATASOURCES[kind]}


def prom(expr: str, legend: str = "", *, instant: bool = False, exemplar: bool = False) -> dict[str, Any]:
    """A Prometheus target; instant ones feed stats, tables and bar gauges."""
    return {"datasource": datasource("prometheus"), "expr": expr, "legendFormat": legend or "__auto",
            "range": not instant, "instant": instant, "exemplar": exemplar}


def logsql(expr: str, legend: str = "", *, stats: bool = False) -> dict[str, Any]:
    """A VictoriaLogs target in the plugin's query model (its src/types.ts ``Query``).

    ``stats`` targets end in ``| stats by (...) count()`` and draw one series per group over the
    time range (``queryType`` ``statsRange``: /select/logsql/stats_query_range, one point per
    step); the others list the newest lines of the range (``instant``: /select/logsql/query
    with ``maxLines`` as its limit).
    """
    target = {"datasource": datasource(LOGS), "editorMode": "code", "expr": expr, "legendFormat": legend,
              "queryType": "statsRange" if stats else "instant"}
    return target if stats else {**target, "maxLines": MAX_LINES}


def jaeger_search(service: str, tags: str = "", limit: int = 20) -> dict[str, Any]:
    """Jaeger's trace search (``/api/traces``): ``tags`` is logfmt, e.g. ``error=true``."""
    return {"datasource": datasource("jaeger"), "queryType": "search", "service": service,
            "tags": tags, "limit": limit}


def alerts_annotation(selector: str) -> dict[str, Any]:
    """Mark when alerts matching ``selector`` (inside ALERTS{...}) fired, on every time series."""
    return {"name": "Firing alerts", "enable": True, "iconColor": "red",
            "datasource": datasource("prometheus"), "expr": f'ALERTS{{alertstate="firing", {selector}}}',
            "step": "60s", "titleFormat": "{{alertname}}", "textFormat": "{{severity}} {{service}}",
            "useValueForTime": False}


def link(title: str, url: str) -> dict[str, Any]:
    return {"title": title, "url": url, "targetBlank": True}


@dataclass
class Panel:
    """One visualization; ``options`` and ``field_config`` hold Grafana's per-type settings."""

    title: str
    type: str
    targets: list[dict[str, Any]]
    width: int = 12
    height: int = 8
    unit: str = "short"
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    field_config: dict[str, Any] = field(default_factory=dict)
    links: list[dict[str, Any]] = field(default_factory=list)
    repeat: str | None = None

    def to_json(self, panel_id: int, pos: dict[str, int]) -> dict[str, Any]:
        kind = self.targets[0]["datasource"]["type"]
        targets = [{"refId": chr(ord("A") + i), **t} for i, t in enumerate(self.targets)]
        panel = {
            "id": panel_id, "type": self.type, "title": self.title, "description": self.description,
            "gridPos": pos, "datasource": datasource(kind), "targets": targets,
            "fieldConfig": {"defaults": {"unit": self.unit, **self.field_config}, "overrides": []},
            "options": self.options, "links": self.links,
        }
        if self.repeat:
            panel.update(repeat=self.repeat, repeatDirection="h", maxPerRow=2)
        return panel


def timeseries(title: str, *targets: dict[str, Any], unit: str = "short", **kw: Any) -> Panel:
    options = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    return Panel(title, "timeseries", list(targets), unit=unit, options=options, **kw)


def stat(title: str, *targets: dict[str, Any], unit: str = "short", width: int = 4, height: int = 4,
         thresholds: list[tuple[float | None, str]] | None = None, **kw: Any) -> Panel:
    steps = [{"value": v, "color": c} for v, c in (thresholds or [(None, "green")])]
    return Panel(title, "stat", list(targets), width=width, height=height, unit=unit,
                 options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value",
                          "graphMode": "area"},
                 field_config={"thresholds": {"mode": "absolute", "steps": steps}}, **kw)


def table(title: str, *targets: dict[str, Any], **kw: Any) -> Panel:
    return Panel(title, "table", list(targets), options={"showHeader": True}, **kw)


def bargauge(title: str, *targets: dict[str, Any], **kw: Any) -> Panel:
    return Panel(title, "bargauge", list(targets),
                 options={"orientation": "horizontal", "displayMode": "gradient",
                          "reduceOptions": {"calcs": ["lastNotNull"]}}, **kw)


def logs(title: str, expr: str, **kw: Any) -> Panel:
    return Panel(title, "logs", [logsql(expr)], width=24, height=10,
                 options={"showTime": True, "wrapLogMessage": True, "enableLogDetails": True,
                          "sortOrder": "Descending", "dedupStrategy": "none"}, **kw)


def traces(title: str, target: dict[str, Any], **kw: Any) -> Panel:
    return Panel(title, "table", [target], **kw)


@dataclass
class Board:
    """A dashboard in the making: rows of panels, laid out as they are added."""

    uid: str
    title: str
    description: str
    tags: list[str]
    variables: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    _panels: list[dict[str, Any]] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_height: int = 0

    def _newline(self) -> None:
        self._y += self._row_height
        self._x, self._row_height = 0, 0

    def row(self, title: str) -> Board:
        if self._x:
            self._newline()
        self._panels.append({"id": len(self._panels) + 1, "type": "row", "title": title,
                             "collapsed": False, "panels": [],
                             "gridPos": {"x": 0, "y": self._y, "w": GRID_WIDTH, "h": 1}})
        self._y += 1
        return self

    def add(self, *panels: Panel) -> Board:
        for panel in panels:
            if self._x + panel.width > GRID_WIDTH:
                self._newline()
            pos = {"x": self._x, "y": self._y, "w": panel.width, "h": panel.height}
            self._panels.append(panel.to_json(len(self._panels) + 1, pos))
            self._x += panel.width
            self._row_height = max(self._row_height, panel.height)
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["theodore", *self.tags], "editable": True, "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION, "version": 1, "timezone": "browser",
            "time": {"from": "now-1h", "to": "now"}, "refresh": "30s",
            "templating": {"list": self.variables},
            "annotations": {"list": self.annotations},
            "links": [{"title": "Theodore dashboards", "type": "dashboards", "tags": ["theodore"],
                       "asDropdown": True, "includeVars": True, "keepTime": True}, *self.links],
            "panels": self._panels,
        }
