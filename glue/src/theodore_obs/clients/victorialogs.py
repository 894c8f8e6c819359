"""VictoriaLogs' HTTP API: LogsQL queries over a time range (JSON lines), and LogsQL literals.

Every request names its tenant with the ``AccountID`` and ``ProjectID`` headers, or goes through
vmauth with a reader's bearer token (:class:`VmauthLogs`), which sets them itself. A query
VictoriaLogs cannot parse is answered HTTP 400; it is raised as :class:`RejectedQuery` (the
CLI's exit 2, bad input), anything else that goes wrong as the usual backend errors.
"""

from __future__ import annotations

import calendar
import json
import queue
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from ._http import BackendError, BackendUnavailable, HttpBackend, summarise
from .shapes import log_record

QUERY_PATH = "/select/logsql/query"
TAIL_PATH = "/select/logsql/tail"
TAIL_DELAY = "1s"
"""How long the live tail waits for a log to arrive before it passes its time (``offset``)."""
UI_PATH = "/select/vmui/"
"""VictoriaLogs' own UI (the query explorer)."""

RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")
"""A ``_time`` as VictoriaLogs writes it: UTC, up to nine digits of fraction."""
LINE = log_record(RFC3339.pattern)


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
               ) -> Iterator[dict[str, str]]:
        """Every log the query matches from ``start_ns`` on, as they arrive, through the live
        tail API, until ``time.monotonic()`` passes ``stop_at`` (``None``: until the caller
        stops iterating). VictoriaLogs looks for new logs every ``interval`` seconds and waits
        :data:`TAIL_DELAY` for late ones, and gives each log once."""
        params = {"query": logsql, "start_offset": f"{max(0, time.time_ns() - start_ns) // 1_000_000}ms",
                  "offset": TAIL_DELAY, "refresh_interval": f"{max(1, int(interval * 1000))}ms"}
        arrived: queue.Queue[bytes | BaseException | None] = queue.Queue()
        with self.stream(TAIL_PATH, params) as lines:

            def read() -> None:
                try:
                    for line in lines:
                        if line.strip():
                            arrived.put(line)
                    arrived.put(None)
                except BackendUnavailable as exc:
                    arrived.put(exc)

            threading.Thread(target=read, name="victorialogs-tail", daemon=True).start()
            while True:
                wait = None if stop_at is None else stop_at - time.monotonic()
                if wait is not None and wait <= 0:
                    return
                try:
                    item = arrived.get(timeout=wait)
                except queue.Empty:
                    return
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    raise BackendUnavailable(self.name, self.shown_url, self.hint, "ended the live tail")
                yield self.record(item)

    def record(self, line: bytes) -> dict[str, str]:
        """One JSON line of an answer, checked against :data:`LINE`."""
        try:
            found = json.loads(line)
        except ValueError:
            raise BackendError(self.name, self.shown_url, 200, "answer is not JSON lines (another service on "
                               f"this port?): {summarise(line) or 'empty'}") from None
        return self.shaped(found, LINE)

    def lines(self, path: str, params: dict[str, Any]) -> list[dict[str, str]]:
        """A GET whose answer is JSON lines, one log per line, each checked against :data:`LINE`."""
        return [self.record(line) for line in self.get_bytes(path, params).splitlines() if line.strip()]

    def _refusal(self, status: int, body: bytes, kind: str) -> BackendError:
        """A 400 that is not an HTML page is VictoriaLogs refusing the query itself."""
        if status == 400 and kind != "text/html":
            return RejectedQuery(self.name, self.shown_url, status, summarise(body, kind) or "bad query")
        return super()._refusal(status, body, kind)


class TokenRefused(BackendError):
    """vmauth did not take the reader's token (HTTP 401 or 403)."""


class VmauthLogs(VictoriaLogs):
    """The logs a bearer token may read through vmauth, the log stores' read gateway: vmauth
    picks the store and the tenant's space from the token, so no tenant headers are sent.
    ``source`` names where the token came from in a refusal (never the token itself)."""

    name = "vmauth"

    def __init__(self, base_url: str, token: str, source: str, timeout: float | None = None) -> None:
        super().__init__(base_url, timeout=timeout)
        for header in ("AccountID", "ProjectID"):
            self.headers.pop(header)
        self.headers["Authorization"] = f"Bearer {token}"
        self.source = source

    def _refusal(self, status: int, body: bytes, kind: str) -> BackendError:
        if status in (401, 403):
            detail = summarise(body, kind) or "no detail"
            return TokenRefused(self.name, self.shown_url, status, f"the token from {self.source} was "
                                f"refused ({detail}): not a current token of this stack")
        return super()._refusal(status, body, kind)
