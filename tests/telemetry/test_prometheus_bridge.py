"""prometheus_bridge: a prometheus_client registry read by the SDK's metric readers."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    Summary,
)
from theodore_telemetry import prometheus_bridge


def _collect(registry: CollectorRegistry) -> dict:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    assert prometheus_bridge.register_producer(provider, prometheus_bridge.PrometheusClientProducer(registry)) == 1
    provider.get_meter("app").create_counter("sdk_side").add(1)
    data = reader.get_metrics_data()
    scopes = {s.scope.name: s for s in data.resource_metrics[0].scope_metrics}
    assert "app" in scopes  # the SDK's own metrics still come
    provider.shutdown()
    return {m.name: m for m in scopes["prometheus_client"].metrics}


def test_each_family_keeps_its_name_labels_values_and_buckets() -> None:
    registry = CollectorRegistry()
    Counter("jobs", "Jobs.", ["kind"], registry=registry).labels("a").inc(3)
    latency = Histogram("lat_seconds", "Latency.", ["route"], buckets=(0.1, 1), registry=registry)
    latency.labels("/x").observe(0.5)
    latency.labels("/x").observe(5)
    Gauge("depth", "Depth.", registry=registry).set(7)
    Summary("size_bytes", "Size.", registry=registry).observe(10)
    Info("build", "Build.", registry=registry).info({"version": "1"})
    metrics = _collect(registry)

    jobs = metrics["jobs"]
    assert jobs.data.is_monotonic and jobs.unit == ""
    assert [(p.attributes, p.value) for p in jobs.data.data_points] == [({"kind": "a"}, 3.0)]
    (point,) = metrics["lat_seconds"].data.data_points
    assert (point.attributes, point.explicit_bounds, point.bucket_counts, point.count, point.sum) == \
        ({"route": "/x"}, [0.1, 1.0], [0, 1, 1], 2, 5.5)
    assert metrics["depth"].data.data_points[0].value == 7.0
    (summary,) = metrics["size_bytes"].data.data_points
    assert isinstance(metrics["size_bytes"].data, prometheus_bridge.Summary)
    assert (summary.count, summary.sum) == (1, 10.0)
    assert metrics["build_info"].data.data_points[0].attributes == {"version": "1"}


def test_summaries_encode_as_otlp_summaries() -> None:
    registry = CollectorRegistry()
    Summary("size_bytes", "Size.", registry=registry).observe(10)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    prometheus_bridge.register_producer(provider, prometheus_bridge.PrometheusClientProducer(registry))
    assert prometheus_bridge.encode_summaries()
    request = encode_metrics(reader.get_metrics_data())
    (metric,) = [m for s in request.resource_metrics[0].scope_metrics for m in s.metrics]
    assert metric.WhichOneof("data") == "summary"
    assert (metric.summary.data_points[0].count, metric.summary.data_points[0].sum) == (1, 10.0)
    provider.shutdown()


def test_a_counter_incremented_in_a_span_carries_it_as_exemplar() -> None:
    assert prometheus_bridge.add_span_exemplars()
    registry = CollectorRegistry()
    counter = Counter("hits", "Hits.", registry=registry)
    latency = Histogram("lat_seconds", "Latency.", buckets=(1,), registry=registry)
    counter.inc()  # outside a span: no exemplar
    assert _collect(registry)["hits"].data.data_points[0].exemplars == []
    with TracerProvider().get_tracer("t").start_as_current_span("work") as span:
        counter.inc()
        latency.observe(0.5)
    metrics = _collect(registry)
    context = span.get_span_context()
    for name in ("hits", "lat_seconds"):
        (exemplar,) = metrics[name].data.data_points[0].exemplars
        assert (exemplar.trace_id, exemplar.span_id) == (context.trace_id, context.span_id), name
        assert exemplar.filtered_attributes == {}
    counter.inc(exemplar={"user": "u1"})  # the app's own exemplar wins
    (exemplar,) = _collect(registry)["hits"].data.data_points[0].exemplars
    assert exemplar.filtered_attributes == {"user": "u1"} and exemplar.trace_id is None


def test_a_registry_with_only_the_default_collectors_produces_nothing() -> None:
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    producer = prometheus_bridge.PrometheusClientProducer(registry)
    assert producer.produce() == []
    Gauge("depth", "Depth.", registry=registry).set(1)
    assert {"depth", "process_cpu_seconds"} <= {m.name for m in producer.produce()}
