"""prometheus_client's default registry as a metric producer of the SDK's metric readers.

Apps that count with ``prometheus_client`` (``Counter``, ``Gauge``, ``Histogram``, ``Summary``,
``Info``) change nothing: at each collection every reader of the SDK's meter provider also
reads ``prometheus_client.REGISTRY`` and exports its families over OTLP with the app's own
metrics, as the OpenTelemetry specification's MetricProducer does (the Python SDK has no
``register_producer`` yet, so the reader's collect callback is wrapped). No port is opened and
nothing is scraped.

Names are chosen so that Prometheus's OTLP translation gives back what prometheus_client
would have exposed: a counter goes out as a monotonic sum named after its family (``jobs``:
Prometheus appends ``_total``), a histogram as a cumulative histogram (``_bucket``/``_sum``/
``_count``, the same ``le`` bounds), a summary as an OTLP summary (``_sum``/``_count`` and any
quantiles), a gauge as a gauge, an info as a gauge ``<name>_info`` of 1. No unit is sent: the
unit is already part of a prometheus_client name. Label names and values pass unchanged.

Exemplars: a counter increment or histogram observation made inside a sampled span, without
an exemplar of its own, gets the span's ``trace_id``/``span_id`` as its exemplar (the labels
prometheus_client documents); those become the OTLP exemplar's trace and span.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

_logger = logging.getLogger(__name__)

SCOPE = InstrumentationScope("prometheus_client")
"""The scope the bridged families are exported under."""

DEFAULT_FAMILY_PREFIXES = ("process_", "python_gc_", "python_info")
"""The families prometheus_client's default registry holds before an app adds its own."""

_PROCESS_START_NS = time.time_ns()


@dataclass(frozen=True)
class SummaryDataPoint:
    """One summary series: count, sum and (custom collectors only) quantiles."""

    attributes: dict[str, str]
    start_time_unix_nano: int
    time_unix_nano: int
    count: int
    sum: float
    quantiles: Sequence[tuple[float, float]] = ()


@dataclass(frozen=True)
class Summary:
    """The OTLP summary type, which the SDK's data model lacks (see ``encode_summaries``)."""

    data_points: Sequence[SummaryDataPoint] = field(default_factory=list)


def _ns(seconds: float | None, default: int) -> int:
    return default if seconds is None else int(float(seconds) * 1e9)


def _exemplars(sample: Any, now: int) -> list[Exemplar]:
    found = sample.exemplar
    if found is None:
        return []
    labels = dict(found.labels)
    try:
        trace_id, span_id = int(labels.pop("trace_id"), 16), int(labels.pop("span_id"), 16)
    except (KeyError, ValueError):
        trace_id = span_id = None
    return [Exemplar(labels, float(found.value), _ns(found.timestamp, now), span_id, trace_id)]


def _series(samples: Iterable[Any], name: str) -> dict[tuple, dict[str, Any]]:
    """Samples grouped by their labels (without ``le``/``quantile``), keyed by sample suffix."""
    grouped: dict[tuple, dict[str, Any]] = {}
    for sample in samples:
        labels = {k: v for k, v in sample.labels.items() if k not in ("le", "quantile")}
        entry = grouped.setdefault(tuple(sorted(labels.items())), {"labels": labels, "buckets": [],
                                                                  "quantiles": []})
        suffix = sample.name[len(name):]
        if suffix == "_bucket":
            entry["buckets"].append(sample)
        elif "quantile" in sample.labels:
            entry["quantiles"].append((float(sample.labels["quantile"]), float(sample.value)))
        else:
            entry[suffix] = sample
    return grouped


def _start(entry: dict[str, Any]) -> int:
    created = entry.get("_created")
    return _ns(created.value if created is not None else None, _PROCESS_START_NS)


