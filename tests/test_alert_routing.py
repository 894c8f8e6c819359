"""Alertmanager routing, on-call hours, maintenance, inhibition and notification templates.

amtool checks every branch of the rendered tree; a real Alertmanager, rendered from test
specs whose business hours cover or exclude now, delivers to local Slack, PagerDuty and
webhook receivers that check each payload's shape (amtool ignores time, delivery does not).
"""

from __future__ import annotations

import datetime as dt
import secrets
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_obs.testing import Delivery, Receivers
from theodore_obs.tools import binary_path

from .conftest import ROOT, load_stack, run_cli
from .support.alertmanager import Alertmanager, alert, running_alertmanager

PORT_OFFSET = 500
ROUTING_KEY = secrets.token_hex(16)
SMTP_PASSWORD = "smtp-" + secrets.token_hex(8)

# (labels, receivers amtool must resolve), for each branch of the rendered tree.
BRANCHES = [
    ({"alertname": "StorageOperationFailures", "severity": "critical", "service": "theodore-demo"}, "critical"),
    ({"alertname": "HighErrorRate", "severity": "high", "service": "theodore-demo"}, "high-after-hours,high"),
    ({"alertname": "AIOperationFailureSpike", "severity": "medium", "service": "theodore-demo"}, "medium"),
    ({"alertname": "SomeTicket", "severity": "low", "service": "theodore-demo"}, "low"),
    ({"alertname": "SystemOverload", "severity": "high", "seed_rule": "system_overload"},
     "high-after-hours,rule-system-overload"),
    ({"alertname": "StorageOperationFailures", "severity": "high", "seed_rule": "storage_operation_failures"},
     "high-after-hours,rule-storage-operation-failures"),
    ({"alertname": "StorageOperationFailures", "severity": "critical", "seed_rule": "storage_operation_failures"},
     "critical"),
    ({"alertname": "AICostThresholdExceeded", "severity": "medium", "seed_rule": "cost_threshold_exceeded"},
     "rule-cost-threshold-exceeded"),
    ({"alertname": "Watchdog", "severity": "none"}, "deadmans-switch"),
    ({"alertname": "Unlabelled"}, "default"),
]


def amtool_routes(config: Path, labels: dict[str, str], expect: str) -> subprocess.CompletedProcess[str]:
    argv = [str(binary_path("amtool")), "config", "routes", "test", f"--config.file={config}",
            f"--verify.receivers={expect}", *(f"{k}={v}" for k, v in labels.items())]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("env", ["local", "prod"])
@pytest.mark.parametrize(("labels", "expect"), BRANCHES, ids=[b[1] for b in BRANCHES])
def test_amtool_resolves_each_branch(env: str, labels: dict[str, str], expect: str) -> None:
    result = amtool_routes(ROOT / "rendered" / env / "alertmanager" / "alertmanager.yml", labels, expect)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == expect


def test_amtool_fails_on_a_wrong_receiver() -> None:
    """The branch check can fail: high never goes to PagerDuty's critical receiver alone."""
    result = amtool_routes(ROOT / "rendered" / "local" / "alertmanager" / "alertmanager.yml",
                           {"alertname": "HighErrorRate", "severity": "high"}, "critical")
    assert result.returncode != 0
    assert "did not match" in result.stdout + result.stderr


