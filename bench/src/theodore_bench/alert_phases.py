"""Where an alert's latency goes: fault → pending → firing → notification.

Prometheus (and vmalert, through remote write) records every alert's state at each evaluation
as the ``ALERTS`` series, stamped with the evaluation's time. The first ``pending`` and
``firing`` samples after the fault split a drill's fault → page latency into three parts:

- fault → pending: the app exporting the fault's data and the next rule evaluation;
- pending → firing: the rule's ``for:`` (an alert with ``for: 0s`` fires at once);
- firing → page: Alertmanager's ``group_wait`` and the delivery.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests


@dataclass(frozen=True)
class Phases:
    """Seconds after the fault began at which the alert was pending, firing and paged."""

    pending: float
    firing: float
    paged: float

    def describe(self) -> str:
        return (f"pending {self.pending:4.1f} s, +{self.firing - self.pending:4.1f} s for:, "
                f"+{self.paged - self.firing:4.1f} s to the page")


def _first_sample(prometheus: str, selector: str, since: float, lookback: str = "15m") -> float | None:
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": f"{selector}[{lookback}]"},
                          timeout=10).json()
    times = [float(t) for series in answer["data"]["result"] for t, _ in series["values"]]
    times = [t for t in times if t >= since]
    return min(times, default=None)


def alert_phases(prometheus: str, alertname: str, severity: str, fault_started: float,
                 paged_at: float) -> Phases | None:
    """The phases of ``alertname`` at ``severity`` since ``fault_started`` (Unix seconds), or
    None when Prometheus holds no firing sample of it."""
    def first(state: str) -> float | None:
        selector = f'ALERTS{{alertname="{alertname}", severity="{severity}", alertstate="{state}"}}'
        return _first_sample(prometheus, selector, fault_started)

    firing = first("firing")
    if firing is None:
        return None
    pending = min(first("pending") or firing, firing)
    return Phases(pending - fault_started, firing - fault_started, paged_at - fault_started)


__all__ = ["Phases", "alert_phases"]
