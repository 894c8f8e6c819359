"""The local Slack/PagerDuty/webhook receivers accept the real shapes and refuse others."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from theodore_obs.testing import Receivers

GOOD_SLACK = {"channel": "#alerts", "attachments": [{
    "title": "[FIRING:1] HIGH X", "text": "summary", "fallback": "X",
    "actions": [{"type": "button", "text": "Runbook", "url": "https://runbook.example/#x"}]}]}
GOOD_PAGE = {"routing_key": "0" * 32, "event_action": "trigger", "dedup_key": "abc",
             "payload": {"summary": "X is down", "source": "svc", "severity": "error"},
             "links": [{"href": "https://runbook.example/#x", "text": "Runbook"}]}
GOOD_HOOK = {"version": "4", "status": "firing", "alerts": [{"labels": {"alertname": "Watchdog"}}]}


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    with Receivers() as found:
        yield found


def post(url: str, body: object) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_good_payloads_are_recorded_with_the_services_answers(receivers: Receivers) -> None:
    assert post(receivers.url("slack", "T0/B0/x"), GOOD_SLACK) == (200, b"ok")
    status, answer = post(receivers.url("pagerduty", "v2/enqueue"), GOOD_PAGE)
    assert status == 202 and json.loads(answer)["dedup_key"] == "abc"
    assert post(receivers.url("webhook", "tickets"), GOOD_HOOK)[0] == 200
    assert [d.kind for d in receivers.deliveries] == ["slack", "pagerduty", "webhook"]
    assert receivers.of("webhook")[0].path == "/webhook/tickets"
    assert not receivers.failures


@pytest.mark.parametrize(("kind", "body", "problem"), [
    ("slack", {"channel": "#a"}, "neither text nor attachments"),
    ("slack", {"attachments": [{"title": "t", "actions": [{"type": "button", "text": "x", "url": "nope"}]}]},
     "url is not an http(s) URL"),
    ("slack", {"attachments": [{"title": "t", "actions": [{"type": "button", "text": "Runbook"}]}]},
     "needs a url, or a name and a value"),
    ("pagerduty", {**GOOD_PAGE, "routing_key": "short"}, "routing_key must be a 32-character string"),
    ("pagerduty", {**GOOD_PAGE, "event_action": "explode"}, "event_action must be one of"),
    ("pagerduty", {**GOOD_PAGE, "payload": {"summary": "x", "source": "s", "severity": "high"}},
     "payload.severity must be one of"),
    ("pagerduty", {**GOOD_PAGE, "event_action": "resolve", "dedup_key": None}, "resolve needs a dedup_key"),
    ("webhook", {"version": "3", "status": "firing", "alerts": []}, "version must be '4'"),
])
def test_a_bad_shape_is_refused_and_recorded(receivers: Receivers, kind: str, body: dict, problem: str) -> None:
    status, answer = post(receivers.url(kind), body)
    assert status == 400
    assert any(problem in p for p in json.loads(answer)["errors"])
    assert not receivers.deliveries
    ((failed_kind, _, problems),) = receivers.failures
    assert failed_kind == kind and any(problem in p for p in problems)


def test_wait_for_names_what_arrived_when_nothing_matches(receivers: Receivers) -> None:
    post(receivers.url("slack"), GOOD_SLACK)
    with pytest.raises(AssertionError, match=r"no matching slack notification.*FIRING:1"):
        receivers.wait_for("slack", lambda d: "RESOLVED" in d.body["attachments"][0]["title"], timeout=0.5)


def test_mail_is_recorded_with_envelope_parts_and_credentials(receivers: Receivers) -> None:
    host, port = receivers.smtp_address.split(":")
    with smtplib.SMTP(host, int(port), timeout=5) as client:
        client.login("alertmanager@theodore.example", "s3cret")
        client.sendmail("am@example", ["oncall@example"],
                        "Subject: [FIRING:1] HIGH X\r\nContent-Type: text/plain\r\n\r\nRunbook: https://r.example\r\n")
        client.sendmail("am@example", ["oncall@example"], "Content-Type: text/plain\r\n\r\nno subject\r\n")
    (mail,) = receivers.of("email")
    assert mail.body["subject"] == "[FIRING:1] HIGH X" and mail.body["to"] == ["oncall@example"]
    assert "Runbook: https://r.example" in mail.body["text"]
    assert mail.body["auth"] == ["", "alertmanager@theodore.example", "s3cret"]
    assert receivers.failures == [("email", "smtp", ["no subject"])]
