"""An alert drill: faults injected into the demo on a native stack page local receivers.

The drill's spec is the environment's own with four changes: ports shifted, no background
load (the drill sends its own clean traffic, so nothing fires before the faults), PagerDuty's
URL, the mail relay and every receiver secret pointing at :class:`~theodore_obs.testing.Receivers`, and
business hours that never come, so high and medium alerts take the after-hours branch that
pages PagerDuty as well as Slack. Then:

1. clean research requests until Prometheus has the demo's request counter;
2. every fault at once: half the company pages fail (``HighErrorRate``, and a fast burn of
   the availability SLO: ``SLOAvailabilityBurnRate``, critical), half the remaining LLM calls
   fail (``AIOperationFailureSpike``), the rest report 1000 times the tokens
   (``AICostThresholdExceeded``);
3. wait for each alert's PagerDuty trigger (the latency: fault start to notification);
4. clear the faults and wait for ``AIOperationFailureSpike``'s resolve (its window is one
   minute; the error rate and the hourly cost look back 5 minutes and an hour).

The test (``tests/test_alert_delivery.py``) asserts on the deliveries; ``make bench`` reports
the latencies.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

import requests
from theodore_obs.demo.faults import clear, inject
from theodore_obs.testing.receivers import Delivery, Receivers
from theodore_obs.timing import wait_until

from .alert_phases import Phases, alert_phases

#: The alert each fault raises, and its severity label (the error burst also burns the demo's
#: availability SLO fast enough for a critical page).
EXPECTED = {"HighErrorRate": "high", "AIOperationFailureSpike": "medium", "AICostThresholdExceeded": "medium",
            "SLOAvailabilityBurnRate": "critical"}
#: The alert whose resolve the drill waits for (its window is short enough).
RESOLVES = "AIOperationFailureSpike"
FAULTS = {"error_burst": {"rate": 0.5}, "ai_failures": {"rate": 0.5}, "cost_spike": {"factor": 1000}}


def drill_spec(spec: dict[str, Any], receivers: Receivers, port_offset: int) -> dict[str, Any]:
    """The drill's stack.yaml (see the module docstring for what changes)."""
    spec = copy.deepcopy(spec)
    spec["ports"] = {name: port + port_offset for name, port in spec["ports"].items()}
    spec["services"][spec["demo"]["service"]]["port"] += port_offset
    spec["demo"]["upstream_port"] += port_offset
    spec["demo"]["load_rps"] = 0
    alerting = spec["alerting"]
    alerting["pagerduty_url"] = receivers.url("pagerduty", "v2/enqueue")
    alerting["receivers"]["email"].update(smarthost=receivers.smtp_address, require_tls=False)
    alerting["on_call"]["business_hours"] = {"years": ["2000"]}
    alerting["on_call"]["after_hours"].update(high=["pagerduty", "slack"], medium=["pagerduty", "slack"])
    return spec


def drill_env(receivers: Receivers, routing_key: str | None = None) -> dict[str, str]:
    """Receiver secrets as the native runtime reads them: environment variables."""
    return {"SLACK_API_URL": receivers.url("slack", "T0DRILL/B0DRILL/drill"),
            "PAGERDUTY_ROUTING_KEY": routing_key or secrets.token_hex(16),
            "WEBHOOK_URL": receivers.url("webhook", "tickets"),
            "DEADMANS_SWITCH_URL": receivers.url("webhook", "deadmans-switch"),
            "SMTP_PASSWORD": "drill-" + secrets.token_hex(8)}


class Traffic:
    """Clean research requests at ``rps`` in a thread, for at most ``max_seconds``."""

    def __init__(self, target: str, rps: float = 4.0, max_seconds: float = 300.0) -> None:
        self.target, self.rps, self.max_seconds = target, rps, max_seconds
        self.counts: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session, deadline = requests.Session(), time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                response = session.get(f"{self.target}/research", params={"company": "acme"}, timeout=10)
                status = response.status_code
            except requests.RequestException:
                status = 0
            self.counts[status] = self.counts.get(status, 0) + 1
            self._stop.wait(max(0.0, 1 / self.rps - (time.monotonic() - started)))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


