"""Prometheus's HTTP API: instant and range queries, targets, alerts, metadata, build info."""

from __future__ import annotations

import json
import re
from typing import Any

from ._http import BackendError, HttpBackend
from .shapes import LABELS, SAMPLE, STR, arr, obj

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
"""A metric name PromQL takes without quoting."""

VECTOR = obj(result=arr(obj(metric=LABELS, value=SAMPLE)))
MATRIX = obj(result=arr(obj(metric=LABELS, values=arr(SAMPLE))))
TARGETS = obj(activeTargets=arr(obj(labels=LABELS, health=STR)))
ALERTS = obj(alerts=arr(obj(labels=LABELS, state=STR, optional={"annotations": LABELS})))
METADATA = {"type": "object", "additionalProperties": arr(obj(type=STR))}


def label_value(text: str) -> str:
    """``text`` as a PromQL string literal: double-quoted, with backslash, double quote and
    newline (and every other control character) escaped."""
    return json.dumps(text, ensure_ascii=False)


def metric_name(text: str) -> str:
    """``text`` if it is a metric name PromQL can take as is, else ``ValueError``."""
    if not METRIC_NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not a metric name (letters, digits, _ and :, not starting "
                         "with a digit)")
    return text


class Prometheus(HttpBackend):
    name = "Prometheus"

    def _data(self, path: str, shape: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
        answer = self.shaped(self.get(path, params), obj(status=STR))
        if answer["status"] != "success":
            raise BackendError(self.name, self.shown_url, 200, str(answer.get("error")))
        return self.shaped(answer.get("data"), shape)

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant vector: ``[{"metric": {...}, "value": [t, "v"]}]``."""
        return self._data("/api/v1/query", VECTOR, {"query": promql, "time": at})["result"]

    def scalar(self, promql: str, at: float | None = None) -> float:
        """The single value of ``promql`` (0 when the vector is empty)."""
        result = self.query(promql, at)
        return float(result[0]["value"][1]) if result else 0.0

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._data("/api/v1/query_range", MATRIX,
                          {"query": promql, "start": start, "end": end, "step": step})["result"]

    def targets(self) -> list[dict[str, Any]]:
        return self._data("/api/v1/targets", TARGETS, {"state": "active"})["activeTargets"]

    def alerts(self) -> list[dict[str, Any]]:
        """Rule alerts in state pending or firing."""
        return self._data("/api/v1/alerts", ALERTS)["alerts"]

    def metric_type(self, name: str) -> str | None:
        found = self._data("/api/v1/metadata", METADATA, {"metric": name}).get(name) or []
        return found[0]["type"] if found else None
