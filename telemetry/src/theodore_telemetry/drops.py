"""Counts the telemetry an app loses on its way to the collector, in ``theodore_telemetry_dropped_total``.

When the collector cannot be reached the app keeps serving: every queue between a request and
the collector is bounded and drops what no longer fits, and a batch whose export fails is gone.
The SDK (1.45) loses telemetry in these places, each counted here by ``signal`` and ``reason``:

- ``queue_full``: the span or log batch processor's queue (``OTEL_BSP_MAX_QUEUE_SIZE``,
  ``OTEL_BLRP_MAX_QUEUE_SIZE``, 2048 each) is full; the oldest item is pushed out.
- ``export_failed``: the OTLP exporter gave up on a batch (connection refused or a retryable
  status until ``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s, ran out; a non-retryable status at once);
  the batch processor does not retry it. For ``metrics`` one failed export counts 1: the
  next export carries the cumulative totals again, so only that point in time is missing.
- ``shutdown``: emitted after the provider shut down.
- ``log_queue_full``: our own log queue (``log_export.QUEUE_LIMIT`` lines) is full.

The counter is an app metric like the others (exported with them, so Prometheus sees the
total once the collector is back). ``dropped_counts()`` gives the same totals in the process.
"""

from __future__ import annotations

import collections
import functools
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from theodore_catalogue import catalogued

from .metrics import get_metrics

__all__ = ["DROPPED", "count_dropped", "dropped_counts", "watch_providers"]

DROPPED = catalogued("theodore_telemetry_dropped_total", "counter")

_totals: collections.Counter[tuple[str, str]] = collections.Counter()
_lock = threading.Lock()


def _reset_lock_after_fork() -> None:
    global _lock  # noqa: PLW0603 (a fork copies the lock in whatever state another thread left it)
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_after_fork)


def count_dropped(signal: str, reason: str, count: int = 1) -> None:
    """Add ``count`` lost items of ``signal`` (spans, logs, metrics) for ``reason``."""
    if count <= 0:
        return
    with _lock:
        _totals[(signal, reason)] += count
    get_metrics().record(DROPPED, count, signal=signal, reason=reason)


def dropped_counts() -> dict[tuple[str, str], int]:
    """(signal, reason) → items dropped so far in this process."""
    with _lock:
        return dict(_totals)


def _failed(result: Any) -> bool:
    return getattr(result, "name", "") == "FAILURE"


def _counting_export(export: Callable[..., Any], signal: str,
                     size: Callable[[Any], int]) -> Callable[..., Any]:
    @functools.wraps(export)
    def counted(batch: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = export(batch, *args, **kwargs)
        except Exception:
            count_dropped(signal, "export_failed", size(batch))
            raise
        if _failed(result):
            count_dropped(signal, "export_failed", size(batch))
        return result

    counted.theodore_counted = True  # type: ignore[attr-defined]
    return counted


class CountingProcessorMetrics:
    """The batch processor's own metrics hook (``drop_items``), counting drops on the way."""

    def __init__(self, inner: Any, signal: str) -> None:
        self._inner, self._signal = inner, signal

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        self._inner.register_queue_size(get_queue_size)

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        count_dropped(self._signal, "shutdown" if error_type == "already_shutdown" else "queue_full", count)
        self._inner.drop_items(count, error_type)

    def finish_items(self, count: int) -> None:
        self._inner.finish_items(count)


def watch_batch_processor(processor: Any, signal: str) -> bool:
    """Count what a BatchSpanProcessor or BatchLogRecordProcessor drops; False if it is not one."""
    batch = getattr(processor, "_batch_processor", None)
    exporter = getattr(batch, "_exporter", None)
    if exporter is None or not hasattr(batch, "_metrics"):
        return False
    if not getattr(exporter.export, "theodore_counted", False):
        exporter.export = _counting_export(exporter.export, signal, len)
        batch._metrics = CountingProcessorMetrics(batch._metrics, signal)
    return True


def watch_metric_reader(reader: Any) -> bool:
    """Count the failed exports of a push reader (PeriodicExportingMetricReader)."""
    exporter = getattr(reader, "_exporter", None)
    if exporter is None or not callable(getattr(exporter, "export", None)):
        return False
    if not getattr(exporter.export, "theodore_counted", False):
        exporter.export = _counting_export(exporter.export, "metrics", lambda _: 1)
    return True


def _processors(provider: Any, *path: str) -> Iterable[Any]:
    for name in path:
        provider = getattr(provider, name, None)
    return provider or ()


def watch_providers(tracer_provider: Any, logger_provider: Any, meter_provider: Any) -> int:
    """Count drops in every batch processor and push reader the SDK providers hold; how many."""
    watched = sum(watch_batch_processor(p, "spans") for p in
                  _processors(tracer_provider, "_active_span_processor", "_span_processors"))
    watched += sum(watch_batch_processor(p, "logs") for p in
                   _processors(logger_provider, "_multi_log_record_processor", "_log_record_processors"))
    watched += sum(watch_metric_reader(r) for r in _processors(meter_provider, "_metric_readers"))
    return watched
