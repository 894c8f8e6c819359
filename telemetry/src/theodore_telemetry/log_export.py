"""Hands rendered log lines to the OpenTelemetry logs pipeline off the caller's thread.

Building the SDK's log record (and the batch processor's copy of it) costs more than the rest
of a log call together. A log call therefore only appends a tuple to a bounded queue, with
the trace context captured at that moment; a daemon thread turns queued lines into SDK log
records a batch at a time. The SDK's own batch processor and exporter then do as configured
(``OTEL_*``). Lines that find the queue full are dropped rather than blocking the application,
and counted (``theodore_telemetry_dropped_total{reason="log_queue_full"}``). The queue is
drained at exit: the drain is registered with ``atexit`` on the first line, after the SDK's
providers registered their shutdown, so it runs before them.

A forked child (a gunicorn worker, a Celery pool process) starts with an empty queue, a fresh
lock and wake event (the parent's export thread may have held them at the fork) and its own
export thread on its first line; the lines still queued in the parent are the parent's to send.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import os
import threading
import weakref
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry._logs import SeverityNumber, get_logger_provider

from .drops import count_dropped

TRACE = 5

_SEVERITY = {TRACE: SeverityNumber.TRACE, logging.DEBUG: SeverityNumber.DEBUG,
             logging.INFO: SeverityNumber.INFO, logging.WARNING: SeverityNumber.WARN,
             logging.ERROR: SeverityNumber.ERROR, logging.CRITICAL: SeverityNumber.FATAL}
_SEVERITY_TEXT = {TRACE: "TRACE", logging.DEBUG: "DEBUG", logging.INFO: "INFO",
                  logging.WARNING: "WARN", logging.ERROR: "ERROR", logging.CRITICAL: "FATAL"}

QUEUE_LIMIT = 20_000
"""Lines waiting for the export thread; beyond it new lines are dropped (and counted)."""

WAKE_EVERY_SECONDS = 0.1
"""How long a queued line may wait when the queue is not filling up."""

WAKE_AT = 512
"""A queue this long wakes the export thread at once."""


@functools.lru_cache(maxsize=1024)
def _otel_logger(provider: Any, name: str) -> Any:
    return provider.get_logger(name)


def emit_now(logger_name: str, levelno: int, line: str, attributes: dict[str, str] | None,
             timestamp_ns: int, context: Any) -> None:
    """One JSON line to the OpenTelemetry logs pipeline, in the given trace context."""
    _otel_logger(get_logger_provider(), logger_name).emit(
        timestamp=timestamp_ns,
        context=context,
        severity_number=_SEVERITY.get(levelno, SeverityNumber.INFO),
        severity_text=_SEVERITY_TEXT.get(levelno, "INFO"),
        body=line,
        attributes=attributes,
    )


class DeferredLogExport:
    """A bounded queue of log lines and the daemon thread that emits them."""

    def __init__(self, limit: int = QUEUE_LIMIT) -> None:
        self.limit = limit
        self.dropped = 0
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._pid = 0
        self._drain_at_exit = False
        after_fork = weakref.WeakMethod(self._after_fork_in_child)
        os.register_at_fork(after_in_child=lambda: (method := after_fork()) and method())

    def submit(self, logger_name: str, levelno: int, line: str,
               attributes: dict[str, str] | None, timestamp_ns: int) -> None:
        """Queue a line with the caller's current context; never blocks."""
        if self._pid != os.getpid():
            self._start()
        queue = self._queue
        if len(queue) >= self.limit:
            self.dropped += 1
            count_dropped("logs", "log_queue_full")
            return
        queue.append((logger_name, levelno, line, attributes, timestamp_ns, otel_context.get_current()))
        if len(queue) >= WAKE_AT:
            self._wake.set()

    def flush(self) -> None:
        """Emit everything queued so far, on the calling thread."""
        with self._lock:
            queue = self._queue
            while queue:
                emit_now(*queue.popleft())

    def _after_fork_in_child(self) -> None:
        """Forget the parent's lines, lock, event and thread; the first line starts ours."""
        self._queue = collections.deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._worker = None
        self._pid = 0

    def _start(self) -> None:
        """Start the export thread in this process (again after a fork: threads do not survive it)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue.clear()
            self._worker = threading.Thread(target=self._run, name="theodore-log-export", daemon=True)
            self._worker.start()
            self._pid = os.getpid()
            if not self._drain_at_exit:
                atexit.register(self.flush)
                self._drain_at_exit = True

    def _run(self) -> None:
        while True:
            self._wake.wait(WAKE_EVERY_SECONDS)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a broken exporter must not end log export for good
                logging.getLogger("opentelemetry.theodore").exception("log export failed")


EXPORT = DeferredLogExport()
"""The process's one queue."""
