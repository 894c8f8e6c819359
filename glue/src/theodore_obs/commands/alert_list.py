"""Active alerts in one shape: firing and suppressed from Alertmanager, pending from Prometheus."""

from __future__ import annotations

from typing import Any

from ..clients.alertmanager import Alertmanager
from ..clients.prometheus import Prometheus


def _row(labels: dict[str, str], annotations: dict[str, str], state: str, since: str | None,
         source: str) -> dict[str, Any]:
    return {"name": labels.get("alertname", ""), "state": state, "severity": labels.get("severity"),
            "summary": annotations.get("summary"), "since": since, "source": source, "labels": labels}


def active_alerts(prometheus: Prometheus, alertmanager: Alertmanager) -> list[dict[str, Any]]:
    """Every alert Alertmanager holds (``firing`` or ``suppressed``) plus Prometheus's ``pending``."""
    found = []
    for alert in alertmanager.alerts():
        state = "firing" if alert["status"]["state"] == "active" else alert["status"]["state"]
        found.append(_row(alert["labels"], alert.get("annotations", {}), state, alert.get("startsAt"),
                          "alertmanager"))
    for alert in prometheus.alerts():
        if alert["state"] == "pending":
            found.append(_row(alert["labels"], alert.get("annotations", {}), "pending",
                              alert.get("activeAt"), "prometheus"))
    order = {"firing": 0, "pending": 1}
    return sorted(found, key=lambda a: (order.get(a["state"], 2), a["name"]))
