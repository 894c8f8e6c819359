"""Alerting and recording rules: promtool unit tests, the log rules' LogsQL on a real
VictoriaLogs, the contracts routing and dashboards use."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_obs import rule_context
from theodore_obs.native import State, programs
from theodore_obs.render import COMPOSE, RenderError, render_files
from theodore_obs.rule_context import DASHBOARD_UIDS, duration_seconds
from theodore_obs.spec import SpecError, load_spec, log_tenant
from theodore_obs.tools import binary_path

from .conftest import ROOT

RENDERED = ROOT / "rendered"
SEVERITIES = {"critical", "high", "medium", "low", "none"}
RECORD_NAME = re.compile(r"^[a-z_]+(:[a-z0-9_]+){2}$")

#: Seed 003's DEFAULT_ALERT_RULES: alertname → (severities, seed rule name).
SEED_DEFAULTS = {
    "HighErrorRate": ({"high"}, "high_error_rate"),
    "AIOperationFailureSpike": ({"medium"}, "ai_operation_failure_spike"),
    "SystemOverload": ({"high"}, "system_overload"),
    "AICostThresholdExceeded": ({"medium"}, "cost_threshold_exceeded"),
    "StorageOperationFailures": ({"high", "critical"}, "storage_operation_failures"),
}


def rule_files(env: str) -> list[Path]:
    return sorted((RENDERED / env / "prometheus" / "rules").glob("*.yml"))


def log_rule_files(env: str) -> list[Path]:
    return sorted((RENDERED / env / "vmalert" / "rules").glob("*.yml"))


def log_groups(env: str) -> list[dict[str, Any]]:
    return [group for path in log_rule_files(env) for group in yaml.safe_load(path.read_text())["groups"]]


def log_alerts_of(env: str) -> list[dict[str, Any]]:
    return [rule for group in log_groups(env) for rule in group["rules"]]


def rules_of(env: str) -> list[dict[str, Any]]:
    return [rule for path in rule_files(env)
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alerts_of(env: str) -> list[dict[str, Any]]:
    return [rule for rule in rules_of(env) if "alert" in rule]


def unit_tests(env: str) -> list[Path]:
    return sorted((RENDERED / env / "prometheus" / "tests").glob("*.test.yml"))


@pytest.mark.parametrize("env", ["local", "prod"])
def test_promtool_unit_tests_pass_against_the_rendered_rules(env: str) -> None:
    files = unit_tests(env)
    assert files, f"no promtool test files rendered for {env}"
    proc = subprocess.run([str(binary_path("promtool")), "test", "rules", *map(str, files)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(files)


@pytest.mark.parametrize("env", ["local", "prod"])
def test_every_alert_is_unit_tested_firing_and_silent(env: str) -> None:
    """Each alertname has a promtool case where it fires, and one where something stays silent."""
    fired: set[str] = set()
    tested: set[str] = set()
    for path in unit_tests(env):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                tested.add(check["alertname"])
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    names = {alert["alert"] for alert in alerts_of(env)}
    assert names - fired == set(), "alerts never shown to fire"
    assert names <= tested


@pytest.mark.parametrize("env", ["local", "staging", "prod"])
def test_every_alert_has_severity_summary_description_runbook_and_dashboard(env: str) -> None:
    spec = load_spec(env).data
    base, grafana = spec["alerting"]["runbook_base_url"], spec["grafana"]["url"].rstrip("/")
    dashboards = {f"{grafana}/d/{uid}" for uid in DASHBOARD_UIDS.values()}
    log_alerts = log_alerts_of(env)
    alerts = alerts_of(env)
    assert alerts and log_alerts
    for alert in alerts + log_alerts:
        name, annotations = alert["alert"], alert["annotations"]
        assert alert["labels"]["severity"] in SEVERITIES, name
        assert annotations.keys() >= {"summary", "description", "runbook_url", "dashboard_url"}, name
        assert annotations["runbook_url"] == f"{base}#{name.lower()}"
        assert annotations["dashboard_url"] in dashboards, name


@pytest.mark.parametrize("env", ["local", "prod"])
def test_recording_rules_are_named_level_metric_operations(env: str) -> None:
    for rule in rules_of(env):
        if "record" in rule:
            assert RECORD_NAME.match(rule["record"]), rule["record"]


@pytest.mark.parametrize("env", ["local", "staging", "prod"])
def test_seed_defaults_keep_their_names_severities_and_seed_labels(env: str) -> None:
    found: dict[str, set[str]] = {}
    for alert in alerts_of(env):
        if alert["alert"] in SEED_DEFAULTS:
            assert alert["labels"]["seed_rule"] == SEED_DEFAULTS[alert["alert"]][1]
            found.setdefault(alert["alert"], set()).add(alert["labels"]["severity"])
    assert found == {name: severities for name, (severities, _) in SEED_DEFAULTS.items()}


def test_local_waits_seconds_and_prod_keeps_the_seeds_minutes() -> None:
    def waits(env: str) -> dict[str, float]:
        return {alert["alert"]: duration_seconds(alert.get("for", "0s")) for alert in alerts_of(env)
                if alert["labels"].get("seed_rule") and alert["labels"]["severity"] != "critical"}

    local, prod = waits("local"), waits("prod")
    assert max(local.values()) <= 15, local
    assert prod == {"HighErrorRate": 300, "AIOperationFailureSpike": 60, "SystemOverload": 120,
                    "AICostThresholdExceeded": 300, "StorageOperationFailures": 300}


def test_storage_escalates_to_critical_after_the_specs_wait() -> None:
    for env, wait in (("prod", "30m"), ("local", "2m")):
        (critical,) = [a for a in alerts_of(env) if a["alert"] == "StorageOperationFailures"
                       and a["labels"]["severity"] == "critical"]
        assert critical["for"] == wait
        (high,) = [a for a in alerts_of(env) if a["alert"] == "StorageOperationFailures"
                   and a["labels"]["severity"] == "high"]
        assert high["expr"] == critical["expr"]


def test_thresholds_come_from_the_spec(write_spec) -> None:
    spec = yaml.safe_load((ROOT / "stack.yaml").read_text())
    spec["capacity"]["max_concurrent_operations"] = 7
    spec["ai"]["budgets"]["hourly_usd"] = 12.5
    path = write_spec(spec)
    files = render_files(load_spec("prod", path), COMPOSE)
    rules = {r["alert"]: r for g in yaml.safe_load(files["prometheus/rules/seed-defaults.yml"])["groups"]
             for r in g["rules"] if "alert" in r}
    assert rules["SystemOverload"]["expr"].rstrip().endswith("> 7")
    assert rules["AICostThresholdExceeded"]["expr"].rstrip().endswith("> 12.5")


def test_a_renamed_catalogue_metric_breaks_the_render(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules read metric names from the catalogue; one missing there must not render silently."""
    renamed = {name: spec for name, spec in rule_context.catalogue().items()
               if name != "theodore_requests_total"}
    monkeypatch.setattr(rule_context, "catalogue", lambda: renamed)
    with pytest.raises(RenderError, match="theodore_requests_total"):
        render_files(load_spec("local"), COMPOSE)


