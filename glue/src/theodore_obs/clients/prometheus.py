"""Prometheus's HTTP API: instant and range queries, targets, alerts, metadata, build info."""

from __future__ import annotations

from typing import Any

from ._http import BackendError, HttpBackend


class Prometheus(HttpBackend):
    name = "Prometheus"

    def _data(self, path: str, params: dict[str, Any] | None = None) -> Any:
        answer = self.get(path, params)
        if answer.get("status") != "success":
            raise BackendError(self.name, self.base_url, 200, str(answer.get("error")))
        return answer["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant vector: ``[{"metric": {...}, "value": [t, "v"]}]``."""
        return self._data("/api/v1/query", {"query": promql, "time": at})["result"]

    def scalar(self, promql: str, at: float | None = None) -> float:
        """The single value of ``promql`` (0 when the vector is empty)."""
        result = self.query(promql, at)
        return float(result[0]["value"][1]) if result else 0.0

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._data("/api/v1/query_range",
                          {"query": promql, "start": start, "end": end, "step": step})["result"]

    def targets(self) -> list[dict[str, Any]]:
        return self._data("/api/v1/targets", {"state": "active"})["activeTargets"]

    def alerts(self) -> list[dict[str, Any]]:
        """Rule alerts in state pending or firing."""
        return self._data("/api/v1/alerts")["alerts"]

    def metric_type(self, name: str) -> str | None:
        found = self._data("/api/v1/metadata", {"metric": name}).get(name) or []
        return found[0]["type"] if found else None
