"""Catalogue histograms and exemplar counters aggregated in the process: read back through an
SDK reader, point for point what the SDK's own instruments give for the same measurements."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from theodore_telemetry.metrics import TheodoreMetrics, catalogue

VALUES = [0.004, 0.1, 0.25, 0.25, 3.0, 99.0, 12.5, 0.0]
"""Below, on and above bucket bounds, and beyond the last one."""


def collected(reader: InMemoryMetricReader) -> dict[str, object]:
    data = reader.get_metrics_data()
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def scopes(reader: InMemoryMetricReader) -> list[str]:
    data = reader.get_metrics_data()
    return [sm.scope.name for rm in data.resource_metrics for sm in rm.scope_metrics]


def test_a_histogram_is_what_the_sdk_histogram_gives_for_the_same_values() -> None:
    spec = catalogue()["theodore_request_duration_seconds"]
    reader, sdk_reader = InMemoryMetricReader(), InMemoryMetricReader()
    ours = TheodoreMetrics(MeterProvider(metric_readers=[reader]))
    sdk = MeterProvider(metric_readers=[sdk_reader]).get_meter("x").create_histogram(
        spec.otel_name, explicit_bucket_boundaries_advisory=spec.buckets)
    for value in VALUES:
        ours.record(spec.name, value, endpoint="/r", method="GET")
        sdk.record(value, {"endpoint": "/r", "method": "GET"})
    (point,) = collected(reader)[spec.otel_name].data.data_points
    (expected,) = collected(sdk_reader)[spec.otel_name].data.data_points
    assert list(point.bucket_counts) == list(expected.bucket_counts)
    assert list(point.explicit_bounds) == list(expected.explicit_bounds) == list(spec.buckets)
    assert (point.count, point.sum, point.min, point.max) == (expected.count, pytest.approx(expected.sum),
                                                              expected.min, expected.max)
    assert point.attributes == expected.attributes == {"endpoint": "/r", "method": "GET"}
    metric = collected(reader)[spec.otel_name]
    assert metric.data.aggregation_temporality.name == "CUMULATIVE"
    assert metric.unit == spec.unit and metric.description == spec.help


def test_each_bucket_keeps_its_last_sampled_measurement_as_exemplar_until_collected() -> None:
    reader = InMemoryMetricReader()
    ours = TheodoreMetrics(MeterProvider(metric_readers=[reader]))
    tracer = TracerProvider().get_tracer("test")
    ours.record("theodore_operation_duration_seconds", 0.2, operation="a")  # no span: no exemplar
    with tracer.start_as_current_span("first"):
        ours.record("theodore_operation_duration_seconds", 0.2, operation="a")
    with tracer.start_as_current_span("second") as second:
        ours.record("theodore_operation_duration_seconds", 0.21, operation="a")
    (point,) = collected(reader)["theodore_operation_duration_seconds"].data.data_points
    (exemplar,) = point.exemplars
    assert (exemplar.value, exemplar.trace_id, exemplar.span_id) == (
        0.21, second.get_span_context().trace_id, second.get_span_context().span_id)
    (again,) = collected(reader)["theodore_operation_duration_seconds"].data.data_points
    assert again.count == 3 and not again.exemplars  # cumulative counts, fresh exemplars


def test_an_exemplar_counter_sums_and_points_at_its_span() -> None:
    reader = InMemoryMetricReader()
    ours = TheodoreMetrics(MeterProvider(metric_readers=[reader]))
    with TracerProvider().get_tracer("test").start_as_current_span("chat") as span:
        ours.record("theodore_ai_cost_total", 0.25, provider="openai", model="m", operation="chat", success=True)
        ours.record("theodore_ai_cost_total", 0.5, provider="openai", model="m", operation="chat", success=True)
    ours.record("theodore_ai_cost_total", -1, provider="openai", model="m", operation="chat", success=True)
    metric = collected(reader)["theodore_ai_cost"]
    (point,) = metric.data.data_points
    assert metric.data.is_monotonic and point.value == 0.75
    assert point.attributes == {"provider": "openai", "model": "m", "operation": "chat", "success": "True"}
    assert [e.trace_id for e in point.exemplars] == [span.get_span_context().trace_id]


def test_the_exemplar_filter_of_the_meter_provider_applies() -> None:
    reader = InMemoryMetricReader()
    ours = TheodoreMetrics(MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter()))
    with TracerProvider().get_tracer("test").start_as_current_span("s"):
        ours.record("verification_confidence", 0.5)
    (point,) = collected(reader)["verification_confidence"].data.data_points
    assert point.count == 1 and not point.exemplars


def test_produced_and_sdk_metrics_share_one_scope() -> None:
    reader = InMemoryMetricReader()
    ours = TheodoreMetrics(MeterProvider(metric_readers=[reader]))
    ours.record("verification_confidence", 0.5)
    ours.record("queue_size", 3, queue_name="content")  # an observable instrument of the SDK
    assert scopes(reader) == ["theodore_telemetry"]
    assert {"verification_confidence", "queue_size"} <= set(collected(reader))


def test_without_a_reader_the_sdk_instruments_are_used() -> None:
    instruments = TheodoreMetrics(MeterProvider())._instruments
    assert {"theodore_request_duration_seconds", "theodore_ai_cost_total"} <= set(instruments)
    with_reader = TheodoreMetrics(MeterProvider(metric_readers=[InMemoryMetricReader()]))._instruments
    assert "theodore_request_duration_seconds" not in with_reader