def test_an_slo_latency_off_the_spanmetrics_buckets_is_refused(write_spec) -> None:
    spec = yaml.safe_load((ROOT / "stack.yaml").read_text())
    spec["services"]["theodore-demo"]["slo"]["latency_seconds"] = 0.3
    with pytest.raises(SpecError, match=r"services\.theodore-demo\.slo\.latency_seconds"):
        render_files(load_spec("local", write_spec(spec)), COMPOSE)


LOG_ALERTS = {"CriticalLogEvents", "SecurityEventDetected", "ErrorLogSpike"}


def vmalert_dry_run(rules: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary_path("vmalert")), "-dryRun", f"-rule={rules}"],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("env", ["local", "staging", "prod"])
def test_vmalert_accepts_the_rendered_log_rules(env: str) -> None:
    """vmalert parses every LogsQL expression (each must end in a `stats` its alerts come from)."""
    (rules,) = log_rule_files(env)
    proc = vmalert_dry_run(rules)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {r["alert"] for r in log_alerts_of(env)} == LOG_ALERTS


def test_vmalert_rejects_a_broken_logsql_expression(tmp_path: Path) -> None:
    (rules,) = log_rule_files("local")
    broken = tmp_path / "logs.yml"
    broken.write_text(rules.read_text().replace("count() as events", "count( as events", 1))
    proc = vmalert_dry_run(broken)
    assert proc.returncode != 0
    assert "CriticalLogEvents" in proc.stdout + proc.stderr


