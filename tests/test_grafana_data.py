"""Every dashboard panel shows data on the native stack with the demo load, and the data
sources' links between signals resolve: each query runs against the real Prometheus,
VictoriaLogs and Jaeger the way Grafana would send it (see grafana_queries).

The stack runs on the spec's ports shifted by PORT_OFFSET, in a temporary state directory.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .conftest import native_stack
from .grafana_queries import Grafanaish, LogsQLRejected, get_json, logsql
from .grafana_support import LOGS, Target, dashboards, targets

PORT_OFFSET = 12900
DATA_TIMEOUT = 300
"""Seconds a fresh stack gets to fill every panel (apps push every 15 s; rates need two)."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running native stack with the demo and its load; yields where its configs are."""
    for info in native_stack(tmp_path_factory.mktemp("grafana-data"), PORT_OFFSET):
        assert info["up"].returncode == 0, info["up"].stdout + info["up"].stderr
        _fail_some_requests(info["spec"])
        yield {"config": info["state"].config}


def _fail_some_requests(spec: dict[str, Any]) -> None:
    """The background load rarely fails (it stays within the SLO): error panels get these."""
    base = f"http://127.0.0.1:{spec['services']['theodore-demo']['port']}/research"
    for query in ["company=broken-acme", "company=broken-globex", "company=acme&note=overload"] * 3:
        try:
            urllib.request.urlopen(f"{base}?{query}", timeout=10).read()
        except urllib.error.HTTPError as failed:
            assert failed.code in (502, 503), failed


