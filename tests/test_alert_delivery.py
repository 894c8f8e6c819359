"""A page that really arrives: faults in the demo on a native stack reach PagerDuty and Slack.

The native stack (ports shifted by PORT_OFFSET, temporary state) gets its receiver secrets
from the environment as a user's would; Alertmanager delivers to local receivers that check
each payload's shape. See ``theodore_bench.drill`` (bench/) for the drill itself. Latencies are
printed (``-s``), never asserted: ``make bench`` reports them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from theodore_bench.drill import (
    EXPECTED,
    RESOLVES,
    DrillResult,
    drill_env,
    drill_spec,
    run_drill,
)
from theodore_obs.testing import Receivers

from .conftest import load_stack, run_cli

PORT_OFFSET = 12500
ROUTING_KEY = secrets.token_hex(16)


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    with Receivers() as found:
        yield found


@pytest.fixture(scope="module")
def drill(receivers: Receivers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The drill run once on a fresh native stack; yields spec, env, state and the result."""
    root = tmp_path_factory.mktemp("drill")
    spec = drill_spec(load_stack(), receivers, PORT_OFFSET)
    spec_file = root / "stack.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    env = {"THEODORE_OBS_STATE": str(root / "state"), **drill_env(receivers, ROUTING_KEY)}
    started = run_cli("up", "--spec", str(spec_file), "--timeout", "120", env=env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        result = run_drill(spec, receivers)
        yield {"spec": spec, "env": env, "state": root / "state", "result": result}
    finally:
        run_cli("down", env=env)


def test_each_fault_pages_pagerduty_with_its_alert(drill: dict[str, Any], receivers: Receivers) -> None:
    result: DrillResult = drill["result"]
    for alertname, severity in EXPECTED.items():
        page = result.triggers[alertname].body
        assert page["routing_key"] == ROUTING_KEY
        assert page["payload"]["severity"] == {"critical": "critical", "high": "error", "medium": "warning"}[severity]
        details = page["payload"]["custom_details"]
        assert details["runbook_url"].endswith("#" + alertname.lower())
        assert details["dashboard_url"].startswith("http://localhost:3000/d/")
        assert details["summary"] and details["description"]
        links = {link["text"]: link["href"] for link in page["links"]}
        am = f"http://127.0.0.1:{drill['spec']['ports']['alertmanager']}"
        assert links["Silence"].startswith(f"{am}/#/silences/new?filter=")
        assert alertname in links["Silence"]
        firing = details["firing"][0]["labels"]
        assert (firing["alertname"], firing["severity"]) == (alertname, severity)
        print(f"{alertname}: paged {result.latency(alertname):.1f}s after the faults began")
    assert not receivers.failures


def test_slack_gets_the_same_alerts_from_the_after_hours_receivers(drill: dict[str, Any],
                                                                   receivers: Receivers) -> None:
    for alertname, severity in EXPECTED.items():
        title = f"[FIRING:1] {severity.upper()} {alertname}"
        message = receivers.wait_for(
            "slack", lambda d, t=title: d.body["attachments"][0]["title"].startswith(t), timeout=30)
        attachment = message.body["attachments"][0]
        receiver = severity if severity == "critical" else f"{severity}-after-hours"
        assert attachment["footer"] == f"Alertmanager · receiver {receiver}"
        assert {a["text"] for a in attachment["actions"]} == {"Runbook", "Dashboard", "Silence"}
        assert message.body["channel"] == "#theodore-alerts"


def test_the_resolve_arrives_after_recovery(drill: dict[str, Any], receivers: Receivers) -> None:
    result: DrillResult = drill["result"]
    assert result.resolve is not None
    assert result.resolve.body["dedup_key"] == result.triggers[RESOLVES].body["dedup_key"]
    assert result.resolve.received_at > result.fault_cleared
    receivers.wait_for("slack", lambda d: d.body["attachments"][0]["title"].startswith("[RESOLVED]")
                       and RESOLVES in d.body["attachments"][0]["title"], timeout=30)
    print(f"{RESOLVES}: resolved {result.recovery:.1f}s after the faults were cleared")


def test_the_watchdog_heartbeat_reaches_the_deadmans_switch(receivers: Receivers) -> None:
    beat = receivers.wait_for("webhook", lambda d: d.path == "/webhook/deadmans-switch", timeout=30)
    assert beat.body["commonLabels"]["alertname"] == "Watchdog"


def test_no_secret_reaches_configs_or_messages(drill: dict[str, Any], receivers: Receivers) -> None:
    """Secrets live in 0600 files; configs name the files; messages carry none but the routing key."""
    env, state = drill["env"], drill["state"]
    values = [env[k] for k in ("SLACK_API_URL", "PAGERDUTY_ROUTING_KEY", "SMTP_PASSWORD", "DEADMANS_SWITCH_URL")]
    for path in (state / "config").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not [v for v in values if v in text], path
    for path in (state / "secrets").iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    slack = json.dumps([d.body for d in receivers.of("slack")])
    assert not [v for v in values if v in slack]
    pages = [{k: v for k, v in d.body.items() if k != "routing_key"} for d in receivers.of("pagerduty")]
    assert not [v for v in values if v in json.dumps(pages)]
