"""The incident workflow on a real Alertmanager: find an alert, acknowledge it, resolve it.

- An **ack** is a silence on the alert's exact label set whose comment starts with ``ack:``
  and names its author: Alertmanager stops repeating the alert's notifications on every
  channel while someone works on it, and everyone sees who (``alerts timeline``, the silence
  list, Alertmanager's UI). A new alert of the same group still notifies.
- A **resolve** ends the incident: it expires the alert's ack silences and posts the alert
  back with ``endsAt`` = now, so Alertmanager sends the resolved notification (PagerDuty:
  ``event_action: resolve`` with the trigger's ``dedup_key``, which closes the incident).
  Alertmanager drops the resolved notification of an alert that resolves while a silence
  mutes it; posting the alert again once the ack has ended is what gets the resolve out.
  An alert whose rule still fires in Prometheus or vmalert is refused: the evaluator would send
  it again at its next evaluation, and the page with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from ..clients import BackendError, BackendUnavailable
from ..clients.alertmanager import (
    FINGERPRINT,
    Alertmanager,
    matcher_text,
    matches,
    parse_matcher,
    silences_alert,
    utc,
)
from ..clients.prometheus import Prometheus
from ._errors import EXIT_BAD_INPUT, EXIT_FAILED, fail

ACK_PREFIX = "ack:"
"""How an ack silence's comment starts."""
ACTIVE = ("active", "pending")
"""Silence states that mute (or will)."""
KEPT = "alert_"
"""Prefix of the ack silence's annotations that keep the alert's own (its summary, runbook and
dashboard links, start, source), so a resolve sent after the alert has left Alertmanager
carries them too."""


def query_matcher(text: str) -> dict[str, Any]:
    """A ``--matcher`` as :func:`parse_matcher` reads it, its regular expression compiled
    (``ValueError`` naming it otherwise)."""
    found = parse_matcher(text)
    if found["isRegex"]:
        try:
            re.compile(found["value"])
        except re.error as exc:
            raise ValueError(f"matcher {text!r}: not a regular expression ({exc})") from None
    return found


@dataclass(frozen=True)
class Selector:
    """``ALERT`` (an alertname or a fingerprint) and ``--matcher`` filters, as typed."""

    alert: str
    matchers: tuple[dict[str, Any], ...] = ()

    @property
    def by_fingerprint(self) -> bool:
        return FINGERPRINT.fullmatch(self.alert) is not None

    def wants(self, labels: dict[str, str], fingerprint: str | None = None) -> bool:
        named = (fingerprint == self.alert) if self.by_fingerprint else labels.get("alertname") == self.alert
        return named and all(matches(m, labels) for m in self.matchers)

    def unknown(self, where: str) -> NoReturn:
        """Exit 2: nothing matches."""
        fail(f"no alert {self.alert!r}{self._filters()} {where}; `theodore-obs alerts` lists the "
             "active ones", EXIT_BAD_INPUT)

    def _filters(self) -> str:
        return f" with {', '.join(matcher_text(m) for m in self.matchers)}" if self.matchers else ""


@dataclass
class Target:
    """One alert the workflow acts on, as Alertmanager has it (or had it, for an alert that
    resolved at its source while acknowledged)."""

    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: str | None = None
    generator_url: str | None = None
    fingerprint: str | None = None
    state: str = "firing"

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def kept(self) -> dict[str, str]:
        """The alert's annotations, start and source, as an ack silence keeps them."""
        found = {f"{KEPT}{k}": v for k, v in self.annotations.items()}
        found[f"{KEPT}starts_at"] = self.starts_at or ""
        found[f"{KEPT}generator_url"] = self.generator_url or ""
        return {k: v for k, v in found.items() if v}

    @classmethod
    def from_ack(cls, labels: dict[str, str], silence: dict[str, Any]) -> Target:
        """The alert an ack silence was made for, as the silence kept it."""
        kept = {k.removeprefix(KEPT): v for k, v in (silence.get("annotations") or {}).items()
                if k.startswith(KEPT)}
        return cls(labels, starts_at=kept.pop("starts_at", None) or silence["startsAt"],
                   generator_url=kept.pop("generator_url", None), annotations=kept,
                   state="resolved at its source")

    def resolved(self, now: datetime, author: str, note: str) -> dict[str, Any]:
        """The alert as posted to end it now, signed (annotations ``resolved_by``, ``resolution``)."""
        signed = {**self.annotations, "resolved_by": author, **({"resolution": note} if note else {})}
        alert: dict[str, Any] = {"labels": self.labels, "annotations": signed, "endsAt": utc(now)}
        if self.starts_at:
            alert["startsAt"] = self.starts_at
        if self.generator_url:
            alert["generatorURL"] = self.generator_url
        return alert


def is_ack(silence: dict[str, Any]) -> bool:
    return silence["comment"].strip().lower().startswith(ACK_PREFIX)


def ack_comment(note: str) -> str:
    return f"{ACK_PREFIX} {note.strip() or 'acknowledged'}"


def exact_matchers(labels: dict[str, str]) -> list[dict[str, Any]]:
    """Matchers for exactly this label set (the ack silence's)."""
    return [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in sorted(labels.items())]