@pytest.mark.parametrize("env", ["local", "staging", "prod"])
def test_log_rules_carry_the_labels_routing_uses(env: str) -> None:
    """The tenant and environment labels come from the spec; each rule's stats names `service`
    (renamed from service.name, which vmalert would otherwise label service_name)."""
    spec = load_spec(env).data
    (group,) = log_groups(env)
    assert group["type"] == "vlogs"
    assert group["labels"] == {"project": spec["project"], "environment": env}
    account, project = log_tenant(spec)
    assert group["headers"] == [f"AccountID: {account}", f"ProjectID: {project}"]
    by_severity: dict[str, set[str]] = {}
    for rule in group["rules"]:
        assert rule["expr"].rstrip().endswith("| rename service.name as service"), rule["alert"]
        assert rule["labels"]["stats_result"] == "", "vmalert's stats_result label is dropped"
        by_severity.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
        assert rule["for"] == spec["alerting"]["rule_for"]["logs"]
    assert by_severity == {"CriticalLogEvents": {"critical"}, "SecurityEventDetected": {"high", "critical"},
                           "ErrorLogSpike": {"medium"}}


def test_vmalert_reads_the_rendered_rules_in_both_runtimes(tmp_path: Path) -> None:
    state = State(tmp_path)
    native = programs(load_spec("local").data, state)["vmalert"]
    rule_flags = [flag for flag in native if flag.startswith("-rule=")]
    assert rule_flags == [f"-rule={state.config / 'vmalert' / 'rules' / '*.yml'}"]
    files = render_files(load_spec("local"), COMPOSE)
    assert [name for name in files if name.startswith("vmalert/")] == ["vmalert/rules/logs.yml"]
    vmalert = yaml.safe_load(files["compose.yaml"])["services"]["vmalert"]
    assert "./vmalert/rules:/etc/vmalert/rules:ro" in vmalert["volumes"]
    assert "-rule=/etc/vmalert/rules/*.yml" in vmalert["command"]


