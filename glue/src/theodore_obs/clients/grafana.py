"""Grafana's HTTP API: find a dashboard's URL by title."""

from __future__ import annotations

import base64
import os
from typing import Any

from ._http import HttpBackend
from .shapes import STR, arr, obj

FOUND = arr(obj(title=STR, uid=STR, url=STR))


class Grafana(HttpBackend):
    name = "Grafana"
    hint = ("start the stack with `make up` on a Docker engine (the native runtime runs no Grafana) "
            "or point --grafana-url at one")

    @classmethod
    def from_spec(cls, base_url: str, spec: dict[str, Any]) -> Grafana:
        """Basic auth as the spec's admin user when its password variable is set, else anonymous."""
        grafana = spec.get("grafana", {})
        password = os.environ.get(grafana.get("admin_password_env", ""), "")
        headers = {}
        if password:
            pair = f"{grafana.get('admin_user', 'admin')}:{password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return cls(base_url, headers=headers)

    def search(self, query: str) -> list[dict[str, Any]]:
        """Dashboards whose title contains ``query``: ``[{"uid", "title", "url", ...}]``."""
        return self.shaped(self.get("/api/search", {"type": "dash-db", "query": query}) or [], FOUND)
