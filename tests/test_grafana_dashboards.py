"""Generated Grafana dashboards and provisioning: structure, contracts, links between signals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from theodore_catalogue import catalogue
from theodore_obs.dashboards import boards, dashboards, prometheus_min_interval
from theodore_obs.render import COMPOSE, native_runtime, render_files
from theodore_obs.spec import load_spec, log_tenant

from .conftest import ROOT
from .grafana_support import (
    LOGS,
    panels,
    provisioned_datasources,
    targets,
    variables_used,
)
from .grafana_support import dashboards as rendered_dashboards

ENVS = ["local", "staging", "prod"]
PLUGIN_QUERY_KEYS = {"refId", "datasource", "editorMode", "expr", "legendFormat", "maxLines", "step",
                     "queryType", "interval", "fields", "direction"}
"""Keys of the VictoriaLogs plugin's Query (victorialogs-datasource 0.26.3, src/types.ts) we may set."""
LOGSQL_FORMS = re.compile(r'in\(\$\w+\)|:~"\$\w+"|:="\$\w+"')
UIDS = {"theodore-service-overview", "theodore-research-kpis", "theodore-ai-cost", "theodore-logs",
        "theodore-slo", "theodore-alerts", "theodore-stack-health", "theodore-versions"}


def _overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


@pytest.mark.parametrize("env", ENVS)
def test_the_contracted_dashboards_exist_one_file_per_uid_in_folders(env: str) -> None:
    found = rendered_dashboards(env)
    assert {board["uid"] for board in found.values()} == UIDS
    for path, board in found.items():
        folder, name = path.split("/")
        assert name == f"{board['uid']}.json"
        assert folder[0].isupper(), f"{path}: folder titles come from directory names"