# --- The log rules' LogsQL on a real VictoriaLogs ----------------------------------------------
# Lines shaped as the collector writes our apps' OTLP logs (fields service.name, severity_text,
# scope.name, component, category; the app's JSON line in _msg), some backdated, then each
# rendered rule's expression evaluated the way vmalert does (stats_query at a time).


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def logstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    data = tmp_path_factory.mktemp("victorialogs")
    process = subprocess.Popen([str(binary_path("victoria-logs")), f"-storageDataPath={data}",
                                f"-httpListenAddr=127.0.0.1:{port}", "-inmemoryDataFlushInterval=1s"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "VictoriaLogs did not start"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _line(service: str, severity: str, event: dict[str, Any], ago_s: float = 0, scope: str = "probe",
          **attributes: str) -> dict[str, Any]:
    return {"_time": str(time.time_ns() - int(ago_s * 1e9)), "service.name": service,
            "deployment.environment": "local", "severity_text": severity, "scope.name": scope,
            "_msg": json.dumps(event), **attributes}


def _ingest(base: str, lines: list[dict[str, Any]]) -> None:
    query = urllib.parse.urlencode({"_stream_fields": "service.name,deployment.environment",
                                    "_msg_field": "_msg", "_time_field": "_time"})
    request = urllib.request.Request(f"{base}/insert/jsonline?{query}", method="POST",
                                     data="\n".join(json.dumps(line) for line in lines).encode(),
                                     headers={"Content-Type": "application/stream+json"})
    urllib.request.urlopen(request, timeout=10).close()


def _alerts(base: str, rule: dict[str, Any]) -> dict[tuple[tuple[str, str], ...], float]:
    """What the rule's expression returns now: each row's labels → its value."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = urllib.parse.urlencode({"query": rule["expr"], "time": now}).encode()
    with urllib.request.urlopen(f"{base}/select/logsql/stats_query", data=body, timeout=10) as response:
        result = json.loads(response.read())["data"]["result"]
    return {tuple(sorted((k, v) for k, v in row["metric"].items() if k != "__name__")): float(row["value"][1])
            for row in result}


def test_log_rules_fire_on_the_lines_they_mean_and_stay_silent_on_the_rest(logstore: str) -> None:
    """Each rule returns exactly the rows that must alert: a CRITICAL or FATAL line (component from
    the attribute, else the logger's scope), a high or critical security event (not a low one),
    a burst of at least 10 errors (not 9, nor a burst under a steady hour of errors)."""
    security = {"category": "security", "component": "auth"}
    lines = [
        _line("svc-crit", "FATAL", {"event": "database unreachable"}, component="storage", category="system"),
        _line("svc-crit", "CRITICAL", {"event": "no component"}, scope="theodore.jobs"),
        _line("svc-crit", "INFO", {"event": "fine"}, component="api"),
        _line("svc-crit", "FATAL", {"event": "an hour ago"}, ago_s=3600 - 60, component="old"),
        _line("svc-sec", "WARN", {"event": "SECURITY: brute_force", "severity": "critical",
                                  "security_event": "brute_force"}, **security),
        _line("svc-sec", "WARN", {"event": "SECURITY: port_scan", "severity": "high",
                                  "security_event": "port_scan"}, **security),
        _line("svc-sec", "WARN", {"event": "SECURITY: odd_agent", "severity": "low",
                                  "security_event": "odd_agent"}, **security),
        _line("svc-sec", "WARN", {"event": "not security", "severity": "critical",
                                  "security_event": "fake"}, category="system"),
        *[_line("svc-spike", "ERROR", {"event": "scrape failed"}, ago_s=i, component="scraper") for i in range(10)],
        *[_line("svc-few", "ERROR", {"event": "scrape failed"}, ago_s=i, component="scraper") for i in range(9)],
        *[_line("svc-steady", "ERROR", {"event": "scrape failed"}, ago_s=60 * i, component="scraper")
          for i in range(10, 59)],
        *[_line("svc-steady", "ERROR", {"event": "scrape failed"}, ago_s=i, component="scraper") for i in range(10)],
        *[_line("svc-spike", "WARN", {"event": "slow"}, ago_s=i, component="scraper") for i in range(20)],
    ]
    _ingest(logstore, lines)
    rules = {(r["alert"], r["labels"]["severity"]): r for r in log_alerts_of("local")}

    def rows(alert: str, severity: str) -> dict[tuple[tuple[str, str], ...], float]:
        return _alerts(logstore, rules[alert, severity])

    deadline = time.monotonic() + 30
    while not rows("ErrorLogSpike", "medium") and time.monotonic() < deadline:
        time.sleep(0.5)  # lines become searchable within the flush interval
    assert rows("CriticalLogEvents", "critical") == {
        (("component", "storage"), ("service", "svc-crit")): 1,
        (("component", "theodore.jobs"), ("service", "svc-crit")): 1}
    assert rows("SecurityEventDetected", "critical") == {
        (("security_event", "brute_force"), ("service", "svc-sec")): 1}
    assert rows("SecurityEventDetected", "high") == {
        (("security_event", "port_scan"), ("service", "svc-sec")): 1}
    assert rows("ErrorLogSpike", "medium") == {
        (("component", "scraper"), ("service", "svc-spike")): pytest.approx(10 / 300)}


def runbook_sections() -> dict[str, str]:
    """Heading anchor (GitHub's: lower case, punctuation dropped, spaces to dashes) → body."""
    text = (ROOT / "prometheus" / "runbooks.md").read_text()
    parts = re.split(r"^#{2,3} (.+)$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-"): body
            for title, body in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.mark.parametrize("env", ["local", "prod"])
def test_every_alert_has_a_runbook_section_with_meaning_impact_diagnosis_mitigation(env: str) -> None:
    sections = runbook_sections()
    for alert in alerts_of(env) + log_alerts_of(env):
        anchor = alert["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor in sections, f"{alert['alert']}: no runbook section #{anchor}"
        for part in ("Meaning", "Impact", "Diagnosis", "Mitigation"):
            assert f"**{part}**" in sections[anchor], f"{alert['alert']}: runbook lacks {part}"


def test_slo_latency_buckets_are_the_collectors_spanmetrics_buckets() -> None:
    """rule_context keeps the bucket list the collector template writes: they must agree."""
    collector = yaml.safe_load((RENDERED / "prod" / "otel-collector" / "config.yaml").read_text())
    buckets = collector["connectors"]["spanmetrics"]["histogram"]["explicit"]["buckets"]
    in_ms = [float(b[:-2]) if b.endswith("ms") else float(b[:-1]) * 1000 for b in buckets]
    assert in_ms == list(rule_context.SPANMETRICS_BUCKETS_MS)
