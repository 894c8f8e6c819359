"""``alerts timeline``: one alert's story from three records, in time order.

- Alertmanager's API: the alert as it is now (since when, its state, the receivers it routes
  to) and every silence on it, acks included (author, comment, start, end).
- Alertmanager's event recorder, which the stack sends to the log store
  (``{source="alertmanager-events"}``): alert received, grouped for a receiver, each
  notification delivered (receiver, integration, why, and the group's id, which is the
  PagerDuty ``dedup_key``), muted by a silence, resolved.
- Prometheus's ``ALERTS`` series: when the rule went pending, fired and stopped firing.

A record that cannot be read becomes a note; Alertmanager itself must answer.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from ..clients import BackendError, BackendUnavailable
from ..clients.alertmanager import Alertmanager, silences_alert
from ..clients.prometheus import Prometheus, label_value
from ..clients.victorialogs import VictoriaLogs, logsql_string, time_ns
from .incident import Selector, is_ack, silence_labels

EVENTS_STREAM = '{source="alertmanager-events"}'
"""The log stream Alertmanager's event recorder writes (alertmanager.yml ``event_recorder``)."""
EVENTS_LIMIT = 20_000
MAX_POINTS = 2_000
"""Samples per ``ALERTS`` series asked of Prometheus (its limit is 11,000)."""
REASONS = {"FIRST_NOTIFICATION": "first notification", "NEW_ALERTS_IN_GROUP": "new alerts in the group",
           "NEW_RESOLVED_ALERTS": "alerts resolved", "ALL_ALERTS_RESOLVED": "all alerts resolved",
           "REPEAT_INTERVAL_ELAPSED": "repeat"}


@dataclass(frozen=True)
class Event:
    at: float
    source: str
    event: str
    detail: str

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "at": iso_ms(self.at)}


def iso_ms(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix)) + f".{int(unix % 1 * 1000):03d}Z"


def unix(text: str) -> float:
    """Unix seconds of an RFC 3339 time with any number of fraction digits."""
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _labels(pairs: Any) -> dict[str, str]:
    """An event's label set (``[{"key": …, "value": …}]``, as JSON text or parsed)."""
    if isinstance(pairs, str):
        try:
            pairs = json.loads(pairs)
        except ValueError:
            return {}
    if isinstance(pairs, dict):
        pairs = pairs.get("labels", [])
    return {p.get("key", ""): p.get("value", "") for p in pairs or [] if isinstance(p, dict)}


def _hex(fingerprint: str | None) -> str | None:
    return f"{int(fingerprint):016x}" if fingerprint and fingerprint.isdigit() else None


@dataclass
class Story:
    """What the records say about the alerts one selector names."""

    selector: Selector
    events: list[Event]
    label_sets: list[dict[str, str]]
    dedup_keys: dict[str, str]
    notes: list[str]

    def part_of_known(self, labels: dict[str, str]) -> bool:
        """Whether ``labels`` (a rule's, without Prometheus's external labels) belong to an
        alert already found."""
        return any(all(known.get(k) == v for k, v in labels.items()) for known in self.label_sets)

    def wants(self, labels: dict[str, str], fingerprint: str | None = None) -> bool:
        if self.selector.wants(labels, fingerprint):
            if labels not in self.label_sets:
                self.label_sets.append(labels)
            return True
        return False


def _alertmanager_now(story: Story, alertmanager: Alertmanager) -> None:
    for a in alertmanager.alerts():
        if not story.wants(a["labels"], a.get("fingerprint")):
            continue
        receivers = ", ".join(r["name"] for r in a.get("receivers", [])) or "none"
        state = a["status"]["state"]
        detail = f"{'firing' if state == 'active' else state} now; routed to {receivers}"
        if a.get("startsAt"):
            story.events.append(Event(unix(a["startsAt"]), "alertmanager", "firing since", detail))


def _resolved_by(story: Story, details: dict[str, Any], seen: set[str]) -> None:
    """``alerts resolve`` signs the alert it ends (annotations ``resolved_by``, ``resolution``)."""
    notes = _labels(details.get("annotations"))
    key = f"resolved/{details.get('fingerprint')}/{details.get('endsAt')}"
    if notes.get("resolved_by") and key not in seen and details.get("endsAt"):
        seen.add(key)
        story.events.append(Event(unix(details["endsAt"]), "alertmanager events",
                                  f"resolved by {notes['resolved_by']}",
                                  notes.get("resolution") or "theodore-obs alerts resolve"))


