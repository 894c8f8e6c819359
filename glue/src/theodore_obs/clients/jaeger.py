"""Jaeger's query HTTP API (the one its UI uses): services, trace search, one trace."""

from __future__ import annotations

import json
from typing import Any

from ._http import BackendError, HttpBackend


class Jaeger(HttpBackend):
    name = "Jaeger"

    def services(self) -> list[str]:
        return sorted(self.get("/api/services")["data"] or [])

    def find(self, service: str, tags: dict[str, str] | None = None, min_duration: str | None = None,
             start_us: int | None = None, end_us: int | None = None, limit: int = 20) -> list[dict[str, Any]]:
        return self.get("/api/traces", {
            "service": service, "tags": json.dumps(tags) if tags else None, "minDuration": min_duration,
            "start": start_us, "end": end_us, "limit": limit,
        })["data"] or []

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace, or None when Jaeger does not know it."""
        try:
            found = self.get(f"/api/traces/{trace_id}")["data"] or []
        except BackendError as exc:
            if exc.status == 404:
                return None
            raise
        return found[0] if found else None