@pytest.mark.parametrize(("change", "where", "expected"), [
    (lambda a: a["on_call"]["business_hours"].update(times=[{"start_time": "9am", "end_time": "18:00"}]),
     "alerting.on_call.business_hours.times.0.start_time", "a string matching"),
    (lambda a: a["on_call"]["after_hours"].update(high=["pager"]), "alerting.on_call.after_hours.high.0",
     "one of"),
    (lambda a: a["timings"]["critical"].update(group_wait="soon"), "alerting.timings.critical.group_wait",
     "Prometheus-style duration"),
    (lambda a: a["maintenance_windows"][0].update(severities=["urgent"]),
     "alerting.maintenance_windows.0.severities.0", "one of"),
])
def test_bad_routing_spec_is_refused_by_field(change: Any, where: str, expected: str, write_spec: Any,
                                              tmp_path: Path) -> None:
    spec = load_stack()
    change(spec["alerting"])
    result = run_cli("render", "--spec", str(write_spec(spec)), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert where in result.stderr and expected in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_spec_with_only_the_original_keys_still_renders_a_working_tree(write_spec: Any, tmp_path: Path) -> None:
    """No timings, on-call, maintenance, rule routes or dead-man's switch: one receiver per severity."""
    spec = load_stack()
    for key in ("timings", "on_call", "maintenance_windows", "rule_routes", "pagerduty_url"):
        spec["alerting"].pop(key)
    spec["alerting"]["receivers"].pop("deadmans_switch")
    spec["environments"]["local"]["alerting"].pop("timings")
    result = run_cli("render", "--env", "local", "--spec", str(write_spec(spec)), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    config = tmp_path / "local" / "alertmanager" / "alertmanager.yml"
    assert "time_intervals" not in yaml.safe_load(config.read_text())
    check = subprocess.run([str(binary_path("amtool")), "check-config", str(config)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    for labels, expect in [({"severity": "high", "seed_rule": "system_overload"}, "high"),
                           ({"alertname": "Watchdog", "severity": "none"}, "default")]:
        assert amtool_routes(config, labels, expect).stdout.strip() == expect


def _route(tree: dict[str, Any], severity: str) -> dict[str, Any]:
    (route,) = [r for r in tree["routes"] if r.get("matchers") == [f'severity="{severity}"']]
    return route


def test_rendered_tree_times_each_severity_by_the_clock() -> None:
    """What amtool cannot see: which branch is active when, and what maintenance mutes."""
    config = yaml.safe_load((ROOT / "rendered/prod/alertmanager/alertmanager.yml").read_text())
    tree = config["route"]
    after, *by_rule, business = _route(tree, "high")["routes"]
    assert after == {"receiver": "high-after-hours", "continue": True,
                     "mute_time_intervals": ["business-hours", "weekly-maintenance"]}
    assert business == {"receiver": "high", "active_time_intervals": ["business-hours"],
                        "mute_time_intervals": ["weekly-maintenance"]}
    overload = {"matchers": ['seed_rule="system_overload"'], "receiver": "rule-system-overload",
                "repeat_interval": "2m", "active_time_intervals": ["business-hours"],
                "mute_time_intervals": ["weekly-maintenance"]}
    assert overload in by_rule and len(by_rule) == 5
    assert "active_time_intervals" not in _route(tree, "medium")["routes"][0]
    assert "routes" not in _route(tree, "critical")
    assert _route(tree, "low")["active_time_intervals"] == ["business-hours"]
    assert _route(tree, "medium")["mute_time_intervals"] == ["weekly-maintenance"]
    critical = _route(tree, "critical")
    assert "mute_time_intervals" not in critical and "active_time_intervals" not in critical
    assert (critical["group_wait"], critical["repeat_interval"]) == ("10s", "1h")
    (watchdog,) = [r for r in tree["routes"] if r["receiver"] == "deadmans-switch"]
    assert "mute_time_intervals" not in watchdog and watchdog["repeat_interval"] == "1m"
    intervals = {i["name"]: i["time_intervals"] for i in config["time_intervals"]}
    assert intervals["business-hours"] == [{"times": [{"start_time": "09:00", "end_time": "18:00"}],
                                            "weekdays": ["monday:friday"], "location": "UTC"}]


def test_receivers_read_every_secret_from_files() -> None:
    """No receiver holds a URL, key or password inline: only *_file paths under the secrets dir."""
    config = yaml.safe_load((ROOT / "rendered/prod/alertmanager/alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for kind, entries in receiver.items():
            for entry in entries if kind.endswith("_configs") else []:
                assert not {"api_url", "routing_key", "service_key", "url", "auth_password"} & set(entry)
                files = [v for k, v in entry.items() if k.endswith("_file")]
                assert files and all(v.startswith("/run/secrets/") for v in files), (receiver["name"], entry)


# --- a real Alertmanager -------------------------------------------------------------------

def _weekday(days_from_today: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days_from_today)).strftime("%A").lower()


def routing_spec(receivers: Receivers, port: int, business_now: bool, maintenance_now: bool = False) -> dict[str, Any]:
    """stack.yaml with Alertmanager on ``port`` (+ our offset), PagerDuty at the local receiver,
    and business hours that cover today (all day) or only a day three days away."""
    spec = load_stack()
    spec["ports"]["alertmanager"] = port + PORT_OFFSET
    alerting = spec["alerting"]
    alerting["pagerduty_url"] = receivers.url("pagerduty", "v2/enqueue")
    alerting["receivers"]["email"].update(smarthost=receivers.smtp_address, require_tls=False)
    alerting["on_call"]["business_hours"] = {"weekdays": [_weekday(0 if business_now else 3)],
                                             "times": [{"start_time": "00:00", "end_time": "24:00"}]}
    if maintenance_now:
        alerting["maintenance_windows"] = [{"name": "now", "weekdays": [_weekday(0)],
                                            "times": [{"start_time": "00:00", "end_time": "24:00"}],
                                            "severities": ["high", "medium", "low"]}]
    return spec


def receiver_secrets(receivers: Receivers) -> dict[str, str]:
    return {"slack_api_url": receivers.url("slack", "T000/B000/XXXX"),
            "pagerduty_routing_key": ROUTING_KEY,
            "webhook_url": receivers.url("webhook", "tickets"),
            "deadmans_switch_url": receivers.url("webhook", "deadmans-switch"),
            "smtp_password": SMTP_PASSWORD}


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    with Receivers() as found:
        yield found


@pytest.fixture(scope="module")
def business_am(receivers: Receivers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    spec = routing_spec(receivers, 9193, business_now=True)
    with running_alertmanager(spec, tmp_path_factory.mktemp("am-business"), receiver_secrets(receivers)) as am:
        yield am


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def slack_for(name: str, status: str = "firing") -> Any:
    tag = "[RESOLVED]" if status == "resolved" else "[FIRING"
    return lambda d: name in d.body["attachments"][0]["title"] and d.body["attachments"][0]["title"].startswith(tag)


def pagerduty_for(name: str, action: str = "trigger") -> Any:
    return lambda d: d.body["event_action"] == action and d.body["payload"]["class"] == name


def footer(delivery: Delivery) -> str:
    return delivery.body["attachments"][0]["footer"]


def settle_after(receivers: Receivers, am: Alertmanager, marker: str) -> None:
    """Send a critical marker alert and wait for its page plus one group_wait: anything posted
    with it that was going to be sent has been sent by then."""
    am.post(alert(marker, "critical", service=unique("marker-")))
    receivers.wait_for("pagerduty", pagerduty_for(marker), timeout=60)
    time.sleep(3)


def test_business_hours_high_goes_to_slack_and_email_not_pagerduty(receivers: Receivers,
                                                                  business_am: Alertmanager) -> None:
    name = unique("HighInHours")
    sent = alert(name, "high")
    business_am.post(sent)
    delivery = receivers.wait_for("slack", slack_for(name))
    assert footer(delivery) == "Alertmanager · receiver high"
    mail = receivers.wait_for("email", lambda d: name in d.body["subject"]).body
    email_spec = load_stack()["alerting"]["receivers"]["email"]
    assert mail["subject"] == f"[FIRING:1] HIGH {name} (svc-a)"
    assert (mail["from"], mail["to"]) == (email_spec["from"], [email_spec["to"]])
    assert mail["auth"] == ["", email_spec["auth_username"], SMTP_PASSWORD]
    for text in (*sent["annotations"].values(), f"{business_am.base}/#/silences/new?filter="):
        assert text in mail["text"]
    settle_after(receivers, business_am, unique("Marker"))
    assert not receivers.of("pagerduty", pagerduty_for(name))
    assert not receivers.failures


def test_low_goes_to_the_ticket_webhook_in_business_hours(receivers: Receivers, business_am: Alertmanager) -> None:
    name = unique("LowInHours")
    business_am.post(alert(name, "low"))
    delivery = receivers.wait_for("webhook", lambda d: d.body["commonLabels"].get("alertname") == name)
    assert delivery.path == "/webhook/tickets"
    assert delivery.body["receiver"] == "low"


def test_a_seed_rule_goes_to_its_own_channels_in_business_hours(receivers: Receivers,
                                                              business_am: Alertmanager) -> None:
    """Seed 003: system_overload (high) → Slack + webhook, not the severity's Slack + email."""
    service = unique("svc-")
    business_am.post(alert("SystemOverload", "high", service=service, seed_rule="system_overload"))
    slack = receivers.wait_for("slack", lambda d: f"SystemOverload ({service})" in d.body["attachments"][0]["title"])
    assert footer(slack) == "Alertmanager · receiver rule-system-overload"
    hook = receivers.wait_for("webhook", lambda d: d.body["commonLabels"].get("service") == service)
    assert hook.path == "/webhook/tickets" and hook.body["receiver"] == "rule-system-overload"


def test_watchdog_heartbeats_to_the_deadmans_switch(receivers: Receivers, business_am: Alertmanager) -> None:
    business_am.post({**alert("Watchdog", "none"), "labels": {"alertname": "Watchdog", "severity": "none"}})
    delivery = receivers.wait_for("webhook", lambda d: d.path == "/webhook/deadmans-switch")
    assert delivery.body["commonLabels"]["alertname"] == "Watchdog"
    assert not receivers.of("slack", slack_for("Watchdog"))


def test_critical_page_and_slack_carry_links_and_resolve(receivers: Receivers, business_am: Alertmanager) -> None:
    """PagerDuty and Slack both get summary, description, runbook, dashboard and silence links;
    the resolve reaches PagerDuty under the same dedup key and Slack as RESOLVED."""
    name, service = unique("StorageDown"), unique("svc-")
    sent = alert(name, "critical", service=service)
    business_am.post(sent)
    page = receivers.wait_for("pagerduty", pagerduty_for(name)).body
    notes = sent["annotations"]
    assert page["routing_key"] == ROUTING_KEY
    assert page["payload"]["severity"] == "critical"
    assert page["payload"]["source"] == service
    assert notes["summary"] in page["payload"]["summary"]
    details = page["payload"]["custom_details"]
    assert (details["runbook_url"], details["dashboard_url"]) == (notes["runbook_url"], notes["dashboard_url"])
    assert details["description"] == notes["description"]
    silence = f"{business_am.base}/#/silences/new?filter="
    links = {link["text"]: link["href"] for link in page["links"]}
    assert links["Runbook"] == notes["runbook_url"] and links["Dashboard"] == notes["dashboard_url"]
    assert links["Silence"].startswith(silence)
    assert f'alertname="{name}"' in urllib.parse.unquote(links["Silence"])
    assert f'service="{service}"' in urllib.parse.unquote(links["Silence"])

    (message,) = receivers.wait_for("slack", slack_for(name)).body["attachments"]
    assert message["title"] == f"[FIRING:1] CRITICAL {name} ({service})"
    for text in (notes["summary"], notes["description"], notes["runbook_url"], notes["dashboard_url"], silence):
        assert text in message["text"]
    buttons = {a["text"]: a["url"] for a in message["actions"]}
    assert buttons == {"Runbook": notes["runbook_url"], "Dashboard": notes["dashboard_url"],
                       "Silence": links["Silence"]}
    assert ROUTING_KEY not in str(message)

    business_am.post(alert(name, "critical", service=service, resolved=True))
    resolve = receivers.wait_for("pagerduty", lambda d: d.body["event_action"] == "resolve"
                                 and d.body["dedup_key"] == page["dedup_key"], timeout=60)
    assert resolve.body["routing_key"] == ROUTING_KEY
    resolved = receivers.wait_for("slack", slack_for(name, "resolved")).body["attachments"][0]
    assert resolved["color"] == "good" and "Resolved" in resolved["text"]
    assert not receivers.failures


def test_an_alert_without_links_points_at_the_runbook_index_and_grafana(
        receivers: Receivers, business_am: Alertmanager) -> None:
    name = unique("Bare")
    business_am.post({**alert(name, "medium"), "annotations": {"summary": "no links here"}})
    (message,) = receivers.wait_for("slack", slack_for(name)).body["attachments"]
    buttons = {a["text"]: a["url"] for a in message["actions"]}
    spec = load_stack()
    assert buttons["Runbook"] == spec["alerting"]["runbook_base_url"]
    assert buttons["Dashboard"] == spec["grafana"]["url"]
    assert "no links here" in message["text"] and "Runbook:" not in message["text"]


def test_critical_inhibits_lower_severities_of_the_same_alert_and_service(
        receivers: Receivers, business_am: Alertmanager) -> None:
    name, service, other = unique("ErrBurst"), unique("svc-"), unique("svc-")
    business_am.post(alert(name, "critical", service=service), alert(name, "high", service=service),
                     alert(name, "high", service=other))

    def states() -> dict[tuple[str, str], list[str]]:
        return {(a["labels"]["severity"], a["labels"]["service"]): a["status"]["inhibitedBy"]
                for a in business_am.alerts() if a["labels"]["alertname"] == name}

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not states().get(("high", service)):
        time.sleep(0.2)
    found = states()
    assert found[("high", service)], found
    assert not found[("high", other)] and not found[("critical", service)]
    active = {(a["labels"]["severity"], a["labels"]["service"])
              for a in business_am.alerts(inhibited="false") if a["labels"]["alertname"] == name}
    assert active == {("critical", service), ("high", other)}
    receivers.wait_for("slack", lambda d: other in d.body["attachments"][0]["title"])
    settle_after(receivers, business_am, unique("Marker"))
    titles = [d.body["attachments"][0]["title"] for d in receivers.of("slack", slack_for(name))]
    assert not [t for t in titles if "HIGH" in t and service in t], titles


def test_a_down_service_inhibits_the_alerts_it_causes(receivers: Receivers, business_am: Alertmanager) -> None:
    down, healthy, name = unique("svc-"), unique("svc-"), unique("HighErrorRate")
    business_am.post(alert("TargetDown", "high", service=down), alert(name, "high", service=down),
                     alert(name, "high", service=healthy),
                     # A TargetDown without a service label must not silence every unlabelled alert.
                     {**alert("TargetDown", "high"), "labels": {"alertname": "TargetDown", "severity": "high",
                                                                "job": "x"}},
                     {**alert(name, "medium"), "labels": {"alertname": name, "severity": "medium"}})
    time.sleep(1)
    inhibited = {(a["labels"]["alertname"], a["labels"].get("service", "")): bool(a["status"]["inhibitedBy"])
                 for a in business_am.alerts() if a["labels"]["alertname"] in (name, "TargetDown")}
    assert inhibited[(name, down)] is True
    assert inhibited[(name, healthy)] is False
    assert inhibited[(name, "")] is False
    assert inhibited[("TargetDown", down)] is False
    receivers.wait_for("slack", lambda d: healthy in d.body["attachments"][0]["title"])
    receivers.wait_for("slack", lambda d: f"TargetDown ({down})" in d.body["attachments"][0]["title"])


def test_after_hours_high_pages_and_low_waits_for_the_morning(
        receivers: Receivers, tmp_path: Path) -> None:
    with running_alertmanager(routing_spec(receivers, 9195, business_now=False), tmp_path,
                              receiver_secrets(receivers)) as am:
        high, low = unique("HighAfterHours"), unique("LowAfterHours")
        am.post(alert(high, "high"), alert(low, "low"))
        page = receivers.wait_for("pagerduty", pagerduty_for(high)).body
        assert page["payload"]["severity"] == "error"
        assert footer(receivers.wait_for("slack", slack_for(high))) == "Alertmanager · receiver high-after-hours"
        settle_after(receivers, am, unique("Marker"))
        assert not [d for d in receivers.of("slack", slack_for(high)) if footer(d).endswith("receiver high")]
        assert not receivers.of("webhook", lambda d: d.body["commonLabels"].get("alertname") == low)


def test_maintenance_window_mutes_its_severities_only(receivers: Receivers, tmp_path: Path) -> None:
    with running_alertmanager(routing_spec(receivers, 9197, business_now=True, maintenance_now=True), tmp_path,
                              receiver_secrets(receivers)) as am:
        config = yaml.safe_load(am.config.read_text())
        assert {"name": "now", "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "24:00"}],
                                                   "weekdays": [_weekday(0)], "location": "UTC"}]} \
            in config["time_intervals"]
        high, medium = unique("HighInMaintenance"), unique("MediumInMaintenance")
        am.post(alert(high, "high"), alert(medium, "medium"))
        settle_after(receivers, am, unique("CriticalInMaintenance"))
        assert not receivers.of("slack", slack_for(high))
        assert not receivers.of("slack", slack_for(medium))
