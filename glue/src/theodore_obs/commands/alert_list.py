"""Active alerts in one shape: firing and suppressed from Alertmanager, pending from Prometheus."""

from __future__ import annotations

from typing import Any

from ..clients.alertmanager import Alertmanager
from ..clients.prometheus import Prometheus
from .incident import is_ack


def _row(labels: dict[str, str], annotations: dict[str, str], state: str, since: str | None,
         source: str, fingerprint: str | None = None, acked_by: str | None = None) -> dict[str, Any]:
    return {"name": labels.get("alertname", ""), "state": state, "severity": labels.get("severity"),
            "summary": annotations.get("summary"), "since": since, "source": source, "labels": labels,
            "fingerprint": fingerprint, "acked_by": acked_by}


def _ack_authors(alertmanager: Alertmanager, held: list[dict[str, Any]]) -> dict[str, str]:
    """Silence id → author, for the ack silences muting ``held`` (asked only when one is muted)."""
    if not any(a["status"].get("silencedBy") for a in held):
        return {}
    return {s["id"]: s["createdBy"] for s in alertmanager.silences() if is_ack(s)}


def active_alerts(prometheus: Prometheus, alertmanager: Alertmanager) -> list[dict[str, Any]]:
    """Every alert Alertmanager holds (``firing`` or ``suppressed``, with who acked it) plus
    Prometheus's ``pending``."""
    found = []
    held = alertmanager.alerts()
    acks = _ack_authors(alertmanager, held)
    for alert in held:
        state = "firing" if alert["status"]["state"] == "active" else alert["status"]["state"]
        acked = next((acks[s] for s in alert["status"].get("silencedBy", []) if s in acks), None)
        found.append(_row(alert["labels"], alert.get("annotations", {}), state, alert.get("startsAt"),
                          "alertmanager", alert.get("fingerprint"), acked))
    for alert in prometheus.alerts():
        if alert["state"] == "pending":
            found.append(_row(alert["labels"], alert.get("annotations", {}), "pending",
                              alert.get("activeAt"), "prometheus"))
    order = {"firing": 0, "pending": 1}
    return sorted(found, key=lambda a: (order.get(a["state"], 2), a["name"]))
