"""The metric catalogue: every metric of seed 000 and seed 003, named as users query them in
Prometheus. Shared data, read by both sides and importing nothing but the standard library
(as ``opentelemetry-semantic-conventions`` serves the SDK and the instrumentations alike):

- the app side (``theodore-telemetry``) creates its OpenTelemetry instruments from it;
- the stack tooling (``theodore-observability``) draws dashboards and writes alert rules and
  CLI queries from it. No metric name is typed anywhere else.

``metrics.json``, per metric:

- ``type``: counter | histogram | updowncounter | gauge. Counters are named with ``_total``
  (their Prometheus name); the OpenTelemetry instrument drops it and Prometheus's OTLP
  translation adds it back.
- ``unit``: units in braces are annotations and add no name suffix; ratios and scores have no
  unit (a unit of 1 would add ``_ratio``).
- ``labels``: every attribute the metric is recorded with.
- ``buckets``: a histogram's explicit bucket boundaries. Seed 000's scores are summaries there
  and histograms here, so they aggregate across instances.
- ``exemplars``: true keeps a counter on the SDK's synchronous path so its points carry the
  trace as exemplar (histograms always do); other counters and gauges are summed in the
  process, which costs a tenth as much per call.
- ``dashboard``: where the Grafana generator draws the metric: the dashboard ``uid``, the
  ``row``, the labels its panel groups ``by`` (a subset of ``labels``) and the ``alert`` whose
  runbook the panel links to.

``metric_export_interval_ms`` is how often apps push their metrics (the distro's default
``OTEL_METRIC_EXPORT_INTERVAL``); dashboards size their rate windows from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from typing import Any

__all__ = ["MetricName", "MetricSpec", "catalogue", "catalogued", "metric_export_interval_ms", "names_with"]


@dataclass(frozen=True)
class MetricSpec:
    """One catalogue entry; ``name`` is the Prometheus name users query."""

    name: str
    type: str
    unit: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] | None = field(default=None)
    exemplars: bool = False
    """Keep exemplars (the SDK's synchronous path); histograms always keep them."""
    dashboard: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Placement on a Grafana dashboard: ``uid``, ``row``, ``by`` and optionally ``alert``."""

    @cached_property
    def label_set(self) -> frozenset[str]:
        return frozenset(self.labels)

    @property
    def otel_name(self) -> str:
        """Counters drop ``_total``: Prometheus's OTLP translation appends it."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name


@cache
def _document() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("metrics.json").read_text(encoding="utf-8"))


@cache
def catalogue() -> dict[str, MetricSpec]:
    """``{name: MetricSpec}`` in catalogue order."""
    return {name: MetricSpec(name=name, type=m["type"], unit=m["unit"], help=m["help"],
                             labels=tuple(m["labels"]),
                             buckets=tuple(m["buckets"]) if "buckets" in m else None,
                             exemplars=bool(m.get("exemplars", False)),
                             dashboard=dict(m.get("dashboard", {})))
            for name, m in _document()["metrics"].items()}


def metric_export_interval_ms() -> int:
    return int(_document()["metric_export_interval_ms"])


class MetricName(str):
    """A catalogue key as the code records or queries it, with the type the code expects."""

    type: str


def catalogued(name: str, type: str) -> MetricName:
    """``name``, checked to be a catalogue metric of ``type``: a metric renamed or retyped in
    the catalogue fails the import of the code that uses it, not as a series never recorded
    or a query that answers nothing."""
    spec = catalogue().get(name)
    if spec is None:
        raise LookupError(f"{name}: not in the metric catalogue (theodore_catalogue/metrics.json)")
    if spec.type != type:
        raise LookupError(f"{name}: a {spec.type} in the metric catalogue, used as a {type}")
    checked = MetricName(name)
    checked.type = type
    return checked


def names_with(word: str) -> list[str]:
    """Catalogue names containing ``word`` (or its singular: ``ai_operations`` finds ``ai_operation``)."""
    word = word.replace("-", "_").lower()
    stems = {word, word.removesuffix("s")}
    return [name for name in catalogue() if any(stem and stem in name for stem in stems)]
