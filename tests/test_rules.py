"""Alerting and recording rules: promtool unit tests, the contracts routing and dashboards use."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_obs import rule_context
from theodore_obs.render import COMPOSE, RenderError, native_runtime, render_files
from theodore_obs.rule_context import DASHBOARD_UIDS, duration_seconds
from theodore_obs.spec import SpecError, load_spec
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
    return sorted((RENDERED / env / "loki" / "rules").glob("*/*.yml"))


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
    log_alerts = [rule for path in log_rule_files(env)
                  for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]
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


@pytest.mark.parametrize("env", ["local", "prod"])
def test_lokitool_accepts_the_rendered_log_rules(env: str) -> None:
    (rules,) = log_rule_files(env)
    assert rules.parent.name == "fake", "single-tenant Loki reads the tenant 'fake'"
    proc = subprocess.run([str(binary_path("lokitool")), "rules", "check", f"--rule-files={rules}"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = {r["alert"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]}
    assert names == {"CriticalLogEvents", "SecurityEventDetected", "ErrorLogSpike"}


def test_lokitool_rejects_a_broken_logql_expression(tmp_path: Path) -> None:
    (rules,) = log_rule_files("local")
    broken = tmp_path / "theodore.yml"
    broken.write_text(rules.read_text().replace("[5m])", "[5m)", 1))
    proc = subprocess.run([str(binary_path("lokitool")), "rules", "check", f"--rule-files={broken}"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "CriticalLogEvents" in proc.stdout + proc.stderr


def test_loki_reads_rules_from_the_rendered_tree_in_both_runtimes(tmp_path: Path) -> None:
    native = yaml.safe_load(render_files(load_spec("local"), native_runtime(tmp_path))["loki/loki.yaml"])
    assert native["ruler"]["storage"]["local"]["directory"] == str(tmp_path / "config" / "loki" / "rules")
    compose = yaml.safe_load(render_files(load_spec("local"), COMPOSE)["compose.yaml"])
    assert "./loki/rules:/etc/loki/rules:ro" in compose["services"]["loki"]["volumes"]


def runbook_sections() -> dict[str, str]:
    """Heading anchor (GitHub's: lower case, punctuation dropped, spaces to dashes) → body."""
    text = (ROOT / "prometheus" / "runbooks.md").read_text()
    parts = re.split(r"^#{2,3} (.+)$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-"): body
            for title, body in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.mark.parametrize("env", ["local", "prod"])
def test_every_alert_has_a_runbook_section_with_meaning_impact_diagnosis_mitigation(env: str) -> None:
    sections = runbook_sections()
    log_alerts = [rule for path in log_rule_files(env)
                  for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]
    for alert in alerts_of(env) + log_alerts:
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
