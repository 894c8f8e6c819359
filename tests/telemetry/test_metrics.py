"""Catalogue instruments and seed 003's helpers, read back from an in-memory reader."""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest
from opentelemetry.metrics import (
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from theodore_telemetry import metrics as metrics_mod
from theodore_telemetry import tracing
from theodore_telemetry.metrics import TheodoreMetrics, catalogue, summed_in_process


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def theodore(reader: InMemoryMetricReader) -> TheodoreMetrics:
    return TheodoreMetrics(MeterProvider(metric_readers=[reader]))


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    data = reader.get_metrics_data()
    return {m.name: list(m.data.data_points)
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_catalogue_holds_both_seeds_with_prometheus_names() -> None:
    names = set(catalogue())
    assert {"theodore_requests_total", "theodore_ai_cost_total", "theodore_active_operations",
            "event_discovery_total", "cache_size_bytes", "opportunity_score",
            "message_quality_score", "queue_size"} <= names
    for spec in catalogue().values():
        assert spec.type in {"counter", "histogram", "updowncounter", "gauge"}, spec.name
        assert spec.name.endswith("_total") == (spec.type == "counter"), spec.name
        assert (spec.buckets is not None) == (spec.type == "histogram"), spec.name


def test_every_metric_records_under_its_otel_name(theodore: TheodoreMetrics, reader) -> None:
    for spec in catalogue().values():
        theodore.record(spec.name, 1, **{label: "x" for label in spec.labels})
    recorded = points(reader)
    for spec in catalogue().values():
        assert len(recorded[spec.otel_name]) == 1, spec.name


def test_request_helper_counts_errors_for_4xx_and_5xx(theodore: TheodoreMetrics, reader) -> None:
    theodore.record_request("/research", "GET", 200, 0.05)
    theodore.record_request("/research", "GET", 503, 0.5)
    recorded = points(reader)
    assert sorted(p.attributes["status_code"] for p in recorded["theodore_requests"]) == ["200", "503"]
    (error,) = recorded["theodore_errors"]
    assert error.attributes == {"error_type": "http_error", "endpoint": "/research", "status_code": "503"}
    (duration,) = recorded["theodore_request_duration_seconds"]
    assert duration.count == 2 and duration.sum == pytest.approx(0.55)
    assert list(duration.explicit_bounds) == list(catalogue()["theodore_request_duration_seconds"].buckets)


def test_ai_and_research_helpers(theodore: TheodoreMetrics, reader) -> None:
    theodore.record_ai_operation("openai", "gpt-4o", "chat", 1200, 1.5, 0.012, True)
    theodore.record_ai_operation("openai", "gpt-4o", "chat", 0, 0.2, 0.0, False)
    theodore.record_company_research("Acme", "full", True, 3.0, pages_scraped=4)
    theodore.record_company_research("Initech", "full", False, 1.0)
    recorded = points(reader)
    cost = {p.attributes["success"]: p.value for p in recorded["theodore_ai_cost"]}
    assert cost == {"True": pytest.approx(0.012), "False": 0.0}
    assert recorded["theodore_errors"][0].attributes["error_type"] == "ai_operation_failure"
    (rate,) = recorded["theodore_research_success_rate"]
    assert rate.value == 0.5
    assert recorded["theodore_scraping_pages"][0].value == 4
    assert all("Acme" not in str(p.attributes) for pts in recorded.values() for p in pts)


def test_unknown_label_is_refused_naming_the_allowed_ones(theodore: TheodoreMetrics) -> None:
    with pytest.raises(ValueError, match=r"theodore_storage_operations_total: labels \['bucket'\].*"
                                         r"allowed: storage_type, operation, success"):
        theodore.record("theodore_storage_operations_total", 1, bucket="b")


def test_track_operation_counts_active_and_failures(theodore: TheodoreMetrics, reader) -> None:
    with theodore.track_operation("scrape"):
        (active,) = points(reader)["theodore_active_operations"]
        assert active.value == 1
    with pytest.raises(RuntimeError), theodore.track_operation("scrape"):
        raise RuntimeError("boom")

    async def run() -> None:
        async with theodore.track_operation_async("scrape"):
            pass

    asyncio.run(run())
    recorded = points(reader)
    assert recorded["theodore_active_operations"][0].value == 0
    assert recorded["theodore_operation_duration_seconds"][0].count == 3
    assert recorded["theodore_errors"][0].attributes == {"error_type": "operation_failure",
                                                         "operation": "scrape"}


def test_tracing_helpers_sync_async_and_errors(monkeypatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing.trace, "get_tracer_provider", lambda: provider)
    with tracing.trace_research_operation("Acme"), tracing.trace_scraping_operation("http://x/", 1):
        pass

    async def ai() -> None:
        async with tracing.trace_ai_operation("openai", "gpt-4o", "chat"):
            raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        asyncio.run(ai())
    scrape, research, chat = exporter.get_finished_spans()
    assert scrape.parent.span_id == research.context.span_id
    assert research.attributes["theodore.company"] == "Acme"
    assert chat.name == "chat gpt-4o" and chat.attributes["gen_ai.system"] == "openai"
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.events[0].name == "exception"


def test_get_metrics_is_one_per_process() -> None:
    assert metrics_mod.get_metrics() is metrics_mod.get_metrics()


def test_without_a_reader_only_histograms_and_marked_counters_take_the_sdk_path() -> None:
    synchronous = {name for name, spec in catalogue().items() if not summed_in_process(spec)}
    assert {"theodore_errors_total", "theodore_ai_cost_total", "theodore_request_duration_seconds"} <= synchronous
    assert "theodore_requests_total" not in synchronous and "queue_size" not in synchronous
    instruments = TheodoreMetrics(MeterProvider())._instruments
    for name in catalogue():
        observable = isinstance(instruments[name], (ObservableCounter, ObservableGauge, ObservableUpDownCounter))
        assert observable == (name not in synchronous), name


def test_summed_in_process_values_match_the_sdk_semantics(theodore: TheodoreMetrics, reader, caplog) -> None:
    theodore.record("event_discovery_total", 2, location="berlin", source="news")
    theodore.record("event_discovery_total", 3, source="news", location="berlin")  # label order
    theodore.record("event_discovery_total", -1, location="berlin", source="news")
    theodore.record("queue_size", 7, queue_name="content")
    theodore.record("queue_size", 0, queue_name="content")
    theodore.record("theodore_active_operations", 1, operation="scrape")
    theodore.record("theodore_active_operations", -1, operation="scrape")
    theodore.record("theodore_active_operations", 1, operation="scrape")
    recorded = points(reader)
    (discovered,) = recorded["event_discovery"]
    assert discovered.value == 5 and discovered.attributes == {"location": "berlin", "source": "news"}
    assert "a counter only goes up; dropped -1" in caplog.text
    assert [p.value for p in recorded["queue_size"]] == [0]
    assert [p.value for p in recorded["theodore_active_operations"]] == [1]
    theodore.record("event_discovery_total", 1, location="berlin", source="news")
    assert [p.value for p in points(reader)["event_discovery"]] == [6]  # cumulative across exports


def test_summed_in_process_loses_nothing_across_threads(theodore: TheodoreMetrics, reader) -> None:
    def work() -> None:
        for _ in range(2000):
            theodore.record("theodore_requests_total", 1, endpoint="/r", method="GET", status_code=200)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [p.value for p in points(reader)["theodore_requests"]] == [16_000]


def test_cost_and_latency_points_carry_the_trace_as_exemplar(theodore: TheodoreMetrics, reader) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("chat") as span:
        theodore.record_ai_operation("openai", "gpt-4o", "chat", 100, 0.4, 0.01, True)
    trace_id = span.get_span_context().trace_id
    recorded = points(reader)
    for name in ("theodore_ai_cost", "theodore_ai_operation_duration_seconds"):
        (point,) = recorded[name]
        assert {e.trace_id for e in point.exemplars} == {trace_id}, name
    (tokens,) = recorded["theodore_ai_tokens"]
    assert tokens.value == 100 and not tokens.exemplars


def test_get_metrics_is_one_even_when_threads_race_on_first_use(monkeypatch) -> None:
    monkeypatch.setattr(metrics_mod, "_process_metrics", functools.cache(metrics_mod.TheodoreMetrics))
    start, seen = threading.Barrier(8), []

    def first_use() -> None:
        start.wait()
        seen.append(metrics_mod.get_metrics())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(m) for m in seen}) == 1
