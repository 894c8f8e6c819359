"""Alert rules on a running native stack: loaded, evaluated, and firing into Alertmanager.

The stack runs the `local` profile on the spec's ports shifted by PORT_OFFSET, in a temporary
state directory, with the demo service and its load: faults are injected through the demo's
own API (LLM overloads, long prompts) and, for the log alerts vmalert evaluates on
VictoriaLogs, as lines of the seed logger in a short-lived app of its own (under
``opentelemetry-instrument``, exporting over OTLP/HTTP to the collector).
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_obs.rule_context import duration_seconds
from theodore_obs.spec import load_spec

from .conftest import ROOT, native_stack
from .test_native import eventually, get_json

PORT_OFFSET = 12100


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    for info in native_stack(tmp_path_factory.mktemp("alerting"), PORT_OFFSET):
        assert info["up"].returncode == 0, info["up"].stdout + info["up"].stderr
        yield info


def url(stack: dict[str, Any], port: str, path: str) -> str:
    return f"http://127.0.0.1:{stack['spec']['ports'][port]}{path}"


def firing(stack: dict[str, Any], alertname: str) -> list[dict[str, Any]]:
    alerts = get_json(url(stack, "prometheus", "/api/v1/alerts"))["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def in_alertmanager(stack: dict[str, Any], alertname: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"'})
    return get_json(url(stack, "alertmanager", f"/api/v2/alerts?{query}"))


def research(stack: dict[str, Any], queries: list[dict[str, str]]) -> None:
    base = f"http://127.0.0.1:{stack['spec']['services']['theodore-demo']['port']}/research?"

    def one(params: dict[str, str]) -> None:
        try:
            urllib.request.urlopen(base + urllib.parse.urlencode(params), timeout=30).read()
        except urllib.error.HTTPError:
            pass

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, queries))


def app_logs(stack: dict[str, Any], service: str, script: str) -> None:
    """Run ``script`` (Python with ``get_logger`` imported) as the app ``service``: the seed
    logger's lines go over OTLP/HTTP to the stack's collector, flushed when the app exits."""
    code = "from theodore_telemetry import get_logger\n" + textwrap.dedent(script)
    env = {**os.environ, "OTEL_SERVICE_NAME": service, "THEODORE_ENVIRONMENT": "local",
           "OTEL_EXPORTER_OTLP_ENDPOINT": url(stack, "otlp_http", ""),
           "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
    env.pop("OTEL_RESOURCE_ATTRIBUTES", None)
    proc = subprocess.run([str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable,
                           "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def log_alerts(stack: dict[str, Any], alertname: str, service: str) -> list[dict[str, Any]]:
    """The ``alertname`` alerts of ``service`` in Alertmanager, ordered by their labels."""
    alerts = [a for a in in_alertmanager(stack, alertname) if a["labels"].get("service") == service]
    return sorted(alerts, key=lambda a: sorted(a["labels"].items()))


def settled(stack: dict[str, Any], alertname: str, service: str, count: int) -> list[dict[str, Any]]:
    """Once ``count`` alerts arrived, two more evaluations and notifications: what is there
    then is all the rule makes of the lines (those that must not fire had their chance)."""
    eventually(lambda: len(log_alerts(stack, alertname, service)) >= count, timeout=120, every=2)
    time.sleep(3 * EVALUATION_SECONDS)
    return log_alerts(stack, alertname, service)


LOG_LABELS = {"project": "theodore", "environment": "local", "alertgroup": "theodore-logs"}
"""What every log alert carries besides its own labels: the group's labels and vmalert's
``alertgroup`` (routing groups by alertname, service and severity)."""

EVALUATION_SECONDS = duration_seconds(load_spec("local").data["intervals"]["evaluation"])
"""The `local` profile's evaluation interval (vmalert's group interval)."""


def test_prometheus_loads_every_rule_group_and_evaluates_it_cleanly(stack: dict[str, Any]) -> None:
    rendered = {g["name"] for path in (ROOT / "rendered" / "local" / "prometheus" / "rules").glob("*.yml")
                for g in yaml.safe_load(path.read_text())["groups"]}

    def evaluated() -> list[dict[str, Any]] | None:
        groups = get_json(url(stack, "prometheus", "/api/v1/rules"))["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        ready = {g["name"] for g in groups} == rendered and all(r.get("lastEvaluation", "").startswith("20")
                                                                 for r in rules)
        return rules if ready else None

    rules = eventually(evaluated, timeout=90)
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert broken == []


def test_vmalert_loads_the_log_rules_and_evaluates_them_cleanly(stack: dict[str, Any]) -> None:
    rendered = [(r["alert"], r["labels"]["severity"])
                for g in yaml.safe_load((ROOT / "rendered/local/vmalert/rules/logs.yml").read_text())["groups"]
                for r in g["rules"]]

    def evaluated() -> list[dict[str, Any]] | None:
        groups = get_json(url(stack, "vmalert", "/api/v1/rules"))["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        done = rules and all(not r["lastEvaluation"].startswith("0001") for r in rules)
        return rules if done else None

    rules = eventually(evaluated, timeout=90)
    assert sorted((r["name"], r["labels"]["severity"]) for r in rules) == sorted(rendered)
    assert [(r["name"], r["health"], r["lastError"]) for r in rules] == [(r["name"], "ok", "") for r in rules]
    (group,) = get_json(url(stack, "vmalert", "/api/v1/rules"))["data"]["groups"]
    assert (group["name"], group["type"]) == ("theodore-logs", "vlogs")


def test_critical_log_lines_page_through_vmalert_into_alertmanager(stack: dict[str, Any]) -> None:
    """A FATAL line of the seed logger (its `critical`) fires, with its component; the INFO,
    WARN and ERROR lines sent with it do not."""
    service = f"probe-{uuid.uuid4().hex[:8]}"
    app_logs(stack, service, """
        get_logger("storage").critical("database unreachable")
        get_logger("storage").critical("database still unreachable")
        get_logger("api").info("request served")
        get_logger("api").warn("slow request")
        get_logger("api").error("request failed")
    """)
    (alert,) = settled(stack, "CriticalLogEvents", service, 1)
    assert alert["labels"] == {"alertname": "CriticalLogEvents", "service": service, "component": "storage",
                               "severity": "critical", **LOG_LABELS}
    assert alert["annotations"]["summary"] == f"{service}: 2 critical log events from storage"
    assert alert["annotations"]["runbook_url"].endswith("#criticallogevents")
    assert alert["annotations"]["dashboard_url"].endswith("/d/theodore-logs")


def test_high_and_critical_security_events_alert_at_their_severity(stack: dict[str, Any]) -> None:
    """One alert per (service, security event) of severity high or critical; a low and a
    medium event stay silent."""
    service = f"probe-{uuid.uuid4().hex[:8]}"
    app_logs(stack, service, """
        log = get_logger("auth")
        log.security("brute_force", severity="critical", user_id="u-1")
        log.security("port_scan", severity="high")
        log.security("odd_user_agent", severity="low")
        log.security("password_reset_burst")
    """)
    alerts = settled(stack, "SecurityEventDetected", service, 2)
    assert [a["labels"] for a in alerts] == [
        {"alertname": "SecurityEventDetected", "service": service, "security_event": event,
         "severity": severity, **LOG_LABELS}
        for event, severity in [("brute_force", "critical"), ("port_scan", "high")]]
    assert alerts[0]["annotations"]["summary"] == f"{service}: critical security event brute_force"


def test_an_error_burst_fires_error_log_spike_and_fewer_errors_do_not(stack: dict[str, Any]) -> None:
    """Twelve errors of one component in a fresh hour are a spike; nine of another are below
    the threshold of ten."""
    service = f"probe-{uuid.uuid4().hex[:8]}"
    app_logs(stack, service, """
        for i in range(12):
            get_logger("scraper").error("scrape failed", attempt=i)
        for i in range(9):
            get_logger("parser").error("parse failed", attempt=i)
    """)
    (alert,) = settled(stack, "ErrorLogSpike", service, 1)
    assert alert["labels"] == {"alertname": "ErrorLogSpike", "service": service, "component": "scraper",
                               "severity": "medium", **LOG_LABELS}
    assert alert["annotations"]["summary"] == f"{service}: error logs of scraper spike"
    assert alert["annotations"]["description"] == (
        f"scraper of {service} logs errors more than three times as fast as over the last hour (40m/s).")


def test_llm_overloads_fire_ai_operation_failure_spike_within_a_minute(stack: dict[str, Any]) -> None:
    started = time.monotonic()
    research(stack, [{"company": "acme", "note": "overload"}] * 15)
    (alert,) = eventually(lambda: firing(stack, "AIOperationFailureSpike"), timeout=90, every=2)
    assert alert["labels"] | {"service": "theodore-demo"} == {
        "alertname": "AIOperationFailureSpike", "severity": "medium", "service": "theodore-demo",
        "seed_rule": "ai_operation_failure_spike"}
    assert time.monotonic() - started < 75
    assert eventually(lambda: in_alertmanager(stack, "AIOperationFailureSpike"), timeout=30)


def test_long_prompts_over_the_local_budget_fire_ai_cost_threshold_exceeded(stack: dict[str, Any]) -> None:
    """Each 60,000-character note costs about $0.0023 on gpt-4o-mini; 160 of them exceed $0.30."""
    research(stack, [{"company": "acme", "note": "x" * 60000}] * 160)
    (alert,) = eventually(lambda: firing(stack, "AICostThresholdExceeded"), timeout=90, every=2)
    assert alert["labels"]["severity"] == "medium"
    assert alert["labels"]["seed_rule"] == "cost_threshold_exceeded"


def test_scrape_failures_fire_high_error_rate(stack: dict[str, Any]) -> None:
    """Failures that go on (not one burst: a counter's first sample shows no increase)."""
    research(stack, [{"company": "broken-acme"}] * 5)
    query = urllib.parse.quote('theodore_requests_total{status_code="502"}')
    eventually(lambda: get_json(url(stack, "prometheus", f"/api/v1/query?query={query}"))["data"]["result"],
               timeout=60, every=2)
    research(stack, [{"company": "broken-acme"}] * 40)
    (alert,) = eventually(lambda: firing(stack, "HighErrorRate"), timeout=90, every=2)
    assert alert["labels"]["service"] == "theodore-demo"
    assert alert["annotations"]["dashboard_url"].endswith("/d/theodore-service-overview")
