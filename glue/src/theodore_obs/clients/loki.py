"""Loki's HTTP API: log queries over a time range, and LogQL string literals."""

from __future__ import annotations

import json
from typing import Any

from ._http import HttpBackend
from .shapes import DIGITS, LABELS, STR, arr, obj, pair

STREAMS = obj(data=obj(result=arr(obj(stream=LABELS, values=arr(pair(DIGITS, STR))))))


def logql_string(text: str) -> str:
    """``text`` as a LogQL string literal (a line filter's or a label matcher's value):
    double-quoted, with backslash, double quote, newline and every other control character
    escaped, so user text cannot end the string or the selector."""
    return json.dumps(text, ensure_ascii=False)


class Loki(HttpBackend):
    name = "Loki"

    def query_range(self, logql: str, start_ns: int, end_ns: int | None = None, limit: int = 1000,
                    direction: str = "backward") -> list[dict[str, Any]]:
        """Streams ``[{"stream": labels, "values": [[ns, line], ...]}]``."""
        answer = self.get("/loki/api/v1/query_range", {
            "query": logql, "start": start_ns, "end": end_ns, "limit": limit, "direction": direction,
        })
        return self.shaped(answer, STREAMS)["data"]["result"]
