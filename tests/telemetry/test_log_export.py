"""Deferred OTLP log export: lines leave the caller's thread and arrive intact, in their context."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider
from theodore_telemetry import log_export
from theodore_telemetry.log_export import DeferredLogExport


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryLogRecordExporter]:
    """A logger provider that keeps what it exports, installed for the duration of a test."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    monkeypatch.setattr(log_export, "get_logger_provider", lambda: provider)
    yield exporter
    provider.shutdown()


def test_flush_emits_queued_lines_with_their_trace_context(exported: InMemoryLogRecordExporter) -> None:
    queue = DeferredLogExport()
    with TracerProvider().get_tracer("t").start_as_current_span("op") as span:
        queue.submit("app", logging.WARNING, '{"message": "hi"}', {"component": "scraper"}, 1_000)
    assert exported.get_finished_logs() == ()
    queue.flush()
    (data,) = exported.get_finished_logs()
    record = data.log_record
    assert record.body == '{"message": "hi"}'
    assert record.severity_number is SeverityNumber.WARN and record.severity_text == "WARN"
    assert record.trace_id == span.get_span_context().trace_id
    assert record.span_id == span.get_span_context().span_id
    assert dict(record.attributes) == {"component": "scraper"}
    assert record.timestamp == 1_000


def test_the_export_thread_delivers_without_a_flush(exported: InMemoryLogRecordExporter) -> None:
    queue = DeferredLogExport()
    for n in range(3):
        queue.submit("app", logging.INFO, f"line {n}", None, n)
    deadline = time.monotonic() + 5
    while len(exported.get_finished_logs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [d.log_record.body for d in exported.get_finished_logs()] == ["line 0", "line 1", "line 2"]


def test_a_full_queue_drops_and_counts_instead_of_blocking(exported: InMemoryLogRecordExporter,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    queue = DeferredLogExport(limit=2)
    monkeypatch.setattr(queue, "_run", lambda: None)  # no thread draining behind our back
    for n in range(5):
        queue.submit("app", logging.INFO, f"line {n}", None, n)
    queue.flush()
    assert queue.dropped == 3
    assert [d.log_record.body for d in exported.get_finished_logs()] == ["line 0", "line 1"]