def _counter(family: Any, now: int) -> Sum:
    points = [NumberDataPoint(e["labels"], _start(e), now, e["_total"].value, _exemplars(e["_total"], now))
              for e in _series(family.samples, family.name).values() if "_total" in e]
    return Sum(points, AggregationTemporality.CUMULATIVE, is_monotonic=True)


def _gauge(family: Any, now: int, name: str) -> Gauge:
    return Gauge([NumberDataPoint(dict(s.labels), now, now, s.value)
                  for s in family.samples if s.name == name])


def _bounds(buckets: list[Any]) -> tuple[list[float], list[int], list[Exemplar]]:
    ordered = sorted(buckets, key=lambda s: float(s.labels["le"]))
    bounds = [float(s.labels["le"]) for s in ordered if s.labels["le"] != "+Inf"]
    cumulative = [int(s.value) for s in ordered]
    counts = [c - p for c, p in zip(cumulative, [0, *cumulative[:-1]], strict=True)]
    return bounds, counts, [e for s in ordered for e in _exemplars(s, 0)]


def _histogram(family: Any, now: int) -> Histogram:
    points = []
    for entry in _series(family.samples, family.name).values():
        bounds, counts, exemplars = _bounds(entry["buckets"])
        count = int(entry["_count"].value) if "_count" in entry else sum(counts)
        points.append(HistogramDataPoint(entry["labels"], _start(entry), now, count,
                                         entry["_sum"].value if "_sum" in entry else 0.0,
                                         counts, bounds, None, None, exemplars))
    return Histogram(points, AggregationTemporality.CUMULATIVE)


def _summary(family: Any, now: int) -> Summary:
    return Summary([SummaryDataPoint(e["labels"], _start(e), now, int(e["_count"].value),
                                     float(e["_sum"].value),
                                     tuple(sorted(e["quantiles"])))
                    for e in _series(family.samples, family.name).values() if "_count" in e and "_sum" in e])


def bridged_metric(family: Any, now: int) -> Metric | None:
    """One prometheus_client family as an SDK ``Metric`` (None for types OTLP cannot carry)."""
    kind, name, help_text = family.type, family.name, family.documentation
    if kind == "counter":
        data: Any = _counter(family, now)
    elif kind == "histogram":
        data = _histogram(family, now)
    elif kind == "summary":
        data = _summary(family, now)
    elif kind in ("gauge", "unknown", "untyped"):
        data = _gauge(family, now, name)
    elif kind == "info":
        name = f"{name}_info"
        data = _gauge(family, now, name)
    else:  # stateset, gaugehistogram: no OTLP counterpart worth guessing
        return None
    return Metric(name=name, description=help_text, unit="", data=data) if data.data_points else None


class PrometheusClientProducer:
    """Produces the metrics of a prometheus_client registry (default: ``REGISTRY``)."""

    scope = SCOPE

    def __init__(self, registry: Any = None) -> None:
        if registry is None:
            from prometheus_client import REGISTRY  # noqa: PLC0415

            registry = REGISTRY
        self.registry = registry

    def produce(self) -> list[Metric]:
        """Every family, or none while the registry holds only prometheus_client's own process,
        platform and GC collectors (an app that does not count with it exports nothing extra)."""
        families = list(self.registry.collect())
        if all(family.name.startswith(DEFAULT_FAMILY_PREFIXES) for family in families):
            return []
        now, metrics = time.time_ns(), []
        for family in families:
            try:
                metric = bridged_metric(family, now)
            except Exception:  # one odd custom collector must not stop the rest
                _logger.debug("prometheus_client family %s not bridged", family.name, exc_info=True)
                continue
            if metric is not None:
                metrics.append(metric)
        return metrics


