"""A process's telemetry, flushed where the SDK's exit handlers do not run.

The SDK's providers flush at interpreter exit (``atexit``), and ``log_export`` drains its queue
just before them. A process that ends with ``os._exit`` (a Celery prefork pool process, any
``multiprocessing`` fork child) skips both; the distro calls ``flush_telemetry`` from the
server's or worker's own "process ends" hook instead.
"""

from __future__ import annotations

import logging

from opentelemetry import _logs, metrics, trace

from .log_export import EXPORT

FLUSH_TIMEOUT_MS = 5_000
"""How long each provider may take to export what it holds."""

_log = logging.getLogger(__name__)


def flush_telemetry(timeout_ms: int = FLUSH_TIMEOUT_MS) -> None:
    """Emit the queued log lines, then have the tracer, meter and logger providers export
    everything they hold (each one that has ``force_flush``: the SDK's, not the API's no-ops)."""
    EXPORT.flush()
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is None:
            continue
        try:
            force_flush(timeout_ms)
        except Exception:  # one provider failing must not keep the others from flushing
            _log.exception("flushing %s failed", type(provider).__name__)
