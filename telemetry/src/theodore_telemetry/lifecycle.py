"""A process's telemetry, flushed where the SDK's exit handlers do not run.

The SDK's providers flush at interpreter exit (``atexit``), and ``log_export`` drains its queue
just before them. Two common ends skip both:

- ``os._exit`` (a Celery prefork pool process, any ``multiprocessing`` fork child): the distro
  calls ``flush_telemetry`` from the worker's own "process ends" hook instead.
- Death by SIGTERM with its default action: a plain app stopped by Kubernetes or
  ``docker stop``, and every uvicorn worker, which shuts down gracefully on SIGTERM and then
  raises it again with the handler it found at start. ``flush_before_sigterm`` installs, where
  SIGTERM still has its default action, a handler that flushes and then lets SIGTERM end the
  process as before (same exit status; a second SIGTERM during the flush ends it at once).
  ``THEODORE_FLUSH_ON_SIGTERM=false`` leaves SIGTERM alone.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from opentelemetry import _logs, metrics, trace

from .log_export import EXPORT

FLUSH_TIMEOUT_MS = 5_000
"""How long each provider may take to export what it holds."""

FLUSH_ON_SIGTERM_ENV = "THEODORE_FLUSH_ON_SIGTERM"
"""``false``: no SIGTERM handler; a process killed by SIGTERM loses what it had not exported."""

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


def _flush_then_terminate(signum: int, frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_DFL)
    try:
        flush_telemetry()
    finally:
        signal.raise_signal(signum)


def flush_before_sigterm() -> bool:
    """Flush before SIGTERM's default action, if SIGTERM has it (nobody handles or ignores it)
    and this is the main thread; True if the handler was installed."""
    if os.environ.get(FLUSH_ON_SIGTERM_ENV, "").strip().lower() == "false":
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _flush_then_terminate)
    return True