def _notification(story: Story, data: dict[str, Any], at: float, seen: set[str]) -> None:
    alerts = data.get("alerts", "[]")
    try:
        alerts = json.loads(alerts) if isinstance(alerts, str) else alerts
    except ValueError:
        alerts = []
    mine = [a for a in alerts if story.wants(_labels((a.get("details") or {}).get("labels")),
                                             _hex((a.get("details") or {}).get("fingerprint")))]
    if not mine:
        return
    for a in mine:
        _resolved_by(story, a.get("details") or {}, seen)
    reason = str(data.get("reason", "")).removeprefix("NOTIFY_REASON_")
    receiver, integration = data.get("groupInfo.receiverName", "?"), data.get("integration.name", "?")
    key = data.get("groupInfo.groupId", "")
    if integration == "pagerduty" and key:
        story.dedup_keys[receiver] = key
    firing = len(json.loads(data.get("firingAlerts", "[]") or "[]"))
    resolved = len(json.loads(data.get("resolvedAlerts", "[]") or "[]"))
    story.events.append(Event(at, "alertmanager events", f"notified {receiver} via {integration}",
                              f"{REASONS.get(reason, reason.lower() or 'sent')}; {firing} firing, "
                              f"{resolved} resolved; group {key[:16]}"))


def _fields(record: dict[str, str], kind: str) -> dict[str, Any]:
    prefix = f"data.{kind}."
    return {k.removeprefix(prefix): v for k, v in record.items() if k.startswith(prefix)}


ALERT_OF = {"alertCreated": "alert.", "alertGrouped": "alert.details.", "alertResolved": "alert.details.",
            "silenceMutedAlert": "mutedAlert."}
"""Where each event kind keeps the alert it is about."""


def _described(kind: str, data: dict[str, Any]) -> tuple[str, str]:
    receiver, silence = data.get("groupInfo.receiverName", "?"), data.get("silence.id")
    return {"alertCreated": ("received", f"starts {data.get('alert.startsAt')}, fingerprint "
                             f"{_hex(data.get('alert.fingerprint'))}"),
            "alertGrouped": (f"grouped for {receiver}", f"group {data.get('groupInfo.groupKey', '')}"),
            "alertResolved": ("resolved in Alertmanager", f"left the group of {receiver}"),
            "silenceMutedAlert": ("muted", f"by silence {silence} ({data.get('silence.comment', '')})"),
            }[kind]


def _once(kind: str, data: dict[str, Any], fingerprint: str | None) -> str:
    """A key for events told once: each silence muting an alert, each grouping until the alert
    leaves its group."""
    if kind == "silenceMutedAlert":
        return f"muted/{data.get('silence.id')}/{fingerprint}"
    return f"grouped/{data.get('groupInfo.groupKey')}/{fingerprint}" if kind == "alertGrouped" else ""


def _event(story: Story, record: dict[str, str], seen: set[str]) -> None:
    at = time_ns(record["_time"]) / 1e9
    if (data := _fields(record, "notification")):
        _notification(story, data, at, seen)
        return
    for kind, where in ALERT_OF.items():
        if not (data := _fields(record, kind)):
            continue
        fingerprint = data.get(f"{where}fingerprint")
        once = _once(kind, data, fingerprint)
        if once in seen or not story.wants(_labels(data.get(f"{where}labels.labels")), _hex(fingerprint)):
            return
        if kind == "alertResolved":
            seen.difference_update({s for s in seen if s.startswith("grouped/")
                                    and s.endswith(f"/{fingerprint}")})
        elif once:
            seen.add(once)
        story.events.append(Event(at, "alertmanager events", *_described(kind, data)))
        return


NAMED_IN = ("data.notification.alerts", "data.alertCreated.alert.labels.labels",
            "data.alertGrouped.alert.details.labels.labels", "data.alertResolved.alert.details.labels.labels",
            "data.silenceMutedAlert.mutedAlert.labels.labels")
"""The event fields (label sets as JSON text) that name an event's alerts."""


def events_query(selector: Selector) -> str:
    """LogsQL for the events that may be about ``selector``'s alerts: those whose label sets
    hold its name as a JSON string (all events when it is a fingerprint)."""
    if selector.by_fingerprint:
        return EVENTS_STREAM
    pattern = logsql_string(re.escape(json.dumps(selector.alert, ensure_ascii=False)))
    return f"{EVENTS_STREAM} ({' or '.join(f'{field}:~{pattern}' for field in NAMED_IN)})"


