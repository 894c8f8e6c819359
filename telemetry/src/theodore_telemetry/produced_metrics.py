"""Catalogue histograms and exemplar counters aggregated in the process, handed to the SDK's
metric readers at each collection.

A measurement through the SDK's synchronous instruments (a ``Measurement`` built and its
attributes cleaned, the view storage looked up, the attributes hashed, the bucket found, the
exemplar reservoir offered the measurement) costs the request 7 to 15 µs. Here a series is a
dict entry keyed by the label values in catalogue order: a record finds its bucket with
``bisect`` and adds to it under a lock, about 2 µs. At each collection a metric producer (the
mechanism ``prometheus_bridge`` uses: the reader's collect callback is wrapped) turns every
series into what the SDK would have sent: a cumulative histogram with the catalogue's bucket
bounds, count, sum, min and max, or a cumulative monotonic sum; exemplars are the last
measurement made inside a sampled span per bucket (what the SDK's
``AlignedHistogramBucketExemplarReservoir`` keeps) or per counter series, under the meter
provider's exemplar filter (``OTEL_METRICS_EXEMPLAR_FILTER``), and start over after each
collection.

This path is taken only when the meter provider is the SDK's with at least one reader;
otherwise (a proxy provider, no reader) the histograms are the SDK's own instruments. Views
configured on the meter provider do not apply to these series, and they are always cumulative.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, AlwaysOnExemplarFilter, Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from theodore_catalogue import MetricSpec

from .prometheus_bridge import register_producer

_logger = logging.getLogger(__name__)

SCOPE = InstrumentationScope("theodore_telemetry")
"""The scope of the catalogue's instruments (``TheodoreMetrics``'s meter)."""


_Exemplar = tuple[float, int, int | None, int | None]
"""value, time (ns), span id, trace id."""


class _Series:
    __slots__ = ("count", "counts", "exemplars", "max", "min", "start", "sum")

    def __init__(self, buckets: int) -> None:
        self.start = time.time_ns()
        self.count, self.sum, self.min, self.max = 0, 0.0, float("inf"), float("-inf")
        self.counts = [0] * buckets
        self.exemplars: list[_Exemplar | None] = [None] * buckets


def _exemplar_objects(exemplars: list[_Exemplar | None]) -> list[Exemplar]:
    return [Exemplar({}, *found) for found in exemplars if found is not None]


class ProducedMetric:
    """One catalogue histogram's or counter's series, keyed by their label values in catalogue
    order (None: the label was not given)."""

    def __init__(self, spec: MetricSpec, exemplars: str) -> None:
        self.spec = spec
        self.histogram = spec.type == "histogram"
        self.bounds: Sequence[float] = tuple(spec.buckets or ()) if self.histogram else ()
        self._exemplars = exemplars
        self._series: dict[tuple[str | None, ...], _Series] = {}
        self._lock = threading.Lock()
        _LIVE.add(self)

    def reset_lock(self) -> None:
        """A fork copies the lock in whatever state another thread left it."""
        self._lock = threading.Lock()

    def _exemplar(self, value: float) -> _Exemplar | None:
        if self._exemplars == "off":
            return None
        context = trace.get_current_span().get_span_context()
        if context.trace_flags.sampled or self._exemplars == "on":
            return (value, time.time_ns(), context.span_id or None, context.trace_id or None)
        return None

    def record(self, key: tuple[str | None, ...], value: float) -> None:
        if not self.histogram and value < 0:
            _logger.warning("%s: a counter only goes up; dropped %s", self.spec.name, value)
            return
        # Bounds are upper-inclusive, as the SDK's: the first bound >= value.
        index = bisect.bisect_left(self.bounds, value) if self.histogram else 0
        exemplar = self._exemplar(value)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(len(self.bounds) + 1)
            series.count += 1
            series.sum += value
            series.min = min(series.min, value)
            series.max = max(series.max, value)
            series.counts[index] += 1
            if exemplar is not None:
                series.exemplars[index] = exemplar

    def metric(self, now: int) -> Metric | None:
        """Every series so far, cumulative; the exemplars start over."""
        with self._lock:
            taken = [(key, s.start, s.count, s.sum, list(s.counts), s.min, s.max, s.exemplars)
                     for key, s in self._series.items()]
            for series in self._series.values():
                series.exemplars = [None] * len(series.exemplars)
        if not taken:
            return None
        labels = self.spec.labels

        def attributes(key: tuple[str | None, ...]) -> dict[str, str]:
            return {k: v for k, v in zip(labels, key, strict=True) if v is not None}

        if not self.histogram:
            data: Any = Sum([NumberDataPoint(attributes(key), start, now, total, _exemplar_objects(exemplars))
                             for key, start, _, total, _, _, _, exemplars in taken],
                            AggregationTemporality.CUMULATIVE, is_monotonic=True)
        else:
            data = Histogram([HistogramDataPoint(attributes(key), start, now, count, total, counts,
                                                 self.bounds, low, high, _exemplar_objects(exemplars))
                              for key, start, count, total, counts, low, high, exemplars in taken],
                             AggregationTemporality.CUMULATIVE)
        return Metric(self.spec.otel_name, self.spec.help, self.spec.unit, data)


_LIVE: weakref.WeakSet[ProducedMetric] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    for histogram in list(_LIVE):
        histogram.reset_lock()


os.register_at_fork(after_in_child=_reset_locks_after_fork)


class CatalogueProducer:
    """The metric producer reporting a set of ``ProducedMetric`` at each collection."""

    scope = SCOPE

    def __init__(self, produced: list[ProducedMetric]) -> None:
        self.produced = produced

    def produce(self) -> list[Metric]:
        now = time.time_ns()
        return [m for m in (p.metric(now) for p in self.produced) if m is not None]


def _exemplar_mode(meter_provider: Any) -> str:
    found = getattr(getattr(meter_provider, "_sdk_config", None), "exemplar_filter", None)
    if isinstance(found, AlwaysOffExemplarFilter):
        return "off"
    return "on" if isinstance(found, AlwaysOnExemplarFilter) else "trace_based"


def produced_metrics(meter_provider: Any, specs: list[MetricSpec]) -> dict[str, ProducedMetric]:
    """``specs`` (histograms, counters) as ``ProducedMetric`` reported to every reader of
    ``meter_provider``; empty when it is not an SDK meter provider with a reader (the SDK's
    instruments are used then)."""
    if not specs or not getattr(meter_provider, "_metric_readers", None):
        return {}
    mode = _exemplar_mode(meter_provider)
    produced = {spec.name: ProducedMetric(spec, mode) for spec in specs}
    if not register_producer(meter_provider, CatalogueProducer(list(produced.values()))):
        return {}
    return produced