@pytest.mark.parametrize("env", ENVS)
def test_panel_ids_are_unique_and_grid_positions_do_not_overlap(env: str) -> None:
    for path, board in rendered_dashboards(env).items():
        all_panels = list(panels(board))
        ids = [p["id"] for p in all_panels]
        assert len(ids) == len(set(ids)), f"{path}: duplicate panel ids"
        for i, a in enumerate(all_panels):
            pos = a["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, f"{path}: {a['title']}"
            for b in all_panels[i + 1:]:
                assert not _overlap(pos, b["gridPos"]), f"{path}: {a['title']!r} overlaps {b['title']!r}"


@pytest.mark.parametrize("env", ENVS)
def test_every_datasource_uid_is_provisioned(env: str) -> None:
    provisioned = provisioned_datasources(env)
    for path, board in rendered_dashboards(env).items():
        refs = [p["datasource"] for p in panels(board) if "datasource" in p]
        refs += [t.body["datasource"] for t in targets(board)]
        refs += [v["datasource"] for v in board["templating"]["list"] if "datasource" in v]
        refs += [a["datasource"] for a in board["annotations"]["list"]]
        for ref in refs:
            assert ref["uid"] in provisioned, f"{path}: unknown data source uid {ref['uid']}"
            assert provisioned[ref["uid"]]["type"] == ref["type"], f"{path}: {ref}"


@pytest.mark.parametrize("env", ENVS)
def test_every_variable_used_is_defined(env: str) -> None:
    for path, board in rendered_dashboards(env).items():
        defined = {v["name"] for v in board["templating"]["list"]}
        used = variables_used(board["panels"]) | variables_used(board["templating"]["list"])
        assert used <= defined, f"{path}: undefined variables {sorted(used - defined)}"
        repeats = {panel["repeat"] for panel in panels(board) if "repeat" in panel}
        assert repeats <= defined, f"{path}: repeats over undefined variables {repeats - defined}"


def test_every_panel_has_a_query_and_every_prometheus_target_a_metric() -> None:
    for path, board in rendered_dashboards("local").items():
        for panel in panels(board):
            if panel["type"] != "row":
                assert panel["targets"], f"{path}: {panel['title']} has no query"


def test_every_catalogue_metric_is_drawn_and_no_dashboard_code_names_one() -> None:
    """The catalogue is the one place metric names are written; dashboards draw them all."""
    text = json.dumps(dashboards(load_spec("local").data | {"environment": "local"}))
    missing = [name for name in catalogue() if not re.search(rf"\b{name}\b", text)]
    assert not missing, f"catalogue metrics on no dashboard: {missing}"
    sources = "".join(p.read_text() for p in Path(boards.__file__).parent.glob("*.py"))
    named = [name for name in catalogue() if re.search(rf"\b{name}\b", sources)]
    assert not named, f"metric names typed in the dashboard code: {named}"


def test_catalogue_placements_group_by_known_labels() -> None:
    for name, spec in catalogue().items():
        assert spec.dashboard["uid"] in UIDS, name
        assert set(spec.dashboard["by"]) <= set(spec.labels), name


def test_generation_is_deterministic_and_follows_the_spec() -> None:
    spec = load_spec("prod").data | {"environment": "prod"}
    assert json.dumps(dashboards(spec)) == json.dumps(dashboards(spec))
    spec["ai"]["budgets"]["hourly_usd"] = 7
    ai = dashboards(spec)["grafana/dashboards/Business/theodore-ai-cost.json"]
    assert any("/ 7" in t.body["expr"] for t in targets(ai) if "expr" in t.body)
    variables = {v["name"]: v for v in ai["templating"]["list"]}
    assert variables["environment"]["current"]["value"] == "prod"


def test_slo_rows_use_each_services_targets() -> None:
    spec = load_spec("local").data | {"environment": "local"}
    spec["services"]["checkout"] = {"port": 1, "health_path": "/", "slo": {
        "availability": 0.99, "latency_seconds": 0.3, "latency_target": 0.9}}
    slo = dashboards(spec)["grafana/dashboards/Reliability/theodore-slo.json"]
    exprs = [t.body["expr"] for t in targets(slo)]
    assert any('service="checkout"' in e and "/ 0.01)" in e for e in exprs)
    assert any('service="checkout"' in e and "ratio_rate3d" in e and "/ 0.1)" in e for e in exprs)
    assert any('service="theodore-demo"' in e and "/ 0.005)" in e for e in exprs)


def test_panels_link_to_runbooks_and_traces() -> None:
    board = rendered_dashboards("local")["Services/theodore-service-overview.json"]
    links = [link["url"] for p in panels(board) for link in p.get("links", [])]
    assert "https://theodore.example/observability/runbook#higherrorrate" in links
    data_links = [link["url"] for p in panels(board)
                  for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", [])]
    assert data_links and all("jaeger" in url and "${__field.labels.service_name}" in url for url in data_links)
    exemplars = [t for t in targets(board) if t.body.get("exemplar")]
    assert exemplars


def test_datasources_link_the_three_signals_both_ways() -> None:
    ds = provisioned_datasources("local")
    assert set(ds) == {"prometheus", "victorialogs", "jaeger", "alertmanager", "audit-logs"}
    assert ds["victorialogs"]["type"] == LOGS
    assert ds["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"] == "jaeger"
    (derived,) = ds["victorialogs"]["jsonData"]["derivedFields"]
    assert derived | {"url": None} == derived | {"matcherType": "label", "matcherRegex": "trace_id",
                                                "datasourceUid": "jaeger", "url": None}
    to_logs = ds["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == "victorialogs" and to_logs["customQuery"] is True
    assert 'trace_id:="$${__trace.traceId}"' in to_logs["query"]
    assert ds["jaeger"]["jsonData"]["tracesToMetrics"]["datasourceUid"] == "prometheus"


@pytest.mark.parametrize("env", ENVS)
def test_the_logs_data_source_reads_the_log_stores_tenant(env: str) -> None:
    spec = load_spec(env)
    account, project = log_tenant(spec.data)
    headers = provisioned_datasources(env)["victorialogs"]["jsonData"]["multitenancyHeaders"]
    assert headers == {"AccountID": str(account), "ProjectID": str(project)}


def _logs_targets(board: dict) -> list[tuple[dict, dict]]:
    return [(panel, body) for panel in panels(board) for body in panel.get("targets", [])
            if body["datasource"]["type"] == LOGS]


def test_logs_targets_follow_the_victorialogs_plugins_query_model() -> None:
    """The plugin's Query (src/types.ts): a logs panel lists lines (``instant``, with
    ``maxLines``); a time series counts lines per step (``statsRange``, ending in ``| stats``)."""
    found = 0
    for path, board in rendered_dashboards("local").items():
        for panel, body in _logs_targets(board):
            found += 1
            where = f"{path}: {panel['title']}"
            assert body["datasource"] == {"type": LOGS, "uid": "victorialogs"}, where
            assert set(body) <= PLUGIN_QUERY_KEYS, f"{where}: {sorted(set(body) - PLUGIN_QUERY_KEYS)}"
            if panel["type"] == "logs":
                assert body["queryType"] == "instant" and body["maxLines"] > 0, where
                assert "| stats" not in body["expr"], where
            else:
                assert panel["type"] == "timeseries", where
                assert body["queryType"] == "statsRange", where
                assert re.search(r"\| stats by \([^)]+\) count\(\)( as \w+)?$", body["expr"]), where
    assert found


def test_logsql_variables_appear_only_in_forms_the_plugin_fills() -> None:
    """``in($v)``, ``:~"$v"`` and ``:="$v"``: the plugin's interpolateString quotes each as LogsQL
    needs (tests/grafana_queries.py fills them the same way), a bare ``$v`` elsewhere it may not."""
    for path, board in rendered_dashboards("local").items():
        exprs = [body["expr"] for _, body in _logs_targets(board)]
        exprs += [v["query"]["query"] for v in board["templating"]["list"]
                  if v.get("datasource", {}).get("type") == LOGS]
        for expr in exprs:
            bare = LOGSQL_FORMS.sub("", expr)
            assert not variables_used(bare), f"{path}: {expr!r} uses a variable outside in(), :~ or :="


@pytest.mark.parametrize("env", ENVS)
def test_logs_variables_are_field_values_of_victorialogs(env: str) -> None:
    board = rendered_dashboards(env)["Services/theodore-logs.json"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    for name, field in (("environment", "deployment.environment"), ("service", "service.name")):
        var = variables[name]
        assert var["datasource"] == {"type": LOGS, "uid": "victorialogs"}, name
        assert var["query"] | {"refId": None} == var["query"] | {
            "type": "fieldValue", "field": field, "refId": None}, name
        assert var["query"]["limit"] > 0, name
    assert variables["environment"]["current"]["value"] == env
    assert variables["service"]["allValue"] == "*" and variables["service"]["multi"]


def test_no_dashboard_queries_loki() -> None:
    text = json.dumps(rendered_dashboards("local"))
    assert "loki" not in text.lower()


def test_rate_interval_covers_several_otlp_pushes() -> None:
    """A laptop scrapes every 5s but apps push every 15s: Grafana must assume 15s."""
    assert prometheus_min_interval(load_spec("local").data) == "15s"
    ds = provisioned_datasources("local")
    assert ds["prometheus"]["jsonData"]["timeInterval"] == "15s"


def test_dashboard_provider_points_where_each_runtime_keeps_the_files(tmp_path: Path) -> None:
    native = render_files(load_spec("local"), native_runtime(tmp_path))
    provider = yaml.safe_load(native["grafana/provisioning/dashboards/dashboards.yaml"])["providers"][0]
    assert provider["options"] == {"path": str(tmp_path / "config/grafana/dashboards"),
                                   "foldersFromFilesStructure": True}
    assert "grafana/dashboards/Platform/theodore-stack-health.json" in native
    compose = render_files(load_spec("local"), COMPOSE)
    provider = yaml.safe_load(compose["grafana/provisioning/dashboards/dashboards.yaml"])["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    grafana = yaml.safe_load(compose["compose.yaml"])["services"]["grafana"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]


@pytest.mark.parametrize("env", ENVS)
def test_every_alerts_runbook_is_linked_from_a_panel(env: str) -> None:
    """An operator looking at a panel finds the runbook of the alert that watches it."""
    rules = [*(ROOT / "rendered" / env / "prometheus" / "rules").glob("*.yml"),
             *(ROOT / "rendered" / env / "vmalert" / "rules").glob("*.yml")]
    alerts = {rule["alert"] for path in rules for group in yaml.safe_load(path.read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    linked = {link["url"].rpartition("#")[2] for board in rendered_dashboards(env).values()
              for panel in panels(board) for link in panel.get("links", [])}
    assert alerts, "no alert rules rendered"
    assert not {a for a in alerts if a.lower() not in linked}, "alerts without a panel runbook link"
