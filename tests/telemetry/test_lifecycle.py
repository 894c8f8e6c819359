"""A process's telemetry across fork and exit: what a pre-fork server's worker starts and ends with."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from theodore_telemetry import lifecycle, log_export
from theodore_telemetry.log_export import DeferredLogExport


def _in_child(check: Callable[[], bool], timeout: float = 20) -> bool:
    """``check()`` run in a forked child; True if it returned True (a hang or error is False)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's exit handlers
        try:
            os.write(write, b"1" if check() else b"0")
        finally:
            os._exit(0)
    os.close(write)
    result = threading.Event()
    answer: list[bytes] = []

    def wait() -> None:
        answer.append(os.read(read, 1))
        result.set()

    threading.Thread(target=wait, daemon=True).start()
    ok = result.wait(timeout)
    if not ok:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    os.close(read)
    return ok and answer == [b"1"]


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> InMemoryLogRecordExporter:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    monkeypatch.setattr(log_export, "get_logger_provider", lambda: provider)
    return exporter


def test_a_forked_child_starts_with_an_empty_log_queue_even_if_the_lock_was_held(
        exported: InMemoryLogRecordExporter) -> None:
    export = DeferredLogExport()
    export.submit("parent", 20, "queued in the parent", None, 1)
    with export._lock:  # the parent's export thread mid-flush at the fork
        def child() -> bool:
            export.submit("child", 20, "the child's own line", None, 2)
            export.flush()
            return [r.log_record.body for r in exported.get_finished_logs()] == ["the child's own line"]

        assert _in_child(child)
    export.flush()
    assert "queued in the parent" in [r.log_record.body for r in exported.get_finished_logs()]


def test_a_forked_child_has_its_own_instance_id_and_span_export_thread() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "forked"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    parent_id = provider.resource.attributes["service.instance.id"]

    def child() -> bool:
        with provider.get_tracer("t").start_as_current_span("in the child"):
            pass
        provider.force_flush(5000)
        (span,) = exporter.get_finished_spans()
        return span.resource.attributes["service.instance.id"] not in (parent_id, None)

    assert _in_child(child)
    provider.shutdown()


def test_flush_telemetry_exports_what_the_providers_hold(monkeypatch: pytest.MonkeyPatch,
                                                         exported: InMemoryLogRecordExporter) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(spans, schedule_delay_millis=3_600_000))
    monkeypatch.setattr(lifecycle.trace, "get_tracer_provider", lambda: provider)
    queue = DeferredLogExport()
    monkeypatch.setattr(lifecycle, "EXPORT", queue)
    queue.submit("app", 20, "last words", None, 1)
    with provider.get_tracer("t").start_as_current_span("held"):
        pass
    assert spans.get_finished_spans() == ()
    lifecycle.flush_telemetry()
    assert [span.name for span in spans.get_finished_spans()] == ["held"]
    assert "last words" in [r.log_record.body for r in exported.get_finished_logs()]
    provider.shutdown()


def _sigterm_child(prepare: Callable[[int], None]) -> tuple[int, bytes]:
    """A forked child that runs ``prepare(write_fd)`` then sends itself SIGTERM; the signal that
    ended it (0 if it exited) and what it wrote."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            prepare(write)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    written = os.read(read, 100)
    os.close(read)
    return (os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0), written


def test_sigterm_with_its_default_action_flushes_first_then_still_ends_the_process() -> None:
    def prepare(write: int) -> None:
        lifecycle.flush_telemetry = lambda: os.write(write, b"flushed")  # type: ignore[assignment]
        assert lifecycle.flush_before_sigterm()

    assert _sigterm_child(prepare) == (signal.SIGTERM, b"flushed")


def test_a_sigterm_handler_of_the_app_is_left_alone_and_the_switch_turns_it_off() -> None:
    def handled(write: int) -> None:
        signal.signal(signal.SIGTERM, lambda *_: os.write(write, b"app's own"))
        assert not lifecycle.flush_before_sigterm()

    assert _sigterm_child(handled) == (0, b"app's own")

    def switched_off(write: int) -> None:
        os.environ[lifecycle.FLUSH_ON_SIGTERM_ENV] = "false"
        lifecycle.flush_telemetry = lambda: os.write(write, b"flushed")  # type: ignore[assignment]
        assert not lifecycle.flush_before_sigterm()

    assert _sigterm_child(switched_off) == (signal.SIGTERM, b"")
