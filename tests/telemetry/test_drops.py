"""Dropped telemetry counting: every span, log record and metric export the SDK loses to an
unreachable collector, and every line our log queue refuses, lands in theodore_telemetry_dropped_total."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from theodore_telemetry import drops, log_export
from theodore_telemetry.log_export import DeferredLogExport
from theodore_telemetry.metrics import TheodoreMetrics

QUEUE = 4
ITEMS = 10


@pytest.fixture
def closed_port() -> str:
    """An OTLP endpoint where nothing listens (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    """The app's catalogue instruments on a provider whose collections the test reads."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instruments = TheodoreMetrics(provider)
    monkeypatch.setattr(drops, "get_metrics", lambda: instruments)
    monkeypatch.setattr(drops, "_totals", type(drops._totals)())
    yield reader
    provider.shutdown()


def exported_drops(reader: InMemoryMetricReader) -> dict[tuple[str, str], float]:
    """(signal, reason) → the value the metric pipeline exports for theodore_telemetry_dropped_total."""
    data = reader.get_metrics_data()
    return {(point.attributes["signal"], point.attributes["reason"]): point.value
            for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics
            if metric.name == "theodore_telemetry_dropped" for point in metric.data.data_points}


BATCH = {"max_queue_size": QUEUE, "max_export_batch_size": QUEUE, "schedule_delay_millis": 60_000}
"""A small queue, and no scheduled export during the test."""


Pipeline = tuple[Any, Any, tuple[Any, Any, Any], Callable[[int], None]]
"""A provider, its batch processor, the providers as watch_providers takes them, and an emit."""


def span_pipeline(endpoint: str) -> Pipeline:
    provider = TracerProvider()
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=0.5), **BATCH)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    return provider, processor, (provider, None, None), lambda n: tracer.start_span(f"op {n}").end()


def log_pipeline(endpoint: str) -> Pipeline:
    provider = LoggerProvider()
    processor = BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", timeout=0.5), **BATCH)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("t")
    return provider, processor, (None, provider, None), lambda n: logger.emit(body=f"line {n}")


@pytest.mark.parametrize(("signal", "pipeline"), [("spans", span_pipeline), ("logs", log_pipeline)])
def test_items_pushed_out_of_a_full_queue_or_failing_export_are_all_counted(
        signal: str, pipeline: Callable[[str], Any], closed_port: str, reader: InMemoryMetricReader) -> None:
    """Every item is lost: either pushed out of the full queue or in a batch the exporter gave up on."""
    provider, processor, providers, emit = pipeline(closed_port)
    assert drops.watch_providers(*providers) == 1
    with processor._batch_processor._export_lock:  # the export thread waits: the queue overflows
        for n in range(ITEMS):
            emit(n)
    provider.force_flush()
    counts = drops.dropped_counts()
    assert counts[(signal, "queue_full")] == ITEMS - QUEUE
    assert sum(counts.values()) == ITEMS
    assert exported_drops(reader) == counts
    provider.shutdown()


def test_a_failed_metric_export_counts_one(closed_port: str, reader: InMemoryMetricReader) -> None:
    pushing = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{closed_port}/v1/metrics", timeout=0.5),
                                            export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[pushing])
    provider.get_meter("t").create_counter("work").add(1)
    assert drops.watch_providers(None, None, provider) == 1
    assert drops.watch_providers(None, None, provider) == 1  # watched once: no double counting
    pushing.force_flush()
    assert drops.dropped_counts() == {("metrics", "export_failed"): 1}
    provider.shutdown()
    assert drops.dropped_counts()[("metrics", "export_failed")] == 2  # the final export at shutdown


def test_a_successful_export_counts_nothing(reader: InMemoryMetricReader) -> None:
    provider = TracerProvider()
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces"))
    processor._batch_processor._exporter.export = lambda batch: type("R", (), {"name": "SUCCESS"})()
    provider.add_span_processor(processor)
    drops.watch_providers(provider, None, None)
    provider.get_tracer("t").start_span("op").end()
    provider.force_flush()
    assert drops.dropped_counts() == {}
    provider.shutdown()


def test_lines_our_full_log_queue_refuses_are_counted(reader: InMemoryMetricReader,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    queue = DeferredLogExport(limit=2)
    monkeypatch.setattr(queue, "_run", lambda: None)  # no thread draining behind our back
    monkeypatch.setattr(log_export, "emit_now", lambda *args: None)
    for n in range(5):
        queue.submit("app", logging.INFO, f"line {n}", None, n)
    queue.flush()
    assert drops.dropped_counts() == {("logs", "log_queue_full"): 3}
    assert exported_drops(reader) == {("logs", "log_queue_full"): 3}
