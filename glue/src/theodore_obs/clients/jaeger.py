"""Jaeger's query HTTP API (the one its UI uses): services, trace search, one trace."""

from __future__ import annotations

import json
import re
from typing import Any

from ._http import BackendError, HttpBackend, path_segment
from .shapes import NUM, STR, arr, obj

TRACE_ID = re.compile(r"[0-9a-fA-F]{16}|[0-9a-fA-F]{32}")
"""A trace id: 16 or 32 hex digits."""

SPAN = obj(spanID=STR, operationName=STR, processID=STR, startTime=NUM, duration=NUM, optional={
    "tags": arr(obj(key=STR)), "references": arr(obj(refType=STR, spanID=STR))})
TRACES = obj(data=arr(obj(traceID=STR, spans=arr(SPAN, min_items=1), optional={
    "processes": {"type": "object", "additionalProperties": obj(optional={"serviceName": STR})}}),
    nullable=True))
SERVICES = obj(data=arr(STR, nullable=True))


def trace_id(text: str) -> str:
    """``text`` if it is a trace id (16 or 32 hex digits), else ``ValueError``."""
    if not TRACE_ID.fullmatch(text):
        raise ValueError(f"trace id {text!r}: expected 16 or 32 hex digits")
    return text


class Jaeger(HttpBackend):
    name = "Jaeger"

    def services(self) -> list[str]:
        return sorted(self.shaped(self.get("/api/services"), SERVICES)["data"] or [])

    def find(self, service: str, tags: dict[str, str] | None = None, min_duration: str | None = None,
             start_us: int | None = None, end_us: int | None = None, limit: int = 20) -> list[dict[str, Any]]:
        return self.shaped(self.get("/api/traces", {
            "service": service, "tags": json.dumps(tags) if tags else None, "minDuration": min_duration,
            "start": start_us, "end": end_us, "limit": limit,
        }), TRACES)["data"] or []

    def trace(self, wanted: str) -> dict[str, Any] | None:
        """The trace, or None when Jaeger does not know it."""
        try:
            answer = self.get(f"/api/traces/{path_segment(trace_id(wanted))}")
        except BackendError as exc:
            if exc.status == 404:
                return None
            raise
        found = self.shaped(answer, TRACES)["data"] or []
        return found[0] if found else None