@dataclass
class DrillResult:
    """What the drill saw: PagerDuty triggers and resolve, seconds after fault start/clear."""

    fault_started: float = 0.0
    fault_cleared: float = 0.0
    triggers: dict[str, Delivery] = field(default_factory=dict)
    resolve: Delivery | None = None
    traffic: dict[int, int] = field(default_factory=dict)
    phases: dict[str, Phases] = field(default_factory=dict)

    def latency(self, alertname: str) -> float:
        return self.triggers[alertname].received_at - self.fault_started

    def read_phases(self, prometheus: str, expected: dict[str, str]) -> None:
        """Fill ``phases`` for each paged alert of ``expected`` (alert name → severity) from
        Prometheus's ``ALERTS`` series (``alert_phases``)."""
        for alertname, severity in expected.items():
            found = alert_phases(prometheus, alertname, severity, self.fault_started,
                                 self.triggers[alertname].received_at)
            if found is not None:
                self.phases[alertname] = found

    @property
    def recovery(self) -> float:
        assert self.resolve is not None
        return self.resolve.received_at - self.fault_cleared


def page_for(alertname: str, severity: str) -> Any:
    """Matches the PagerDuty trigger of ``alertname`` at ``severity``."""
    def matches(delivery: Delivery) -> bool:
        body = delivery.body
        firing = body["payload"].get("custom_details", {}).get("firing") or [{}]
        return (body["event_action"] == "trigger" and body["payload"].get("class") == alertname
                and firing[0].get("labels", {}).get("severity") == severity)
    return matches


def wait_for_series(prometheus: str, promql: str, timeout: float) -> None:
    def found() -> bool:
        try:
            answer = requests.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5).json()
            return bool(answer["data"]["result"])
        except (requests.RequestException, ValueError, KeyError):
            return False

    wait_until(found, timeout, every=1,
               what=f"Prometheus at {prometheus} has no {promql} after {timeout:.0f}s")


def run_drill(spec: dict[str, Any], receivers: Receivers, timeout: float = 150.0,
              say: Any = print) -> DrillResult:
    """Drive a running drill stack (started from ``drill_spec``) through faults and recovery."""
    demo = spec["demo"]
    target = f"http://127.0.0.1:{spec['services'][demo['service']]['port']}"
    upstream = f"http://127.0.0.1:{demo['upstream_port']}"
    prometheus = f"http://127.0.0.1:{spec['ports']['prometheus']}"
    result = DrillResult()
    with Traffic(target) as traffic:
        query = f'theodore_requests_total{{job="{demo["service"]}"}}'
        wait_for_series(prometheus, query, timeout)
        say("  baseline traffic is in Prometheus; injecting " + ", ".join(FAULTS))
        result.fault_started = time.time()
        try:
            for name, params in FAULTS.items():
                inject(upstream, name, seconds=timeout + 60, **params)
            for alertname, severity in EXPECTED.items():
                result.triggers[alertname] = receivers.wait_for(
                    "pagerduty", page_for(alertname, severity),
                    timeout=max(1.0, result.fault_started + timeout - time.time()))
                say(f"  paged   {alertname:<24} {result.latency(alertname):5.1f}s after the faults began")
        finally:
            clear(upstream)
            result.fault_cleared = time.time()
        dedup = result.triggers[RESOLVES].body["dedup_key"]
        result.resolve = receivers.wait_for(
            "pagerduty", lambda d: d.body["event_action"] == "resolve" and d.body["dedup_key"] == dedup,
            timeout=timeout)
        say(f"  resolved {RESOLVES:<23} {result.recovery:5.1f}s after the faults were cleared")
    result.traffic = dict(traffic.counts)
    return result


__all__ = ["EXPECTED", "FAULTS", "RESOLVES", "DrillResult", "Traffic", "drill_env", "drill_spec", "page_for",
           "run_drill", "wait_for_series"]
