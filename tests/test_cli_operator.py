"""The operator CLI against a native stack with known data: a demo request with a known
correlation ID, GenAI calls of a known model and price, silences and routes in Alertmanager.

The stack runs on the spec's ports shifted by PORT_OFFSET in a temporary state directory.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_catalogue import catalogue
from theodore_obs.native import State
from theodore_obs.spec import load_spec
from theodore_obs.tools import binary_path

from .conftest import ROOT, run_cli, shifted_stack
from .test_native import eventually, get_json

PORT_OFFSET = 13800


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running native stack with the demo and its load; yields spec, env and helpers."""
    root = tmp_path_factory.mktemp("operator")
    spec, spec_file = shifted_stack(root, PORT_OFFSET)
    # Every receiver's secret is set (to a dead loopback URL or a dummy key), so the routing
    # holds them all.
    env = {"THEODORE_OBS_STATE": str(root / "state"), "THEODORE_OBS_SPEC": str(spec_file),
           "SLACK_API_URL": "http://127.0.0.1:9/slack", "WEBHOOK_URL": "http://127.0.0.1:9/webhook",
           "DEADMANS_SWITCH_URL": "http://127.0.0.1:9/deadmans", "PAGERDUTY_ROUTING_KEY": "test-key",
           "SMTP_PASSWORD": "test-password"}
    result = run_cli("up", "--spec", str(spec_file), "--timeout", "150", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        yield {"spec": spec, "spec_file": spec_file, "env": env, "state": State(root / "state"), "root": root}
    finally:
        run_cli("down", env=env)


def cli(stack: dict[str, Any], *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, env=stack["env"], timeout=120)
    assert result.returncode == expect, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def cli_json(stack: dict[str, Any], *args: str) -> Any:
    return json.loads(cli(stack, *args, "--format", "json").stdout)


def port(stack: dict[str, Any], name: str) -> int:
    return stack["spec"]["ports"][name]


def prom(stack: dict[str, Any], promql: str, at: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": promql, "time": at})
    return get_json(f"http://127.0.0.1:{port(stack, 'prometheus')}/api/v1/query?{query}")["data"]["result"]


def prom_value(stack: dict[str, Any], promql: str, at: float) -> float:
    result = prom(stack, promql, at)
    return float(result[0]["value"][1]) if result else 0.0


def research(stack: dict[str, Any], company: str, cid: str) -> int:
    demo = f"http://127.0.0.1:{stack['spec']['services']['theodore-demo']['port']}"
    request = urllib.request.Request(f"{demo}/research?company={company}", headers={"X-Correlation-ID": cid})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def known_request(stack: dict[str, Any]) -> str:
    """One good demo request with a known correlation ID; returns the ID."""
    cid = f"cli-{secrets.token_hex(6)}"
    assert research(stack, "acme", cid) == 200
    return cid


# --- status and health -------------------------------------------------------------------


def test_status_reports_components_targets_and_the_watchdog(stack: dict[str, Any]) -> None:
    def report() -> dict[str, Any] | None:
        found = cli_json(stack, "status", "--detailed")
        names = {a["name"] for a in found["alerts"] or []}
        up = found["targets_summary"] and found["targets_summary"]["up"] >= 6
        return found if "Watchdog" in names and up else None

    found = eventually(report, timeout=90, every=3)
    assert found["healthy"] is True
    versions = {c["component"]: c["version"] for c in found["components"]}
    assert versions["prometheus"] == "3.16.0" and versions["victorialogs"] == "1.52.1"
    assert versions["vmalert"] == "1.151.0"
    assert {t["job"] for t in found["targets"]} >= {"prometheus", "victorialogs", "vmalert", "jaeger", "alertmanager"}
    assert found["errors"] == {}


def test_status_filters_by_component_and_alerts_only(stack: dict[str, Any]) -> None:
    found = cli_json(stack, "status", "--component", "victorialogs")
    assert [c["component"] for c in found["components"]] == ["victorialogs"]
    assert {t["job"] for t in found["targets_summary"]["down_targets"]} <= {"victorialogs"}
    alerts_only = cli_json(stack, "status", "--alerts-only")
    assert set(alerts_only) == {"alerts"}
    as_yaml = yaml.safe_load(cli(stack, "status", "--format", "yaml", "--component", "prometheus").stdout)
    assert as_yaml["components"][0]["version"] == "3.16.0"
    unknown = cli(stack, "status", "--component", "nope", expect=2)
    assert "no component 'nope'" in unknown.stderr


def test_health_checks_every_component_and_the_demo_dependencies(stack: dict[str, Any]) -> None:
    found = cli_json(stack, "health")
    rows = {r["component"]: r for r in found["components"]}
    assert found["healthy"] is True
    for name in ["prometheus", "alertmanager", "victorialogs", "vmalert", "jaeger", "otel-collector", "blackbox",
                 "theodore-demo"]:
        assert rows[name]["healthy"] is True and rows[name]["required"] is True, rows[name]
    demo = rows["theodore-demo"]
    assert demo["kind"] == "app" and demo["ready"] is True and demo["failing"] == []
    assert {c["name"]: c["healthy"] for c in demo["checks"]} == {"upstreams": True, "store": True}
    assert rows["grafana"]["required"] is False


def test_health_fails_when_a_component_is_down(stack: dict[str, Any]) -> None:
    result = cli(stack, "health", "--format", "json", "--victorialogs-url", "http://127.0.0.1:9", expect=1)
    rows = {r["component"]: r for r in json.loads(result.stdout)["components"]}
    assert rows["victorialogs"]["healthy"] is False and "not answering" in rows["victorialogs"]["detail"]
    assert rows["prometheus"]["healthy"] is True


# --- logs and traces of one known request ---------------------------------------------------


def test_logs_of_a_correlation_id(stack: dict[str, Any], known_request: str) -> None:
    def entries() -> list[dict[str, Any]]:
        found = cli_json(stack, "logs", "--correlation-id", known_request, "--since", "10m")["entries"]
        return found if any(e["message"] == "research done" for e in found) else []

    found = eventually(entries, timeout=60, every=2)
    assert {e["correlation_id"] for e in found} == {known_request}
    assert {"research requested", "research done"} <= {e["message"] for e in found}
    done = next(e for e in found if e["message"] == "research done")
    assert done["service"] == "theodore-demo" and done["level"] == "info" and done["fields"]["company"] == "acme"
    assert len(done["trace_id"]) == 32
    text = cli(stack, "logs", "--correlation-id", known_request, "--search", "research done").stdout
    assert text.count("\n") == 1 and "research done" in text and known_request in text
    by_component = cli_json(stack, "logs", "--correlation-id", known_request, "--component", "theodore-demo")
    assert "research done" in {e["message"] for e in by_component["entries"]}
    assert cli_json(stack, "logs", "--correlation-id", known_request, "--component", "nope")["entries"] == []


def test_logs_of_another_tenant_are_not_the_apps(stack: dict[str, Any], known_request: str) -> None:
    """Every request names its tenant: the apps write to log_store.tenant, another tenant is empty."""
    spec = yaml.safe_load(stack["spec_file"].read_text())
    spec["tenants"]["elsewhere"] = {"description": "Another tenant", "account_id": 42, "project_id": 1,
                                    "token_file": "elsewhere_token",
                                    "ports": {"otlp_grpc": 30001, "otlp_http": 30002}}
    other = stack["root"] / "two-tenants.yaml"
    other.write_text(yaml.safe_dump(spec))
    mine = eventually(lambda: cli_json(stack, "logs", "--spec", str(other), "--tenant", "theodore",
                                       "--correlation-id", known_request)["entries"], timeout=60, every=2)
    assert {e["correlation_id"] for e in mine} == {known_request}
    # The store's own API in the other tenant's space (`export` reads it directly).
    exported = stack["root"] / "elsewhere.json"
    cli(stack, "export", "logs", "--spec", str(other), "--tenant", "elsewhere", "--correlation-id", known_request,
        "-o", str(exported))
    elsewhere = json.loads(exported.read_text())
    assert elsewhere["tenant"] == "elsewhere" and elsewhere["entries"] == []
    unknown = cli(stack, "logs", "--tenant", "nope", expect=2)
    assert unknown.stderr == "error: --tenant: no tenant 'nope' in the spec (known: theodore)\n"


def test_logs_level_filter_shows_that_level_and_above(stack: dict[str, Any], known_request: str) -> None:
    failing = f"cli-fail-{secrets.token_hex(4)}"
    assert research(stack, "broken-acme", failing) == 502

    def errors() -> list[dict[str, Any]]:
        return cli_json(stack, "logs", "--level", "error", "--correlation-id", failing)["entries"]

    (line,) = eventually(errors, timeout=60, every=2)
    assert line["message"] == "scrape failed" and line["level"] == "error"
    warnings = cli_json(stack, "logs", "--level", "warn", "--correlation-id", known_request)["entries"]
    assert {entry["level"] for entry in warnings} <= {"warning", "error", "critical"}
    everything = cli_json(stack, "logs", "--correlation-id", known_request)["entries"]
    assert "research done" in {entry["message"] for entry in everything}


def test_logs_follow_prints_new_lines(stack: dict[str, Any]) -> None:
    cid = f"cli-follow-{secrets.token_hex(4)}"
    follow = subprocess.Popen(
        [sys.executable, "-m", "theodore_obs", "logs", "--follow", "--since", "5s", "--correlation-id", cid,
         "--max-lines", "1", "--max-seconds", "90", "--format", "json"],
        cwd=ROOT, env={**os.environ, **stack["env"]}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    assert research(stack, "globex", cid) == 200
    out, err = follow.communicate(timeout=120)
    assert follow.returncode == 0, err
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert line["correlation_id"] == cid


def test_ctrl_c_ends_follow_and_live_without_a_traceback(stack: dict[str, Any]) -> None:
    for args in (["logs", "--follow", "--since", "1m"], ["metrics", "--live", "--interval", "0.5"]):
        # A shell may start the tests with SIGINT ignored, which children inherit: reset it
        # (one signal call, no lock taken, so the fork-with-threads hazard does not apply).
        running = subprocess.Popen(
            [sys.executable, "-m", "theodore_obs", *args], cwd=ROOT, env={**os.environ, **stack["env"]},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
        try:
            printing, _, _ = select.select([running.stdout], [], [], 60)
            assert printing and running.stdout.readline(), f"{args}: no output within 60s"
            running.send_signal(signal.SIGINT)
            _, err = running.communicate(timeout=60)
        finally:
            if running.poll() is None:
                running.kill()
                running.wait()
        assert running.returncode == 130, err
        assert "Traceback" not in err


def test_traces_of_a_correlation_id_as_a_span_tree(stack: dict[str, Any], known_request: str) -> None:
    def traces() -> list[dict[str, Any]]:
        found = cli_json(stack, "traces", "--correlation-id", known_request)["traces"]
        return found if found and found[0]["span_count"] >= 5 else []

    (trace,) = eventually(traces, timeout=60, every=2)
    assert trace["correlation_id"] == known_request and trace["error"] is False
    assert trace["root_operation"] == "GET /research" and trace["root_service"] == "theodore-demo"
    spans = {s["operation"]: s for s in trace["spans"]}
    assert spans["research.company"]["parent_id"] == spans["GET /research"]["span_id"]
    assert spans["chat gpt-4o-mini"]["parent_id"] == spans["research.company"]["span_id"]
    assert spans["GET /research"]["duration_ms"] >= spans["research.company"]["duration_ms"] > 0
    tree = cli(stack, "traces", "--trace-id", trace["trace_id"]).stdout
    assert tree.index("GET /research") < tree.index("research.company") < tree.index("chat gpt-4o-mini")
    assert f"correlation {known_request}" in tree
    assert tree.index("chat gpt-4o-mini") < tree.index(f"logs of trace {trace['trace_id']}") < tree.index("research done")


def test_traces_of_a_trace_id_carry_its_logs(stack: dict[str, Any], known_request: str) -> None:
    def traced() -> dict[str, Any] | None:
        found = cli_json(stack, "traces", "--correlation-id", known_request)["traces"]
        if not found:
            return None
        (trace,) = cli_json(stack, "traces", "--trace-id", found[0]["trace_id"])["traces"]
        return trace if "research done" in {e["message"] for e in trace["logs"]} else None

    trace = eventually(traced, timeout=60, every=2)
    assert {e["trace_id"] for e in trace["logs"]} == {trace["trace_id"]}
    assert {e["correlation_id"] for e in trace["logs"]} == {known_request}
    closed = cli(stack, "traces", "--trace-id", trace["trace_id"], "--format", "json",
                 "--victorialogs-url", "http://127.0.0.1:9")
    found = json.loads(closed.stdout)
    assert found["traces"][0]["logs"] is None and found["traces"][0]["span_count"] == trace["span_count"]
    assert found["errors"]["logs"].startswith("VictoriaLogs at http://127.0.0.1:9 is not answering")
    text = cli(stack, "traces", "--trace-id", trace["trace_id"], "--victorialogs-url", "http://127.0.0.1:9").stdout
    assert "GET /research" in text and "logs unavailable: VictoriaLogs at http://127.0.0.1:9" in text


def test_traces_search_by_errors_and_duration(stack: dict[str, Any]) -> None:
    failing = f"cli-err-{secrets.token_hex(4)}"
    assert research(stack, "broken-initech", failing) == 502

    def errors() -> list[dict[str, Any]]:
        return cli_json(stack, "traces", "--errors", "--service", "theodore-demo", "--limit", "50")["traces"]

    found = eventually(lambda: [t for t in errors() if t["correlation_id"] == failing], timeout=60, every=2)
    assert found[0]["error"] is True
    assert all(t["error"] for t in errors())
    slow = cli_json(stack, "traces", "--min-duration", "1h", "--service", "theodore-demo")
    assert slow["traces"] == []
    missing = cli(stack, "traces", "--trace-id", "0" * 31 + "1", expect=1)
    assert "has no trace" in missing.stderr


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_of_a_catalogue_name_match_prometheus(stack: dict[str, Any], known_request: str) -> None:
    eventually(lambda: prom(stack, 'theodore_requests_total{job="theodore-demo"}', time.time()), timeout=60)
    at = time.time()
    found = cli_json(stack, "metrics", "--metric-name", "theodore_requests_total", "--at", str(at))
    (metric,) = found["metrics"]
    assert metric["type"] == "counter" and metric["help"] == catalogue()["theodore_requests_total"].help
    (series,) = [s for s in metric["series"] if s["job"] == "theodore-demo"]
    assert series["value"] == prom_value(stack, 'sum(theodore_requests_total{job="theodore-demo"})', at)
    assert series["increase"] == pytest.approx(
        prom_value(stack, 'sum(increase(theodore_requests_total{job="theodore-demo"}[1h]))', at))
    histogram = cli_json(stack, "metrics", "--metric-name", "theodore_request_duration_seconds",
                         "--at", str(at), "--time-range", "6h")["metrics"][0]
    (demo,) = [s for s in histogram["series"] if s["job"] == "theodore-demo"]
    assert 0 < demo["p50"] <= demo["p95"]


def test_metrics_component_word_selects_catalogue_names(stack: dict[str, Any]) -> None:
    found = cli_json(stack, "metrics", "--component", "ai")
    names = [m["name"] for m in found["metrics"]]
    assert names == [n for n in catalogue() if "ai" in n]
    assert names and all(n.startswith("theodore_ai_") for n in names)


def test_metrics_prometheus_format_export_and_live(stack: dict[str, Any], tmp_path: Path) -> None:
    text = cli(stack, "metrics", "--metric-name", "theodore_requests_total", "--format", "prometheus").stdout
    assert text.splitlines()[:2] == ["# HELP theodore_requests_total Total number of requests processed",
                                     "# TYPE theodore_requests_total counter"]
    assert any(line.startswith("theodore_requests_total{") and 'job="theodore-demo"' in line
               for line in text.splitlines())
    everything = cli(stack, "metrics", "--format", "prometheus").stdout
    lint = subprocess.run([str(binary_path("promtool")), "check", "metrics"], input=everything,
                          capture_output=True, text=True, timeout=60, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "# TYPE theodore_request_duration_seconds histogram" in everything
    out = tmp_path / "report.json"
    cli(stack, "metrics", "--component", "storage", "--export", str(out))
    exported = json.loads(out.read_text())
    assert [m["name"] for m in exported["metrics"]] == [n for n in catalogue() if "storage" in n]
    live = cli(stack, "metrics", "--live", "--iterations", "2", "--interval", "0.2",
               "--metric-name", "theodore_requests_total")
    assert "theodore_requests_total" in live.stdout


# --- alerts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("labels", "receivers"), [
    (["severity=critical", "service=api"], [("critical", ["pagerduty", "slack"])]),
    # amtool ignores the clock: both the after-hours and the business-hours branch match.
    (["severity=high"], [("high-after-hours", ["pagerduty", "slack"]), ("high", ["email", "slack"])]),
    (["severity=low"], [("low", ["webhook"])]),
    (["alertname=Watchdog"], [("deadmans-switch", ["webhook"])]),
])
def test_alert_routes_of_a_label_set(stack: dict[str, Any], labels: list[str],
                                     receivers: list[tuple[str, list[str]]]) -> None:
    found = cli_json(stack, "alerts", "routes", *labels)
    assert found["receivers"] == [{"name": name, "integrations": kinds} for name, kinds in receivers]


def test_silence_create_list_expire(stack: dict[str, Any]) -> None:
    marker = f"cli-test-{secrets.token_hex(4)}"
    created = cli_json(stack, "alerts", "silence", "create", "-m", "alertname=Watchdog", "-m",
                       "severity=~none|low", "--duration", "15m", "--comment", marker, "--author", "pytest")
    silence_id = created["silence_id"]
    listed = {s["id"]: s for s in cli_json(stack, "alerts", "silence", "list")["silences"]}
    mine = listed[silence_id]
    assert mine["state"] == "active" and mine["comment"] == marker and mine["created_by"] == "pytest"
    assert mine["matchers"] == ["alertname=Watchdog", "severity=~none|low"]
    am = f"http://127.0.0.1:{port(stack, 'alertmanager')}"
    assert get_json(f"{am}/api/v2/silence/{silence_id}")["status"]["state"] == "active"

    def watchdog_suppressed() -> bool:
        alerts = cli_json(stack, "alerts", "list", "--state", "suppressed")["alerts"]
        return any(a["name"] == "Watchdog" for a in alerts)

    assert eventually(watchdog_suppressed, timeout=60, every=2)
    assert cli(stack, "alerts", "silence", "expire", silence_id).stdout.startswith("expired silence")
    assert get_json(f"{am}/api/v2/silence/{silence_id}")["status"]["state"] == "expired"
    assert silence_id not in {s["id"] for s in cli_json(stack, "alerts", "silence", "list")["silences"]}
    everything = cli_json(stack, "alerts", "silence", "list", "--all")["silences"]
    assert {s["id"]: s["state"] for s in everything}[silence_id] == "expired"


def test_silence_rejects_a_bad_matcher(stack: dict[str, Any]) -> None:
    result = cli(stack, "alerts", "silence", "create", "-m", "no-operator", "--comment", "x", expect=2)
    assert "--matcher" in result.stderr and "no-operator" in result.stderr


# --- export ------------------------------------------------------------------------------------


def test_export_each_signal_to_json(stack: dict[str, Any], known_request: str, tmp_path: Path) -> None:
    metrics_file = tmp_path / "metrics.json"
    cli(stack, "export", "metrics", "--metric-name", "theodore_requests_total", "-o", str(metrics_file))
    exported = json.loads(metrics_file.read_text())
    assert exported["signal"] == "metrics" and exported["step_seconds"] >= 15
    demo = [s for s in exported["series"] if s["labels"].get("job") == "theodore-demo"]
    assert demo and all(s["name"] == "theodore_requests_total" and s["values"] for s in demo)
    assert all(t1 < t2 for s in demo for (t1, _), (t2, _) in zip(s["values"], s["values"][1:], strict=False))

    def exported_logs() -> list[dict[str, Any]]:
        out = tmp_path / "logs.json"
        cli(stack, "export", "logs", "--correlation-id", known_request, "-o", str(out))
        entries = json.loads(out.read_text())["entries"]
        return entries if any(e["message"] == "research done" for e in entries) else []

    assert {e["correlation_id"] for e in eventually(exported_logs, timeout=60, every=2)} == {known_request}
    traces_file = tmp_path / "traces.json"
    result = cli(stack, "export", "traces", "--correlation-id", known_request, "-o", str(traces_file))
    (trace,) = json.loads(traces_file.read_text())["traces"]
    assert trace["correlation_id"] == known_request and "wrote 1 traces records" in result.stdout


# --- cost ----------------------------------------------------------------------------------------


def _genai_calls(stack: dict[str, Any], model: str, calls: int, input_tokens: int, output_tokens: int) -> None:
    env = {**os.environ, "OTEL_SERVICE_NAME": f"cost-app-{secrets.token_hex(3)}",
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port(stack, 'otlp_http')}",
           "OTEL_METRIC_EXPORT_INTERVAL": "1000",
           "THEODORE_AI_PRICES_FILE": str(stack["state"].config / "apps" / "ai-prices.json"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    app = Path(__file__).parent / "fixtures" / "genai_calls_app.py"
    run = subprocess.run(["opentelemetry-instrument", sys.executable, str(app), model, str(calls),
                          str(input_tokens), str(output_tokens)],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr


def test_cost_report_matches_prometheus_and_names_the_costliest_model(stack: dict[str, Any]) -> None:
    """gpt-4o calls at 1,000 in / 500 out tokens cost $0.0075 each against the demo's gpt-4o-mini."""
    _genai_calls(stack, "gpt-4o", 6, 1000, 500)

    def counted() -> float:
        """Both models' calls are in Prometheus (the demo's own gpt-4o-mini ones too)."""
        return min(prom_value(stack, 'sum(increase(theodore_ai_operation_duration_seconds_count'
                                     f'{{model="{model}",success=~"(?i)true"}}[1h]))', time.time())
                   for model in ["gpt-4o", "gpt-4o-mini"])

    eventually(counted, timeout=60, every=2)
    at = time.time()
    report = cli_json(stack, "cost", "--time-range", "1h", "--at", str(at))
    assert report["total_usd"] == pytest.approx(prom_value(stack, "sum(increase(theodore_ai_cost_total[1h]))", at))
    models = {m["model"]: m for m in report["by_model"]}
    for model in ["gpt-4o", "gpt-4o-mini"]:
        expected = prom_value(stack, f'sum(increase(theodore_ai_cost_total{{model="{model}"}}[1h]))', at)
        assert models[model]["cost_usd"] == pytest.approx(expected)
    assert models["gpt-4o"]["cost_per_successful_call_usd"] == pytest.approx(0.0075, rel=0.02)
    tokens = prom_value(stack, 'sum(increase(theodore_ai_tokens_total{model="gpt-4o",token_type="output"}[1h]))', at)
    assert models["gpt-4o"]["tokens_output"] == pytest.approx(tokens)
    researched = prom_value(stack, 'sum(increase(theodore_companies_researched_total{success=~"(?i)true"}[1h]))', at)
    assert report["successful_researches"] == pytest.approx(researched) and researched > 0
    local = load_spec("local", stack["spec_file"]).data  # the overlay lowers the demo's budget
    assert report["budget"]["hourly_usd"] == local["ai"]["budgets"]["hourly_usd"]
    assert report["budget"]["last_hour_usd"] == pytest.approx(report["total_usd"])
    (advice,) = [r for r in report["recommendations"] if r["kind"] == "costliest_model"]
    assert (advice["model"], advice["compared_to"]) == ("gpt-4o", "gpt-4o-mini")
    ratio = models["gpt-4o"]["cost_per_successful_call_usd"] / models["gpt-4o-mini"]["cost_per_successful_call_usd"]
    assert advice["factor"] == pytest.approx(ratio) and advice["factor"] > 10
    table = cli(stack, "cost", "--time-range", "1h", "--at", str(at)).stdout
    assert "gpt-4o-mini" in table and "try gpt-4o-mini for chat" in table


# --- a backend that does not answer ----------------------------------------------------------


@pytest.mark.parametrize(("args", "name", "flag"), [
    (["logs"], "VictoriaLogs", "--victorialogs-url"),
    (["metrics", "--metric-name", "up"], "Prometheus", "--prometheus-url"),
    (["traces", "--service", "x"], "Jaeger", "--jaeger-url"),
    (["alerts", "silence", "list"], "Alertmanager", "--alertmanager-url"),
    (["cost"], "Prometheus", "--prometheus-url"),
])
def test_backend_down_is_one_line_and_exit_3(stack: dict[str, Any], args: list[str], name: str, flag: str) -> None:
    closed = "http://127.0.0.1:9"
    result = cli(stack, *args, flag, closed, expect=3)
    assert result.stderr == (f"error: {name} at {closed} is not answering — start the stack with `make up` "
                             "(or `theodore-obs up`)\n")
    assert result.stdout == ""
