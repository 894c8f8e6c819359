"""VictoriaLogs' HTTP API: LogsQL queries over a time range (JSON lines), and LogsQL literals.

Every request names its tenant with the ``AccountID`` and ``ProjectID`` headers. A query
VictoriaLogs cannot parse is answered HTTP 400; it is raised as :class:`RejectedQuery` (the
CLI's exit 2, bad input), anything else that goes wrong as the usual backend errors.
"""

from __future__ import annotations

import calendar
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from ._http import BackendError, HttpBackend, summarise
from .shapes import arr, log_record

QUERY_PATH = "/select/logsql/query"
UI_PATH = "/select/vmui/"
"""VictoriaLogs' own UI (the query explorer)."""

RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")
"""A ``_time`` as VictoriaLogs writes it: UTC, up to nine digits of fraction."""
LATE_NS = 10_000_000_000
"""How late a log may arrive after a newer one and still be followed (10 s)."""
LINE = log_record(RFC3339.pattern)
LINES = arr(LINE)


class RejectedQuery(BackendError):
    """VictoriaLogs refused the query (HTTP 400): bad input, not a backend failure."""


def logsql_string(text: str) -> str:
    """``text`` as a LogsQL string literal (a phrase, a substring or a field's value):
    double-quoted, with backslash, double quote, newline and every other control character
    escaped, so user text cannot end the string and become query syntax."""
    return json.dumps(text, ensure_ascii=False)


def time_ns(text: str) -> int:
    """Unix nanoseconds of a ``_time`` (checked against :data:`RFC3339` by the answer's shape)."""
    found = RFC3339.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r}: not an RFC 3339 UTC time")
    whole = calendar.timegm(time.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S"))
    return whole * 1_000_000_000 + int((found.group(2) or "").ljust(9, "0"))


class VictoriaLogs(HttpBackend):
    """One tenant's logs in VictoriaLogs (``account_id``/``project_id``, default 0/0)."""

    name = "VictoriaLogs"

    def __init__(self, base_url: str, account_id: int = 0, project_id: int = 0,
                 timeout: float | None = None) -> None:
        super().__init__(base_url, timeout, {"AccountID": str(account_id), "ProjectID": str(project_id)})
        self.tenant = (account_id, project_id)

    def query(self, logsql: str, start_ns: int, end_ns: int | None = None,
              limit: int = 1000) -> list[dict[str, str]]:
        """The newest ``limit`` logs the query matches in ``[start_ns, end_ns)`` (end: now),
        oldest first; each a dict of field name to string value."""
        found = self.lines(QUERY_PATH, {"query": logsql, "start": start_ns, "end": end_ns, "limit": limit})
        return sorted(found, key=lambda record: time_ns(record["_time"]))

    def follow(self, logsql: str, start_ns: int, interval: float, stop_at: float | None = None,
               batch: int = 1000) -> Iterator[dict[str, str]]:
        """Every log the query matches from ``start_ns`` on, as they arrive, until
        ``time.monotonic()`` passes ``stop_at`` (``None``: until the caller stops iterating).
        The query is asked again every ``interval`` seconds, each time for the last
        :data:`LATE_NS` before the newest time seen too (a log can arrive after a newer one of
        another service); a log already given is not given again."""
        seen: set[tuple[str, str, str]] = set()
        newest = start_ns
        while stop_at is None or time.monotonic() < stop_at:
            for record in self.query(logsql, max(start_ns, newest - LATE_NS), None, batch):
                key = (record["_time"], record.get("_stream_id", ""), record.get("_msg", ""))
                if key not in seen:
                    seen.add(key)
                    yield record
                newest = max(newest, time_ns(record["_time"]))
            seen = {key for key in seen if time_ns(key[0]) >= newest - LATE_NS}
            time.sleep(interval if stop_at is None else max(0.0, min(interval, stop_at - time.monotonic())))

    def lines(self, path: str, params: dict[str, Any]) -> list[dict[str, str]]:
        """A GET whose answer is JSON lines, one log per line, each checked against :data:`LINE`."""
        _status, body, _kind = self._answer(urllib.request.Request(self.url(path, params)))  # noqa: S310
        try:
            records = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        except ValueError:
            raise BackendError(self.name, self.shown_url, 200, "answer is not JSON lines (another service on "
                               f"this port?): {summarise(body) or 'empty'}") from None
        return self.shaped(records, LINES)

    def _refusal(self, status: int, body: bytes, kind: str) -> BackendError:
        """A 400 that is not an HTML page is VictoriaLogs refusing the query itself."""
        if status == 400 and kind != "text/html":
            return RejectedQuery(self.name, self.shown_url, status, summarise(body, kind) or "bad query")
        return super()._refusal(status, body, kind)
