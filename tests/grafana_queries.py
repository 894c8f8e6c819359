"""Run a dashboard target against the real Prometheus, VictoriaLogs or Jaeger, as Grafana would.

Variables are interpolated from their definitions (query variables are resolved against
Prometheus's label values or VictoriaLogs' field values, textboxes take their default), and
Grafana's macros get the values Grafana gives them for the dashboards' default range (last
hour): ``$__interval`` is the data source's ``timeInterval`` (the minimum wins over ~3.6 s per
point), ``$__rate_interval`` is max(4 x timeInterval, $__interval + timeInterval), ``$__range``
is 1h.

LogsQL targets go where the VictoriaLogs plugin (victoriametrics-logs-datasource 0.26.3, its
pkg/plugin/query.go) sends them: ``instant`` to /select/logsql/query with ``maxLines`` as the
limit, ``statsRange`` to /select/logsql/stats_query_range, each with the data source's tenant
headers. Their variables are filled the way the plugin's ``interpolateString`` fills the three
forms the dashboards use (src/datasource.ts): ``in($v)`` gets the JSON-quoted value, or the
variable's custom all value as is; ``:~"$v"`` gets ``(value)``; ``:="$v"`` the bare value.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from .grafana_support import LOGS, Target

RANGE_SECONDS = 3600
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


class AllValue(str):
    """A variable's custom all value: Grafana inserts it unformatted, in every data source."""


class LogsQLRejected(AssertionError):
    """VictoriaLogs answered HTTP 400 or 422: the query does not parse, or does not suit the
    endpoint (stats_query_range wants a query ending in ``| stats``)."""


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def get_json(url: str, params: dict[str, Any], timeout: float = 15, headers: dict[str, str] | None = None) -> Any:
    return json.loads(get_text(url, params, timeout, headers))


def get_text(url: str, params: dict[str, Any], timeout: float = 15, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(f"{url}?{urllib.parse.urlencode(params)}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read().decode()
    except urllib.error.HTTPError as failed:
        if failed.code in (400, 422) and "/select/logsql/" in url:
            raise LogsQLRejected(f"{params.get('query')!r}: {failed.read().decode().strip()}") from None
        raise


def logsql(text: str, values: dict[str, str]) -> str:
    """``text`` with the variables filled as the VictoriaLogs plugin fills them (see above)."""
    def fill(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name not in values:
            return match[0]
        value, before = values[name], text[:match.start()]
        if isinstance(value, AllValue):
            return str(value)
        if re.search(r"in\(\s*$", before):
            return json.dumps(value)
        if re.search(r':~\s*"$', before):
            return f"({value})"
        return value
    return VARIABLE.sub(fill, text)


@dataclass
class Grafanaish:
    """Base URLs of the data sources and the dashboard-wide values of one environment."""

    prometheus: str
    victorialogs: str
    jaeger: str
    time_interval: str
    environment: str
    log_headers: dict[str, str] = field(default_factory=dict)
    """The VictoriaLogs data source's ``multitenancyHeaders`` (AccountID, ProjectID)."""

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

    def field_values(self, query: dict[str, Any], variables: dict[str, str]) -> list[str]:
        """Resolve a VictoriaLogs ``fieldValue`` variable as the plugin's language provider does."""
        assert query["type"] == "fieldValue", query
        now_ms = int(time.time() * 1000)
        answer = self.logs("/select/logsql/field_values", {
            "query": logsql(query.get("query") or "*", variables), "field": query["field"],
            "limit": query["limit"], "start": now_ms - RANGE_SECONDS * 1000, "end": now_ms})
        return [v["value"] for v in json.loads(answer)["values"]]

    def logs(self, path: str, params: dict[str, Any]) -> str:
        return get_text(f"{self.victorialogs}{path}", params, headers=self.log_headers)

    def variables(self, board: dict[str, Any]) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Each variable's value (its default), and the values its query offers (a repeat's)."""
        values: dict[str, str] = {}
        options: dict[str, list[str]] = {}
        for var in board["templating"]["list"]:
            if var["type"] == "textbox":
                values[var["name"]] = var["query"]
                continue
            if var["datasource"]["type"] == LOGS:
                found = self.field_values(var["query"], values)
            else:
                found = self.label_values(var["definition"], values)
            options[var["name"]] = found
            current = var["current"]["value"]
            values[var["name"]] = AllValue(var["allValue"]) if current in ("$__all", ["$__all"]) else current
        return values, options

    def missing_defaults(self, board: dict[str, Any], options: dict[str, list[str]]) -> list[str]:
        """Variables whose default is not among the values their query offers."""
        return [f"dashboard {board['uid']!r}: ${var['name']} default {var['current']['value']!r} "
                f"not in {options[var['name']]}" for var in board["templating"]["list"]
                if var["type"] == "query" and var["current"]["value"] not in ("$__all", ["$__all"])
                and var["current"]["value"] not in options[var["name"]]]

    def interpolate(self, text: str, values: dict[str, str]) -> str:
        every = {**self.macros(), **values}
        return VARIABLE.sub(lambda m: every.get(m[1] or m[2], m[0]), text)

    def run(self, target: Target, values: dict[str, str]) -> int:
        """How many series, lines or traces the target returns."""
        now = time.time()
        if target.kind == LOGS:
            return self._run_logsql(target.body, values, now)
        body = json.loads(self.interpolate(json.dumps(target.body), values))
        if target.kind == "prometheus":
            if body["instant"]:
                data = get_json(f"{self.prometheus}/api/v1/query", {"query": body["expr"], "time": now})
            else:
                data = get_json(f"{self.prometheus}/api/v1/query_range",
                                {"query": body["expr"], "start": now - RANGE_SECONDS, "end": now,
                                 "step": self.time_interval})
            assert data["status"] == "success", (target.where(), data)
            return len(data["data"]["result"])
        tags = dict(pair.split("=", 1) for pair in body["tags"].split()) if body["tags"] else {}
        data = get_json(f"{self.jaeger}/api/traces",
                        {"service": body["service"], "tags": json.dumps(tags), "limit": body["limit"],
                         "start": int((now - RANGE_SECONDS) * 1e6), "end": int(now * 1e6)})
        return len(data["data"] or [])

    def _run_logsql(self, body: dict[str, Any], values: dict[str, str], now: float) -> int:
        params = {"query": logsql(body["expr"], values), "start": int(now - RANGE_SECONDS), "end": int(now)}
        if body["queryType"] == "statsRange":
            data = json.loads(self.logs("/select/logsql/stats_query_range",
                                        {**params, "step": body.get("step") or self.time_interval}))
            assert data["status"] == "success", data
            return len(data["data"]["result"])
        assert body["queryType"] == "instant", body
        lines = self.logs("/select/logsql/query", {**params, "limit": body["maxLines"]})
        return len([line for line in lines.splitlines() if line.strip()])