@pytest.fixture(scope="module")
def sources(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Data source uid → its definition in the natively rendered provisioning file."""
    provisioning = stack["config"] / "grafana/provisioning/datasources/datasources.yaml"
    return {ds["uid"]: ds for ds in yaml.safe_load(provisioning.read_text())["datasources"]}


@pytest.fixture(scope="module")
def grafana(sources: dict[str, dict[str, Any]]) -> Grafanaish:
    """Queries sent where, and with the intervals, the provisioned data sources say."""
    logs = sources["victorialogs"]
    return Grafanaish(prometheus=sources["prometheus"]["url"], victorialogs=logs["url"],
                      jaeger=sources["jaeger"]["url"],
                      time_interval=sources["prometheus"]["jsonData"]["timeInterval"],
                      environment="local", log_headers=logs["jsonData"]["multitenancyHeaders"])


@pytest.fixture(scope="module")
def boards(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The dashboards the native runtime rendered (what a native Grafana loads)."""
    base = stack["config"] / "grafana/dashboards"
    found = {str(p.relative_to(base)): json.loads(p.read_text()) for p in sorted(base.rglob("*.json"))}
    assert found.keys() == dashboards("local").keys()
    return found


def _empty_targets(grafana: Grafanaish, boards: dict[str, dict[str, Any]]) -> list[str]:
    empty = []
    for board in boards.values():
        values, options = grafana.variables(board)
        empty += grafana.missing_defaults(board, options)
        for target in targets(board):
            runs = [{**values, target.repeat: v} for v in options[target.repeat]] if target.repeat else [values]
            if not runs:
                empty.append(f"{target.where()}: repeats over ${target.repeat}, which has no values")
            empty += [target.where() for run in runs if grafana.run(target, run) == 0]
    return empty


def test_every_logsql_query_parses(grafana: Grafanaish, boards: dict[str, dict[str, Any]],
                                   sources: dict[str, Any]) -> None:
    """VictoriaLogs answers 400 to a query it cannot parse: no panel, variable or link may get one."""
    rejected = []

    def check(where: str, run: Any) -> None:
        try:
            run()
        except LogsQLRejected as bad:
            rejected.append(f"{where}: {bad}")

    for board in boards.values():
        try:
            values, _ = grafana.variables(board)
        except LogsQLRejected as bad:
            rejected.append(f"dashboard {board['uid']!r}, its variables: {bad}")
            continue
        for target in targets(board):
            if target.kind == LOGS:
                check(target.where(), lambda target=target, values=values: grafana.run(target, values))
    to_logs = sources["jaeger"]["jsonData"]["tracesToLogsV2"]["query"]
    check("jaeger tracesToLogsV2", lambda: grafana.logs("/select/logsql/query", {
        "query": to_logs.replace("$${__trace.traceId}", "0" * 32), "limit": 1}))
    assert not rejected, "LogsQL that VictoriaLogs rejects:\n" + "\n".join(rejected)
    assert any(t.kind == LOGS for board in boards.values() for t in targets(board))


def test_every_panel_query_returns_data(grafana: Grafanaish, boards: dict[str, dict[str, Any]]) -> None:
    """No panel may say "No data" under the demo load: each target returns series, streams or traces."""
    deadline, empty = time.monotonic() + DATA_TIMEOUT, ["not run"]
    while empty and time.monotonic() < deadline:
        empty = _empty_targets(grafana, boards)
        if empty:
            time.sleep(10)
    assert not empty, "panels without data:\n" + "\n".join(empty)


@pytest.mark.parametrize("path", ["Services/theodore-service-overview.json", "Services/theodore-logs.json"])
def test_variables_offer_the_environment_and_the_demo_service(
        grafana: Grafanaish, boards: dict[str, dict[str, Any]], path: str) -> None:
    """From Prometheus's labels on the metrics boards, from VictoriaLogs' fields on the logs board."""
    board = boards[path]

    def resolved() -> dict[str, list[str]] | None:
        _, options = grafana.variables(board)
        return options if "theodore-demo" in options["service"] else None

    options = _eventually(resolved)
    assert options["environment"] == ["local"]


def _eventually(check: Any, timeout: float = DATA_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(5)
    pytest.fail(f"{check.__name__}: nothing after {timeout}s")


def _jaeger_trace(grafana: Grafanaish, trace_id: str) -> list[dict[str, Any]]:
    try:
        return get_json(f"{grafana.jaeger}/api/traces/{trace_id}", {})["data"]
    except OSError:
        return []


def _lines(grafana: Grafanaish, query: str, start: float, end: float, limit: int) -> list[dict[str, str]]:
    text = grafana.logs("/select/logsql/query", {"query": query, "start": start, "end": end, "limit": limit})
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_log_lines_trace_id_opens_its_trace_in_jaeger(sources: dict[str, Any], grafana: Grafanaish) -> None:
    """VictoriaLogs → Jaeger: the derived field reads each line's trace_id field."""
    (field,) = sources["victorialogs"]["jsonData"]["derivedFields"]
    assert field["matcherType"] == "label"

    def linked_trace() -> list[Any] | None:
        now = time.time()
        query = logsql('service.name:="$service" severity_text:~"(?i)^error$"', {"service": "theodore-demo"})
        ids = [line[field["matcherRegex"]] for line in _lines(grafana, query, now - 600, now, 20)
               if line.get(field["matcherRegex"])]
        return next((trace for trace in (_jaeger_trace(grafana, i) for i in ids) if trace), None)

    (trace,) = _eventually(linked_trace, timeout=120)
    assert any(p["serviceName"] == "theodore-demo" for p in trace["processes"].values())


def test_a_traces_spans_open_their_logs_in_victorialogs(sources: dict[str, Any], grafana: Grafanaish) -> None:
    """Jaeger → VictoriaLogs: the tracesToLogsV2 custom query, filled from a real span, finds its lines."""
    to_logs = sources["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == "victorialogs"

    def lines_of_an_error_trace() -> tuple[str, list[dict[str, str]]] | None:
        now = time.time()
        found = get_json(f"{grafana.jaeger}/api/traces", {
            "service": "theodore-demo", "tags": json.dumps({"error": "true"}), "limit": 5,
            "start": int((now - 600) * 1e6), "end": int(now * 1e6)})["data"] or []
        for trace in found:
            span = trace["spans"][0]
            # Provisioning escapes $ as $$ (env interpolation); Grafana sees ${__trace.traceId}.
            query = to_logs["query"].replace("$${__trace.traceId}", span["traceID"])
            start, end = span["startTime"] / 1e6 - 300, (span["startTime"] + span["duration"]) / 1e6 + 300
            lines = _lines(grafana, query, start, end, 100)
            if lines:
                return span["traceID"], lines
        return None

    trace_id, lines = _eventually(lines_of_an_error_trace, timeout=120)
    assert all(line["trace_id"] == trace_id for line in lines)


def test_latency_exemplars_open_their_trace(grafana: Grafanaish, boards: dict[str, dict[str, Any]]) -> None:
    """Prometheus → Jaeger: an exemplar of a latency panel names a trace Jaeger has."""
    board = boards["Services/theodore-service-overview.json"]
    values, _ = grafana.variables(board)
    (target, *_) = [t for t in targets(board) if t.body.get("exemplar")]
    expr = grafana.interpolate(target.body["expr"], values)

    def exemplar_trace() -> list[Any] | None:
        now = time.time()
        found = get_json(f"{grafana.prometheus}/api/v1/query_exemplars",
                         {"query": expr, "start": now - 600, "end": now})["data"]
        ids = [e["labels"]["trace_id"] for series in found for e in series["exemplars"]]
        return next((trace for trace in (_jaeger_trace(grafana, i) for i in ids[-10:]) if trace), None)

    assert _eventually(exemplar_trace, timeout=120)


def test_traces_to_metrics_queries_return_the_spans_service(sources: dict[str, Any], grafana: Grafanaish) -> None:
    """Jaeger → Prometheus: each linked query, with the span's tags mapped to labels, has data."""
    to_metrics = sources["jaeger"]["jsonData"]["tracesToMetrics"]
    span_tags = {"service.name": "theodore-demo", "deployment.environment": "local"}
    tags = ", ".join(f'{t["value"]}="{span_tags[t["key"]]}"' for t in to_metrics["tags"])
    for query in to_metrics["queries"]:
        expr = query["query"].replace("$$__tags", tags)
        target = Target("datasource jaeger", f"traces to metrics: {query['name']}", None,
                        {"datasource": {"type": "prometheus"}, "expr": expr, "instant": False})

        def answered(target: Target = target) -> int:
            return grafana.run(target, {})

        assert _eventually(answered, timeout=120), target.where()
