"""Reading what a test wrote from a real VictoriaLogs, through its LogsQL query API."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Any


def logsql_string(text: str) -> str:
    """``text`` as a LogsQL string literal (a quoted phrase or field value)."""
    return json.dumps(text, ensure_ascii=False)


def query_logs(base_url: str, logsql: str, *, since_s: float = 600, limit: int = 1000,
               headers: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Every log matching ``logsql`` in the last ``since_s`` seconds, oldest first; each a dict
    of its fields (``_msg``, ``_time``, ``service.name``, ``trace_id`` …)."""
    body = urllib.parse.urlencode({"query": logsql, "limit": limit,
                                   "start": f"{time.time() - since_s:.3f}"}).encode()
    request = urllib.request.Request(f"{base_url}/select/logsql/query", data=body, method="POST",
                                     headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        rows = [json.loads(line) for line in response.read().splitlines() if line.strip()]
    return sorted(rows, key=lambda row: row["_time"])


def json_lines(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The apps' JSON log lines (``_msg``) of ``rows``."""
    return [json.loads(row["_msg"]) for row in rows]
