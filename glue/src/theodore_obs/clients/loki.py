"""Loki's HTTP API: log queries over a time range."""

from __future__ import annotations

from typing import Any

from ._http import HttpBackend


class Loki(HttpBackend):
    name = "Loki"

    def query_range(self, logql: str, start_ns: int, end_ns: int | None = None, limit: int = 1000,
                    direction: str = "backward") -> list[dict[str, Any]]:
        """Streams ``[{"stream": labels, "values": [[ns, line], ...]}]``."""
        return self.get("/loki/api/v1/query_range", {
            "query": logql, "start": start_ns, "end": end_ns, "limit": limit, "direction": direction,
        })["data"]["result"]