def _recorded(story: Story, logs: VictoriaLogs, since: float) -> None:
    try:
        records = logs.query(events_query(story.selector), int(since * 1e9), limit=EVENTS_LIMIT)
    except (BackendError, BackendUnavailable) as exc:
        story.notes.append(f"Alertmanager's event records cannot be read ({exc}): who was notified "
                           "is not shown")
        return
    if not records:
        story.notes.append("no Alertmanager event records in the log store for this window (Alertmanager "
                           "records them with --enable-feature=event-recorder): who was notified is not "
                           "shown")
    seen: set[str] = set()
    for record in records:
        _event(story, record, seen)


def _rule_history(story: Story, prometheus: Prometheus, since: float, now: float) -> None:
    if story.selector.by_fingerprint and not story.label_sets:
        return
    name = story.label_sets[0]["alertname"] if story.selector.by_fingerprint else story.selector.alert
    step = max(15.0, math.ceil((now - since) / MAX_POINTS))
    try:
        series = prometheus.query_range(f"ALERTS{{alertname={label_value(name)}}}", since, now, step)
    except (BackendError, BackendUnavailable) as exc:
        story.notes.append(f"Prometheus's rule history cannot be read ({exc})")
        return
    for s in series:
        labels = {k: v for k, v in s["metric"].items() if k not in ("__name__", "alertstate")}
        if not s["values"] or not (story.part_of_known(labels) or story.wants(labels)):
            continue
        state = s["metric"].get("alertstate", "firing")
        runs: list[list[float]] = []
        for t, _ in s["values"]:
            if runs and t - runs[-1][1] <= 2 * step:
                runs[-1][1] = t
            else:
                runs.append([t, t])
        for start, end in runs:
            story.events.append(Event(start, "prometheus", f"rule {state}", ", ".join(
                f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")))
            if state == "firing" and end < now - 2 * step:
                story.events.append(Event(end + step, "prometheus", "rule stopped firing",
                                          "condition cleared"))


def _silences(story: Story, alertmanager: Alertmanager, since: float) -> None:
    for s in alertmanager.silences():
        if unix(s["endsAt"]) < since:
            continue
        own = silence_labels(s)
        if not (any(silences_alert(s, labels) for labels in story.label_sets)
                or (own is not None and story.wants(own))):
            continue
        kind = "acked" if is_ack(s) else "silenced"
        until = "" if s["status"]["state"] == "expired" else f", until {s['endsAt']}"
        story.events.append(Event(unix(s["startsAt"]), "alertmanager", f"{kind} by {s['createdBy']}",
                                  f"{s['comment']} (silence {s['id']}{until})"))
        if s["status"]["state"] == "expired":
            ended = "ack ended" if is_ack(s) else "silence ended"
            story.events.append(Event(unix(s["endsAt"]), "alertmanager", ended, f"silence {s['id']} expired"))


def timeline(selector: Selector, alertmanager: Alertmanager, prometheus: Prometheus, logs: VictoriaLogs,
             since_seconds: float) -> Story:
    """Every record of the alerts ``selector`` names in the last ``since_seconds``, oldest first;
    exit 2 when no record names one."""
    now = time.time()
    since = now - since_seconds
    story = Story(selector, [], [], {}, [])
    _alertmanager_now(story, alertmanager)
    _recorded(story, logs, since)
    _rule_history(story, prometheus, since, now)
    _silences(story, alertmanager, since)
    if not story.label_sets:
        selector.unknown("in Alertmanager, its event records or Prometheus's rule history of this window")
    story.events.sort(key=lambda e: e.at)
    story.events = _dropped_resolves(story.events)
    return story


def _dropped_resolves(events: list[Event]) -> list[Event]:
    """Mark an alert that left its group muted: its resolved notification was never sent."""
    marked: list[Event] = []
    muted_at = None
    for e in events:
        if e.event == "muted":
            muted_at = e.at
        elif e.event.startswith("notified "):
            muted_at = None
        dropped = e.event == "resolved in Alertmanager" and muted_at is not None and e.at - muted_at < 1
        marked.append(replace(e, detail=f"{e.detail}; its resolve was not sent (muted): "
                              "`theodore-obs alerts resolve` sends it") if dropped else e)
    return marked
