"""What alert and recording rule templates need beyond the spec: metric names and links.

Rule templates never type a catalogue metric name: they read ``catalogue.<name>.name`` from
here, so renaming a metric in the catalogue without updating the rules fails the render
(the template environment is strict about undefined names).
"""

from __future__ import annotations

from typing import Any

from theodore_catalogue import MetricSpec, catalogue

from .spec import SpecError, observed_services
from .template_filters import Fragment, gotmpl, line, tojson
from .timing import duration_seconds  # Prometheus durations (the spec's pattern is checked)

SPANMETRICS = {
    "calls": "traces_span_metrics_calls_total",
    "duration_bucket": "traces_span_metrics_duration_milliseconds_bucket",
    "duration_sum": "traces_span_metrics_duration_milliseconds_sum",
    "duration_count": "traces_span_metrics_duration_milliseconds_count",
}
"""The collector's spanmetrics connector's series (default namespace ``traces.span.metrics``)
as Prometheus's OTLP receiver names them; they carry ``service_name``, ``span_kind`` and
``status_code`` for every instrumented service, whatever its language or library."""

SPANMETRICS_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
"""The spanmetrics histogram's bucket bounds (the collector template's list, in ms)."""

DASHBOARD_UIDS = {
    "service_overview": "theodore-service-overview",
    "research_kpis": "theodore-research-kpis",
    "ai_cost": "theodore-ai-cost",
    "logs": "theodore-logs",
    "slo": "theodore-slo",
    "alerts": "theodore-alerts",
    "stack_health": "theodore-stack-health",
    "versions": "theodore-versions",
}
"""Grafana dashboard uids that alert annotations link to."""


def latency_bucket(service: str, seconds: float) -> str:
    """The spanmetrics ``le`` label value of an SLO's latency threshold; it must be a bound."""
    millis = seconds * 1000
    if not any(abs(millis - bound) < 1e-9 for bound in SPANMETRICS_BUCKETS_MS):
        raise SpecError("stack.yaml", f"services.{service}.slo.latency_seconds",
                        f"{seconds} is not a spanmetrics bucket bound (seconds: "
                        f"{', '.join(f'{b / 1000:g}' for b in SPANMETRICS_BUCKETS_MS)})")
    return f"{millis:g}"


def slo_services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each running service that declares an SLO, with its latency bucket resolved."""
    return {name: {**svc["slo"], "latency_le": latency_bucket(name, svc["slo"]["latency_seconds"])}
            for name, svc in observed_services(spec).items()
            if svc.get("slo", {}).keys() >= {"availability", "latency_seconds", "latency_target"}}


def by_service(expr: str, extra: str = "") -> Fragment:
    """``expr`` (an instant vector of OTLP series) summed per service.

    Prometheus's OTLP receiver promotes the resource attribute service.name to the label
    ``service_name``; alerts and recording rules carry it as ``service``, the label routing
    and inhibition use. ``extra`` adds grouping labels (", storage_type").
    """
    return line(f'sum by (service{extra}) '
                f'(label_replace({expr}, "service", "$1", "service_name", "(.+)"))')


def rule_context(spec: dict[str, Any]) -> dict[str, Any]:
    """Names rule templates use: catalogue metrics, spanmetrics, dashboards, SLO services."""
    grafana = spec["grafana"]["url"].rstrip("/")
    metrics: dict[str, MetricSpec] = catalogue()
    dashboards = {key: f"{grafana}/d/{uid}" for key, uid in DASHBOARD_UIDS.items()}
    runbook = spec["alerting"]["runbook_base_url"]

    def links(alert: str, dashboard: str, indent: int = 10) -> Fragment:
        """The runbook_url and dashboard_url annotations, indented for an annotations map; both
        serialized, with Go-template syntax from the spec shown literally (Prometheus and
        Alertmanager template annotations)."""
        runbook_url = tojson(gotmpl(f"{runbook}#{alert.lower()}"))
        dashboard_url = tojson(gotmpl(dashboards[dashboard]))
        return Fragment(f"runbook_url: {runbook_url}\n{' ' * indent}dashboard_url: {dashboard_url}")

    return {
        "catalogue": metrics,
        "spanmetrics": SPANMETRICS,
        "dashboard_urls": dashboards,
        "by_service": by_service,
        "rule_links": links,
        "slo_services": slo_services(spec),
        "duration_seconds": duration_seconds,
    }
