"""One incident from the page to its resolution at the terminal, against a real Alertmanager.

Alertmanager, VictoriaLogs and Prometheus run from the configs `theodore-obs render` makes for
the native runtime (ports shifted by PORT_OFFSET, the drill's receivers: local PagerDuty and
Slack that check each payload). Alertmanager runs with its event recorder on, sending its
events to VictoriaLogs as the rendered config says. The test plays the alert's source (it
posts the alert as Prometheus does) and the operator (the CLI, as a subprocess): fire → page
with dedup key, runbook and dashboard links → ack → timeline → the source resolves while the
ack mutes it (Alertmanager drops that resolve) → `alerts resolve` → PagerDuty gets the
resolve with the trigger's dedup_key, and the timeline tells the whole story.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from theodore_bench.drill import drill_env, drill_spec
from theodore_obs import native
from theodore_obs.clients.alertmanager import matcher_text, matches, silences_alert
from theodore_obs.commands.incident import (
    Target,
    ack_comment,
    exact_matchers,
    is_ack,
    query_matcher,
    silence_labels,
)
from theodore_obs.components import COMPONENTS
from theodore_obs.render import native_runtime, render_files, secret_files, write_tree
from theodore_obs.spec import load_spec
from theodore_obs.testing import Delivery, Receivers
from theodore_obs.timing import wait_until

from .conftest import load_stack, run_cli
from .support.alertmanager import alert, iso

PORT_OFFSET = 1300
ROUTING_KEY = secrets.token_hex(16)
NAME = "PaymentsDown"


RUN = ("victorialogs", "prometheus", "alertmanager", "vmalert")
"""The components this workflow needs, run with the command lines `theodore-obs up` gives them."""


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    with Receivers() as found:
        yield found


@pytest.fixture(scope="module")
def stack(receivers: Receivers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Alertmanager, VictoriaLogs and Prometheus on the shifted ports; yields the spec and the
    CLI's environment."""
    root = tmp_path_factory.mktemp("incident")
    spec = drill_spec(load_stack(), receivers, PORT_OFFSET)
    spec["demo"]["enabled"] = False
    spec_file = root / "stack.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    state = root / "state"
    write_tree(render_files(load_spec("local", spec_file), native_runtime(state)), state / "config")
    values = drill_env(receivers, ROUTING_KEY)
    (state / "secrets").mkdir(mode=0o700)
    for name, env_var in secret_files(spec).items():
        (state / "secrets" / name).write_text(values[env_var])
    processes = []
    try:
        argv_of = native.programs(spec, native.State(state))
        assert "--enable-feature=event-recorder" in argv_of["alertmanager"]  # the timeline's notification rows
        for name in RUN:
            argv = argv_of[name]
            (state / "data" / name).mkdir(parents=True, exist_ok=True)
            log = (root / f"{name}.log").open("wb")
            processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=state / "data" / name))
        for c in COMPONENTS:
            if c.name in RUN:
                wait_until(lambda c=c: _ready(c.health_url(spec["ports"], "127.0.0.1")), 60,
                           what=f"{c.name} not ready")
        yield {"spec": spec, "root": root, "env": {"THEODORE_OBS_SPEC": str(spec_file)},
               "am": f"http://127.0.0.1:{spec['ports']['alertmanager']}"}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def cli(stack: dict[str, Any], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = run_cli("alerts", *args, env=stack["env"], timeout=60)
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done


def timeline(stack: dict[str, Any], name: str = NAME) -> dict[str, Any]:
    return json.loads(cli(stack, "timeline", name, "--since", "1h", "--format", "json").stdout)


def timeline_until(stack: dict[str, Any], shows: Any, what: str, timeout: float = 45,
                   name: str = NAME) -> dict[str, Any]:
    """The timeline, asked every second until ``shows`` it holds what the step waits for."""
    found: list[dict[str, Any]] = []

    def asked() -> bool:
        found[:] = [timeline(stack, name)]
        return bool(shows(found[0]))

    wait_until(asked, timeout, every=1, what=lambda: f"the timeline never showed {what}: {found}")
    return found[0]


def post(stack: dict[str, Any], *alerts: dict[str, Any]) -> None:
    request = urllib.request.Request(f"{stack['am']}/api/v2/alerts", data=json.dumps(list(alerts)).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


def _am(stack: dict[str, Any], path: str) -> Any:
    with urllib.request.urlopen(f"{stack['am']}{path}", timeout=5) as answer:
        return json.loads(answer.read())


def _page(action: str) -> Any:
    return lambda d: d.body["event_action"] == action and d.body["payload"].get("class") == NAME


def _events(story: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [e for e in story["events"] if e["event"] == event]


def _links(trigger: Delivery, firing: dict[str, Any]) -> None:
    """The page carries the alert's runbook and dashboard (custom details and links)."""
    runbook, dashboard = firing["annotations"]["runbook_url"], firing["annotations"]["dashboard_url"]
    details = trigger.body["payload"]["custom_details"]
    assert (details["runbook_url"], details["dashboard_url"]) == (runbook, dashboard)
    links = {link["text"]: link["href"] for link in trigger.body["links"]}
    assert (links["Runbook"], links["Dashboard"]) == (runbook, dashboard)


def _slack_links(message: Delivery, firing: dict[str, Any]) -> None:
    attachment = message.body["attachments"][0]
    buttons = {a["text"]: a["url"] for a in attachment["actions"]}
    assert buttons["Runbook"] == firing["annotations"]["runbook_url"]
    assert buttons["Dashboard"] == firing["annotations"]["dashboard_url"]
    assert f"theodore-obs alerts ack|timeline|resolve {NAME}" in attachment["text"]


def test_one_incident_from_page_to_resolve(stack: dict[str, Any], receivers: Receivers) -> None:
    """fire → page → ack → timeline → source resolves under the ack → resolve → PagerDuty closes."""
    firing = alert(NAME, "critical", service="theodore-demo")
    post(stack, firing)
    trigger = receivers.wait_for("pagerduty", _page("trigger"), timeout=60)
    dedup = trigger.body["dedup_key"]
    assert dedup and trigger.body["routing_key"] == ROUTING_KEY
    _links(trigger, firing)
    _slack_links(receivers.wait_for("slack", lambda d: NAME in d.body["attachments"][0]["title"], timeout=30),
                 firing)

    acked = cli(stack, "ack", NAME, "--comment", "rolling back the deploy", "--author", "alice",
                "--duration", "10m", "--format", "json")
    silence = json.loads(acked.stdout)["acked"][0]["silence_id"]
    held = [a for a in _am(stack, "/api/v2/alerts") if a["labels"]["alertname"] == NAME]
    assert held[0]["status"]["silencedBy"] == [silence]
    listed = json.loads(cli(stack, "list", "--format", "json").stdout)["alerts"]
    assert [(a["state"], a["acked_by"]) for a in listed if a["name"] == NAME] == [("suppressed", "alice")]
    story = timeline_until(stack, lambda s: _events(s, "notified critical via pagerduty"), "the page")
    assert story["pagerduty_dedup_keys"] == {"critical": dedup}
    assert _events(story, "acked by alice")[0]["detail"].startswith("ack: rolling back the deploy")
    assert _events(story, "firing since")

    post(stack, {**firing, "endsAt": iso(dt.datetime.now(dt.UTC))})  # the source resolves while the ack mutes the alert
    dropped = timeline_until(stack, lambda s: _events(s, "resolved in Alertmanager"), "the muted resolve", 60)
    assert "its resolve was not sent (muted)" in _events(dropped, "resolved in Alertmanager")[0]["detail"]
    assert not receivers.of("pagerduty", _page("resolve")), "Alertmanager sent a resolve it mutes"
    assert receivers.incidents()[dedup] == "triggered"  # the incident stays open at PagerDuty

    resolved = cli(stack, "resolve", NAME, "--comment", "rolled back to 1.4.1", "--author", "bob")
    assert "was resolved at its source" in resolved.stdout and silence in resolved.stdout
    closing = receivers.wait_for("pagerduty", _page("resolve"), timeout=60)
    assert closing.body["dedup_key"] == dedup and receivers.incidents()[dedup] == "resolved"
    _links(closing, firing)
    slack = receivers.wait_for("slack", lambda d: d.body["attachments"][0]["title"].startswith("[RESOLVED]")
                               and NAME in d.body["attachments"][0]["title"], timeout=30)
    _slack_links(slack, firing)
    assert "*Resolved by:* bob" in slack.body["attachments"][0]["text"]

    story = timeline_until(stack, lambda s: _events(s, "ack ended")
                           and len(_events(s, "notified critical via pagerduty")) >= 2, "the resolve")
    order = [e["event"] for e in story["events"]]
    assert order.index("acked by alice") < order.index("ack ended") <= order.index("resolved by bob")
    assert _events(story, "resolved by bob")[0]["detail"] == "rolled back to 1.4.1"
    pages = [e for e in story["events"] if e["event"] == "notified critical via pagerduty"]
    assert pages[0]["detail"].startswith("first notification") and pages[-1]["detail"].startswith("all alerts resolved")
    table = cli(stack, "timeline", NAME, "--since", "1h").stdout
    assert f"PagerDuty dedup_key (critical): {dedup}" in table
    print(table)
    assert not receivers.failures


def test_without_event_records_the_timeline_still_tells_the_rest(stack: dict[str, Any]) -> None:
    """The log store down (or the event recorder off): a note, and Alertmanager's own records."""
    done = cli(stack, "timeline", NAME, "--since", "1h", "--format", "json",
               "--victorialogs-url", "http://127.0.0.1:9")
    story = json.loads(done.stdout)
    assert _events(story, "acked by alice") and not [e for e in story["events"] if e["event"].startswith("notified")]
    assert any("event records cannot be read" in note for note in story["notes"])


def test_resolve_refuses_an_alert_whose_rule_still_fires(stack: dict[str, Any]) -> None:
    """The Watchdog always fires in Prometheus: resolving it would page again, so exit 1."""
    wait_until(lambda: [a for a in _am(stack, "/api/v2/alerts") if a["labels"]["alertname"] == "Watchdog"], 30,
               what="Prometheus never sent the Watchdog")
    refused = cli(stack, "resolve", "Watchdog", code=1)
    assert refused.stderr.startswith("error: Watchdog") and "still fires in Prometheus" in refused.stderr
    story = timeline_until(stack, lambda s: _events(s, "notified deadmans-switch via webhook"), "the heartbeat",
                           name="Watchdog")
    assert [e["source"] for e in _events(story, "rule firing")] == ["prometheus"]


def _critical_log_line(stack: dict[str, Any], service: str) -> None:
    """One CRITICAL line in the log store over OTLP, as the collector writes an app's: vmalert's
    CriticalLogEvents fires."""
    def kv(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    record = LogRecord(time_unix_nano=time.time_ns(), severity_number=21, severity_text="CRITICAL",
                       body=AnyValue(string_value="ledger unreachable"), attributes=[kv("component", "ledger")])
    export = ExportLogsServiceRequest(resource_logs=[ResourceLogs(
        resource=Resource(attributes=[kv("service.name", service)]),
        scope_logs=[ScopeLogs(log_records=[record])])])
    url = f"http://127.0.0.1:{stack['spec']['ports']['victorialogs']}/insert/opentelemetry/v1/logs"
    request = urllib.request.Request(url, data=export.SerializeToString(), method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(request, timeout=5):
        pass


def test_resolve_refuses_a_log_alert_whose_rule_still_fires_in_vmalert(stack: dict[str, Any]) -> None:
    _critical_log_line(stack, "ledger-svc")
    wait_until(lambda: [a for a in _am(stack, "/api/v2/alerts") if a["labels"]["alertname"] == "CriticalLogEvents"
                        and a["labels"].get("service") == "ledger-svc"], 60,
               what="vmalert never sent CriticalLogEvents")
    refused = cli(stack, "resolve", "CriticalLogEvents", code=1)
    assert refused.stderr.startswith("error: CriticalLogEvents") and "still fires in vmalert" in refused.stderr


@pytest.mark.parametrize("command", ["ack", "resolve", "timeline"])
def test_an_unknown_alert_is_one_line_and_exit_2(stack: dict[str, Any], command: str) -> None:
    done = cli(stack, command, "NoSuchAlert", code=2)
    assert done.stderr.count("\n") == 1 and "no alert 'NoSuchAlert'" in done.stderr


def test_every_workflow_command_is_documented() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "incidents.md").read_text()
    for command in ("alerts ack", "alerts resolve", "alerts timeline", "alerts silence"):
        assert command in text


@pytest.mark.parametrize("text", ["service=api", "service!=api", "service=~api|web", "service!~api|web"])
def test_a_matcher_reads_back_as_typed_and_matches_as_alertmanager_does(text: str) -> None:
    found = query_matcher(text)
    assert matcher_text(found) == text
    positive = not text.split("=")[0].endswith("!") and "!~" not in text
    assert matches(found, {"service": "api"}) is positive
    assert matches(found, {}) is not positive  # a missing label is the empty string


def test_an_ack_silence_names_exactly_its_alert_and_keeps_its_links() -> None:
    labels = {"alertname": NAME, "service": "checkout", "severity": "critical"}
    target = Target(labels, {"runbook_url": "https://r.example/x", "summary": "down"}, "2026-01-01T00:00:00Z",
                    "http://prometheus/graph")
    silence = {"id": "x", "comment": ack_comment(""), "matchers": exact_matchers(labels),
               "startsAt": "2026-01-01T00:00:05Z", "status": {"state": "active"}, "annotations": target.kept()}
    assert silence_labels(silence) == labels and is_ack(silence)
    assert not silences_alert(silence, {**labels, "service": "payments"})
    back = Target.from_ack(labels, silence)
    assert (back.annotations, back.starts_at, back.generator_url) == (target.annotations, target.starts_at,
                                                                      target.generator_url)


def test_a_bad_regular_expression_is_bad_input() -> None:
    with pytest.raises(ValueError, match="not a regular expression"):
        query_matcher("service=~(")
