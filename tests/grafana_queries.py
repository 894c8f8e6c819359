"""Run a dashboard target against the real Prometheus, Loki or Jaeger, as Grafana would.

Variables are interpolated from their definitions (query variables are resolved against
Prometheus, textboxes take their default), and Grafana's macros get the values Grafana gives
them for the dashboards' default range (last hour): ``$__interval`` is the data source's
``timeInterval`` (the minimum wins over ~3.6 s per point), ``$__rate_interval`` is
max(4 x timeInterval, $__interval + timeInterval), ``$__range`` is 1h.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from .grafana_support import Target

RANGE_SECONDS = 3600


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def get_json(url: str, params: dict[str, Any], timeout: float = 15) -> Any:
    with urllib.request.urlopen(f"{url}?{urllib.parse.urlencode(params)}", timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class Grafanaish:
    """Base URLs of the data sources and the dashboard-wide values of one environment."""

    prometheus: str
    loki: str
    jaeger: str
    time_interval: str
    environment: str

    def macros(self) -> dict[str, str]:
        interval = _seconds(self.time_interval)
        return {"__rate_interval": f"{max(4 * interval, 2 * interval)}s", "__interval": f"{interval}s",
                "__auto": f"{interval}s", "__range": f"{RANGE_SECONDS}s"}

    def label_values(self, definition: str, variables: dict[str, str]) -> list[str]:
        """Resolve ``label_values(selector, label)`` the way Grafana's Prometheus source does."""
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", self.interpolate(definition, variables))
        assert match, definition
        selector, label = match.groups()
        result = get_json(f"{self.prometheus}/api/v1/label/{label}/values",
                          {"match[]": selector, "start": time.time() - RANGE_SECONDS})
        return result["data"]

    def variables(self, board: dict[str, Any]) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Each variable's value in a regex context, and the values a repeat iterates over."""
        values: dict[str, str] = {}
        options: dict[str, list[str]] = {}
        for var in board["templating"]["list"]:
            if var["type"] == "textbox":
                values[var["name"]] = var["query"]
                continue
            found = self.label_values(var["definition"], values)
            options[var["name"]] = found
            current = var["current"]["value"]
            values[var["name"]] = var["allValue"] if current in ("$__all", ["$__all"]) else current
        return values, options

    def missing_defaults(self, board: dict[str, Any], options: dict[str, list[str]]) -> list[str]:
        """Variables whose default is not among the values their query offers."""
        return [f"dashboard {board['uid']!r}: ${var['name']} default {var['current']['value']!r} "
                f"not in {options[var['name']]}" for var in board["templating"]["list"]
                if var["type"] == "query" and var["current"]["value"] not in ("$__all", ["$__all"])
                and var["current"]["value"] not in options[var["name"]]]

    def interpolate(self, text: str, values: dict[str, str]) -> str:
        every = {**self.macros(), **values}
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: every.get(m[1] or m[2], m[0]), text)

    def run(self, target: Target, values: dict[str, str]) -> int:
        """How many series, streams or traces the target returns."""
        body = json.loads(self.interpolate(json.dumps(target.body), values))
        now = time.time()
        if target.kind == "prometheus":
            if body["instant"]:
                data = get_json(f"{self.prometheus}/api/v1/query", {"query": body["expr"], "time": now})
            else:
                data = get_json(f"{self.prometheus}/api/v1/query_range",
                                {"query": body["expr"], "start": now - RANGE_SECONDS, "end": now,
                                 "step": self.time_interval})
            assert data["status"] == "success", (target.where(), data)
            return len(data["data"]["result"])
        if target.kind == "loki":
            data = get_json(f"{self.loki}/loki/api/v1/query_range",
                            {"query": body["expr"], "start": int((now - RANGE_SECONDS) * 1e9),
                             "end": int(now * 1e9), "limit": 50, "step": self.time_interval})
            return len(data["data"]["result"])
        tags = dict(pair.split("=", 1) for pair in body["tags"].split()) if body["tags"] else {}
        data = get_json(f"{self.jaeger}/api/traces",
                        {"service": body["service"], "tags": json.dumps(tags), "limit": body["limit"],
                         "start": int((now - RANGE_SECONDS) * 1e6), "end": int(now * 1e6)})
        return len(data["data"] or [])
