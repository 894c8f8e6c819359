"""Grafana's HTTP API: find a dashboard's URL by title or uid."""

from __future__ import annotations

from typing import Any

from ._http import HttpBackend


class Grafana(HttpBackend):
    name = "Grafana"

    def search(self, query: str) -> list[dict[str, Any]]:
        """Dashboards whose title contains ``query``: ``[{"uid", "title", "url"}]``."""
        return self.get("/api/search", {"type": "dash-db", "query": query}) or []