def with_produced(data: MetricsData | None, produced: list[Metric], resource: Any,
                  scope: InstrumentationScope = SCOPE) -> MetricsData | None:
    """The SDK's collection with the producer's metrics added under ``scope`` (to the SDK's own
    metrics of a scope of that name, if it has some)."""
    if not produced:
        return data
    if data is None or not data.resource_metrics:
        return MetricsData([ResourceMetrics(resource, [ScopeMetrics(scope, produced, "")], "")])
    first, *rest = data.resource_metrics
    scopes, merged = [], False
    for found in first.scope_metrics:
        if not merged and found.scope.name == scope.name:
            scopes.append(ScopeMetrics(found.scope, [*found.metrics, *produced], found.schema_url))
            merged = True
        else:
            scopes.append(found)
    if not merged:
        scopes.append(ScopeMetrics(scope, produced, ""))
    return MetricsData([ResourceMetrics(first.resource, scopes, first.schema_url), *rest])


class MetricProducer(Protocol):
    """What ``register_producer`` takes: metrics made at each collection, and their scope."""

    scope: InstrumentationScope

    def produce(self) -> list[Metric]: ...


def register_producer(meter_provider: Any, producer: MetricProducer) -> int:
    """Wrap the collect callback of each reader of an SDK ``MeterProvider``; returns how many."""
    config = getattr(meter_provider, "_sdk_config", None)
    readers = list(getattr(meter_provider, "_metric_readers", ()))
    if config is None:
        return 0
    for reader in readers:
        collect = reader._collect
        if collect is None:
            continue

        def both(reader_: Any, timeout_millis: float = 10_000, collect: Callable = collect) -> Any:
            return with_produced(collect(reader_, timeout_millis=timeout_millis), producer.produce(),
                                 config.resource, producer.scope)

        reader._set_collect_callback(both)
    return len(readers)


def _summary_proto(metric: Metric, pb2_metric: Any) -> None:
    from opentelemetry.exporter.otlp.proto.common._internal import _encode_attributes  # noqa: PLC0415

    for point in metric.data.data_points:
        pb2_point = pb2_metric.summary.data_points.add(
            attributes=_encode_attributes(point.attributes), start_time_unix_nano=point.start_time_unix_nano,
            time_unix_nano=point.time_unix_nano, count=point.count, sum=point.sum)
        for quantile, value in point.quantiles:
            pb2_point.quantile_values.add(quantile=quantile, value=value)


def encode_summaries() -> bool:
    """Teach the SDK's OTLP metrics encoder our ``Summary`` (every other type stays its own)."""
    try:
        from opentelemetry.exporter.otlp.proto.common._internal import metrics_encoder  # noqa: PLC0415
    except ImportError:
        return False
    original = metrics_encoder._encode_metric
    if getattr(original, "theodore_summaries", False):
        return True

    @functools.wraps(original)
    def encode(metric: Metric, pb2_metric: Any) -> None:
        if isinstance(metric.data, Summary):
            _summary_proto(metric, pb2_metric)
        else:
            original(metric, pb2_metric)

    encode.theodore_summaries = True  # type: ignore[attr-defined]
    metrics_encoder._encode_metric = encode
    return True


def _span_exemplar() -> dict[str, str] | None:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


def _with_span_exemplar(method: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(method)
    def record(self: Any, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        method(self, amount, exemplar if exemplar is not None else _span_exemplar())

    record.theodore_exemplars = True  # type: ignore[attr-defined]
    return record


def add_span_exemplars() -> bool:
    """``Counter.inc`` and ``Histogram.observe`` default their exemplar to the current span."""
    try:
        from prometheus_client import Counter, Histogram  # noqa: PLC0415
    except ImportError:
        return False
    for cls, name in ((Counter, "inc"), (Histogram, "observe")):
        method = getattr(cls, name)
        if not getattr(method, "theodore_exemplars", False):
            setattr(cls, name, _with_span_exemplar(method))
    return True


def bridge_default_registry(meter_provider: Any) -> bool:
    """Everything above for an app that imports prometheus_client; False when it is absent."""
    try:
        producer = PrometheusClientProducer()
    except ImportError:
        return False
    if not register_producer(meter_provider, producer):
        return False
    encode_summaries()
    add_span_exemplars()
    return True