def silence_labels(silence: dict[str, Any]) -> dict[str, str] | None:
    """The label set an ack silence was made for (every matcher an equality), else None."""
    found = silence["matchers"]
    if not found or any(m["isRegex"] or not m.get("isEqual", True) for m in found):
        return None
    return {m["name"]: m["value"] for m in found}


def acks_of(silences: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """The active (or pending) ack silences that mute ``labels``."""
    return [s for s in silences if is_ack(s) and s["status"]["state"] in ACTIVE and silences_alert(s, labels)]


def _target(alert: dict[str, Any]) -> Target:
    return Target(labels=alert["labels"], annotations=alert.get("annotations", {}),
                  starts_at=alert.get("startsAt"), generator_url=alert.get("generatorURL"),
                  fingerprint=alert.get("fingerprint"),
                  state="firing" if alert["status"]["state"] == "active" else alert["status"]["state"])


def current(alertmanager: Alertmanager, selector: Selector) -> list[Target]:
    """The alerts Alertmanager holds that ``selector`` names (firing or suppressed)."""
    return [_target(a) for a in alertmanager.alerts() if selector.wants(a["labels"], a.get("fingerprint"))]


def acked_after_source_resolved(silences: list[dict[str, Any]], held: list[Target],
                                selector: Selector) -> list[Target]:
    """Alerts an active ack silence was made for that Alertmanager no longer holds: they
    resolved at their source while acknowledged, so their resolve was muted."""
    known = [t.labels for t in held]
    found: dict[tuple[tuple[str, str], ...], Target] = {}
    for s in silences:
        labels = silence_labels(s) if is_ack(s) and s["status"]["state"] in ACTIVE else None
        if labels is not None and labels not in known and selector.wants(labels):
            found.setdefault(tuple(sorted(labels.items())), Target.from_ack(labels, s))
    return list(found.values())


@dataclass
class AckResult:
    target: Target
    silence_id: str
    renewed: bool


def acknowledge(alertmanager: Alertmanager, selector: Selector, duration: timedelta, note: str,
                author: str) -> list[AckResult]:
    """An ack silence for every alert ``selector`` names (an existing ack is renewed); exit 2
    when none is held."""
    targets = current(alertmanager, selector)
    if not targets:
        selector.unknown("firing in Alertmanager")
    silences = alertmanager.silences()
    done = []
    for target in targets:
        existing = [s for s in acks_of(silences, target.labels) if silence_labels(s) == target.labels]
        update = existing[0]["id"] if existing else None
        created = alertmanager.create_silence(exact_matchers(target.labels), duration, ack_comment(note),
                                              author, update=update, annotations=target.kept())
        done.append(AckResult(target, created, update is not None))
    return done


@dataclass
class ResolveResult:
    resolved: list[Target]
    expired: list[str]
    notes: list[str]


RuleEvaluators = dict[str, Prometheus]
"""Where alerting rules are evaluated, by name: Prometheus (metric rules) and vmalert (log rules),
both answering Prometheus's ``/api/v1/alerts``."""


def _firing(evaluators: RuleEvaluators, notes: list[str]) -> dict[str, list[dict[str, str]]]:
    """Label sets of the rule alerts firing in each evaluator that could be asked."""
    found = {}
    for name, evaluator in evaluators.items():
        try:
            found[name] = [a["labels"] for a in evaluator.alerts() if a["state"] == "firing"]
        except (BackendError, BackendUnavailable) as exc:
            notes.append(f"could not ask {name} whether a rule still fires ({exc}); if one does, "
                         "the alert comes back at its next evaluation")
    return found


def _still_firing(target: Target, firing: list[dict[str, str]]) -> bool:
    """Prometheus sends its rule's labels; Alertmanager may hold more (external labels)."""
    return any(labels and all(target.labels.get(k) == v for k, v in labels.items()) for labels in firing)


def resolve(alertmanager: Alertmanager, evaluators: RuleEvaluators, selector: Selector, author: str,
            note: str = "") -> ResolveResult:
    """End every alert ``selector`` names (see the module docstring); exit 2 when none is
    known, exit 1 when a rule evaluator (Prometheus, vmalert) still fires one."""
    silences = alertmanager.silences()
    held = current(alertmanager, selector)
    targets = held + acked_after_source_resolved(silences, held, selector)
    if not targets:
        selector.unknown("in Alertmanager (firing, silenced or acknowledged)")
    notes: list[str] = []
    for evaluator, firing in _firing(evaluators, notes).items():
        still = [t for t in targets if _still_firing(t, firing)]
        if still:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(still[0].labels.items()) if k != "alertname")
            fail(f"{still[0].name} ({labels}) still fires in {evaluator}: its condition holds, so a "
                 "resolve would page again at the next evaluation; fix the cause (its rule then "
                 f"resolves it) or `theodore-obs alerts ack {selector.alert}`", EXIT_FAILED)
    expired = []
    for target in targets:
        for s in acks_of(silences, target.labels):
            alertmanager.expire_silence(s["id"])
            expired.append(s["id"])
        others = [s for s in silences if not is_ack(s) and s["status"]["state"] == "active"
                  and silences_alert(s, target.labels)]
        notes += [f"silence {s['id']} ({s['comment']}, by {s['createdBy']}) still mutes {target.name}: "
                  "Alertmanager drops its resolved notification while it does" for s in others]
    alertmanager.post_alerts([t.resolved(datetime.now(UTC), author, note) for t in targets])
    return ResolveResult(targets, expired, notes)
