"""Instruments from the metric catalogue, and seed 003's recording helpers.

Export path: OTLP only. The SDK pushes to the collector, which pushes to Prometheus's OTLP
receiver: one pipeline for all three signals, exemplars that point at the trace, no scrape
port to open in each app, and nothing counted twice (there is no /metrics endpoint too).

Cost: a measurement through the SDK's synchronous instruments costs 7-15 µs on a 2-core
machine (a ``Measurement`` built, attributes cleaned and hashed, view storage looked up, an
exemplar offered). So no catalogue metric takes that path when the meter provider is the SDK's
with a reader: counters without exemplars, up-down counters and gauges are summed in the
process (a dict update under a lock, about 1 µs) and reported by an observable instrument at
each export; histograms and the counters the catalogue marks ``exemplars: true`` (their
exemplars link a latency or a cost to its trace) are aggregated in the process too, exemplars
included, and handed to the readers by a metric producer (``produced_metrics``, about 2 µs).
The same series and values reach the collector, collected when the SDK collects.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from typing import Any

from opentelemetry import metrics
from theodore_catalogue import MetricSpec, catalogue, catalogued

from .produced_metrics import produced_metrics


def summed_in_process(spec: MetricSpec) -> bool:
    """Recorded through ``InProcessSums`` rather than a synchronous SDK instrument."""
    return spec.type != "histogram" and not spec.exemplars


# The metrics this module and the GenAI span processor record.
REQUESTS = catalogued("theodore_requests_total", "counter")
REQUEST_DURATION = catalogued("theodore_request_duration_seconds", "histogram")
ERRORS = catalogued("theodore_errors_total", "counter")
ACTIVE_OPERATIONS = catalogued("theodore_active_operations", "updowncounter")
OPERATION_DURATION = catalogued("theodore_operation_duration_seconds", "histogram")
AI_TOKENS = catalogued("theodore_ai_tokens_total", "counter")
AI_DURATION = catalogued("theodore_ai_operation_duration_seconds", "histogram")
AI_COST = catalogued("theodore_ai_cost_total", "counter")
COMPANIES_RESEARCHED = catalogued("theodore_companies_researched_total", "counter")
RESEARCH_SUCCESS_RATE = catalogued("theodore_research_success_rate", "gauge")
STORAGE_OPERATIONS = catalogued("theodore_storage_operations_total", "counter")
STORAGE_DURATION = catalogued("theodore_storage_operation_duration_seconds", "histogram")
SCRAPING_PAGES = catalogued("theodore_scraping_pages_total", "counter")


_logger = logging.getLogger(__name__)


class InProcessSums:
    """Running totals (counters, up-down counters) or last values (gauges) per attribute set,
    observed by the SDK at each collection."""

    def __init__(self, spec: MetricSpec) -> None:
        self._spec = spec
        self._last_value = spec.type == "gauge"
        self._monotonic = spec.type == "counter"
        self._values: dict[tuple[tuple[str, str], ...], float] = {}
        self._lock = threading.Lock()
        _LIVE_SUMS.add(self)

    def reset_lock(self) -> None:
        """A fork copies the lock in whatever state another thread left it."""
        self._lock = threading.Lock()

    def add(self, attributes: tuple[tuple[str, str], ...], value: float) -> None:
        if self._monotonic and value < 0:
            _logger.warning("%s: a counter only goes up; dropped %s", self._spec.name, value)
            return
        with self._lock:
            if self._last_value:
                self._values[attributes] = value
            else:
                self._values[attributes] = self._values.get(attributes, 0) + value

    def observe(self, options: metrics.CallbackOptions) -> list[metrics.Observation]:
        with self._lock:
            values = list(self._values.items())
        return [metrics.Observation(value, dict(attributes)) for attributes, value in values]


_LIVE_SUMS: weakref.WeakSet[InProcessSums] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    for sums in list(_LIVE_SUMS):
        sums.reset_lock()


os.register_at_fork(after_in_child=_reset_locks_after_fork)


_METER_METHODS = {
    "counter": ("create_counter", "create_observable_counter"),
    "updowncounter": ("create_up_down_counter", "create_observable_up_down_counter"),
    "gauge": ("create_gauge", "create_observable_gauge"),
    "histogram": ("create_histogram", None),
}
"""Per catalogue type: the Meter method of the SDK's synchronous path, and of the observable
instrument that reports ``InProcessSums``."""


def _create(meter: metrics.Meter, spec: MetricSpec, sums: InProcessSums | None) -> Any:
    methods = _METER_METHODS.get(spec.type)
    if methods is None:
        raise ValueError(f"catalogue: {spec.name}: unknown type {spec.type!r}")
    kwargs: dict[str, Any] = {"unit": spec.unit, "description": spec.help}
    if sums is not None:
        return getattr(meter, methods[1])(spec.otel_name, callbacks=[sums.observe], **kwargs)
    if spec.buckets is not None:
        kwargs["explicit_bucket_boundaries_advisory"] = spec.buckets
    return getattr(meter, methods[0])(spec.otel_name, **kwargs)


class TheodoreMetrics:
    """Every catalogue metric as an instrument, with label names checked against it."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter("theodore_telemetry", meter_provider=meter_provider)
        self._specs = catalogue()
        self._sums = {name: InProcessSums(spec) for name, spec in self._specs.items()
                      if summed_in_process(spec)}
        produced = [spec for name, spec in self._specs.items()
                    if name not in self._sums and spec.type in ("histogram", "counter")]
        self._produced = produced_metrics(meter_provider or metrics.get_meter_provider(), produced)
        self._instruments = {name: _create(meter, spec, self._sums.get(name))
                             for name, spec in self._specs.items() if name not in self._produced}
        self._research_outcomes: dict[str, list[int]] = {}

    def record(self, name: str, value: float, **labels: Any) -> None:
        """Add to a counter, record into a histogram or set a gauge, by catalogue name."""
        spec = self._specs.get(name)
        if spec is None:
            raise LookupError(f"{name}: not in the metric catalogue (theodore_catalogue/metrics.json)")
        if not labels.keys() <= spec.label_set:
            unknown = set(labels) - spec.label_set
            raise ValueError(f"{name}: labels {sorted(unknown)} are not in the catalogue "
                             f"(allowed: {', '.join(spec.labels) or 'none'})")
        sums = self._sums.get(name)
        if sums is not None:
            sums.add(tuple([(k, str(labels[k])) for k in spec.labels if labels.get(k) is not None]), value)
            return
        produced = self._produced.get(name)
        if produced is not None:
            produced.record(tuple([None if labels.get(k) is None else str(labels[k]) for k in spec.labels]),
                            value)
            return
        instrument = self._instruments[name]
        attributes = {k: str(v) for k, v in labels.items() if v is not None}
        if spec.type in ("counter", "updowncounter"):
            instrument.add(value, attributes)
        elif spec.type == "histogram":
            instrument.record(value, attributes)
        else:
            instrument.set(value, attributes)

    def record_request(self, endpoint: str, method: str, status_code: int, duration: float) -> None:
        self.record(REQUESTS, 1, endpoint=endpoint, method=method, status_code=status_code)
        self.record(REQUEST_DURATION, duration, endpoint=endpoint, method=method)
        if status_code >= 400:
            self.record(ERRORS, 1, error_type="http_error", endpoint=endpoint,
                        status_code=status_code)

    def record_ai_operation(self, provider: str, model: str, operation: str, tokens_used: int,
                            duration: float, cost: float, success: bool,
                            token_type: str = "total") -> None:
        labels = {"provider": provider, "model": model, "operation": operation, "success": success}
        self.record(AI_TOKENS, tokens_used, token_type=token_type, **labels)
        self.record(AI_DURATION, duration, **labels)
        self.record(AI_COST, cost, **labels)
        if not success:
            self.record(ERRORS, 1, error_type="ai_operation_failure",
                        provider=provider, model=model, operation=operation)

    def record_company_research(self, company_name: str, research_type: str, success: bool,
                                duration: float, pages_scraped: int = 0) -> None:
        """``company_name`` is not a label (unbounded); it belongs on the span and in logs."""
        self.record(COMPANIES_RESEARCHED, 1, research_type=research_type,
                    success=success)
        self.record(OPERATION_DURATION, duration, operation="company_research")
        if pages_scraped:
            self.record(SCRAPING_PAGES, pages_scraped, research_type=research_type)
        outcomes = self._research_outcomes.setdefault(research_type, [0, 0])
        outcomes[0] += int(success)
        outcomes[1] += 1
        self.record(RESEARCH_SUCCESS_RATE, outcomes[0] / outcomes[1],
                    research_type=research_type)

    def record_storage_operation(self, storage_type: str, operation: str, success: bool,
                                 duration: float, data_size_bytes: int | None = None) -> None:
        labels = {"storage_type": storage_type, "operation": operation, "success": success}
        self.record(STORAGE_OPERATIONS, 1, **labels)
        self.record(STORAGE_DURATION, duration, **labels)
        if not success:
            self.record(ERRORS, 1, error_type="storage_failure",
                        storage_type=storage_type, operation=operation)

    @contextmanager
    def track_operation(self, operation_name: str) -> Iterator[None]:
        """Count the operation as active while it runs; record its duration and failures."""
        self.record(ACTIVE_OPERATIONS, 1, operation=operation_name)
        start = time.perf_counter()
        try:
            yield
        except Exception:
            self.record(ERRORS, 1, error_type="operation_failure",
                        operation=operation_name)
            raise
        finally:
            self.record(ACTIVE_OPERATIONS, -1, operation=operation_name)
            self.record(OPERATION_DURATION, time.perf_counter() - start,
                        operation=operation_name)

    @asynccontextmanager
    async def track_operation_async(self, operation_name: str) -> Any:
        with self.track_operation(operation_name):
            yield


_FIRST_USE = threading.Lock()


@cache
def _process_metrics() -> TheodoreMetrics:
    return TheodoreMetrics()


def get_metrics() -> TheodoreMetrics:
    """The process-wide instruments, on the meter provider the configurator installed.

    Created once under a lock: two request threads racing on first use would build two sets,
    and the SDK keeps the first observable instrument of a name (and its callback), so the
    in-process sums of the set ``cache`` kept would never be reported."""
    with _FIRST_USE:
        return _process_metrics()
