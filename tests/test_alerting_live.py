"""Alert rules on a running native stack: loaded, evaluated, and firing into Alertmanager.

The stack runs the `local` profile on the spec's ports shifted by PORT_OFFSET, in a temporary
state directory, with the demo service and its load: faults are injected through the demo's
own API (LLM overloads, long prompts) and as OTLP log records sent to the collector.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

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


def send_log(stack: dict[str, Any], service: str, severity: str, body: dict[str, Any],
             attributes: dict[str, str]) -> None:
    def kv(key: str, value: str) -> dict[str, Any]:
        return {"key": key, "value": {"stringValue": value}}

    record = {"timeUnixNano": str(time.time_ns()), "severityText": severity,
              "severityNumber": {"CRITICAL": 21, "WARNING": 13}[severity],
              "body": {"stringValue": json.dumps(body)},
              "attributes": [kv(k, v) for k, v in attributes.items()]}
    payload = {"resourceLogs": [{"resource": {"attributes": [kv("service.name", service)]},
                                 "scopeLogs": [{"scope": {"name": "probe"}, "logRecords": [record]}]}]}
    request = urllib.request.Request(url(stack, "otlp_http", "/v1/logs"), data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


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


def test_loki_ruler_loads_the_log_rules(stack: dict[str, Any]) -> None:
    def loaded() -> set[str]:
        with urllib.request.urlopen(url(stack, "loki", "/loki/api/v1/rules"), timeout=5) as response:
            namespaces = yaml.safe_load(response.read())
        return {r["alert"] for groups in (namespaces or {}).values() for g in groups for r in g["rules"]}

    assert eventually(loaded, timeout=90) == {"CriticalLogEvents", "SecurityEventDetected", "ErrorLogSpike"}


def test_a_critical_log_line_pages_through_lokis_ruler_into_alertmanager(stack: dict[str, Any]) -> None:
    service = f"probe-{uuid.uuid4().hex[:8]}"
    send_log(stack, service, "CRITICAL", {"message": "database unreachable", "level": "critical"},
             {"component": "storage", "category": "system"})

    def arrived() -> list[dict[str, Any]]:
        return [a for a in in_alertmanager(stack, "CriticalLogEvents") if a["labels"].get("service") == service]

    (alert,) = eventually(arrived, timeout=120, every=2)
    assert alert["labels"] | {"service": service} == {
        "alertname": "CriticalLogEvents", "service": service, "component": "storage",
        "severity": "critical", "project": "theodore", "environment": "local"}
    assert alert["annotations"]["runbook_url"].endswith("#criticallogevents")
    assert alert["annotations"]["summary"] == f"{service}: 1 critical log events from storage"


def test_a_critical_security_event_raises_a_critical_security_alert(stack: dict[str, Any]) -> None:
    service = f"probe-{uuid.uuid4().hex[:8]}"
    send_log(stack, service, "WARNING", {"message": "SECURITY: brute_force", "severity": "critical",
                                         "security_event": "brute_force"},
             {"component": "auth", "category": "security"})

    def arrived() -> list[dict[str, Any]]:
        return [a for a in in_alertmanager(stack, "SecurityEventDetected")
                if a["labels"].get("service") == service]

    (alert,) = eventually(arrived, timeout=120, every=2)
    assert (alert["labels"]["severity"], alert["labels"]["security_event"]) == ("critical", "brute_force")


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
