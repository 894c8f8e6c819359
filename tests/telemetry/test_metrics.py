"""Catalogue instruments and seed 003's helpers, read back from an in-memory reader."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from theodore_obs.telemetry import metrics as metrics_mod
from theodore_obs.telemetry import tracing
from theodore_obs.telemetry.metrics import TheodoreMetrics, catalogue


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
    monkeypatch.setattr(tracing.trace, "get_tracer", provider.get_tracer)
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
