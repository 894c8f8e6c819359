"""Selectors, variables and the panels drawn from the metric catalogue.

Theodore's metric names live only in the catalogue: panels for them are generated from its
entries (type, unit, help, the ``dashboard`` placement), and the few special queries (cost
against budget, AI failures) find their metric by its catalogue unit, never by name.
"""

from __future__ import annotations

from typing import Any

from theodore_catalogue import catalogue

from ..rule_context import SPANMETRICS
from .panels import LOGS, Panel, datasource, link, prom, stat, timeseries

APP = 'deployment_environment="$environment", service_name=~"$service"'
"""Label matchers of every app-side series (OTLP resource attributes promoted by Prometheus)."""

LOG_FILTER = 'deployment.environment:="$environment" service.name:in($service)'
"""LogsQL filter of every app's lines: resource attributes are fields of VictoriaLogs' OTLP
ingestion (and stream fields). The plugin fills ``in($service)`` with the quoted selection, or
``in(*)`` (any value) for All."""

SPANMETRICS_CALLS = SPANMETRICS["calls"]
SPANMETRICS_DURATION_BUCKET = SPANMETRICS["duration_bucket"]
"""The collector's spanmetrics connector output, named once for rules and dashboards."""

UNITS = {"s": "s", "By": "bytes", "{USD}": "currencyUSD", "": "none"}


def environment_variable(default: str) -> dict[str, Any]:
    return {"name": "environment", "label": "Environment", "type": "query",
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "query": {"query": f"label_values({SPANMETRICS_CALLS}, deployment_environment)",
                      "refId": "environment"},
            "definition": f"label_values({SPANMETRICS_CALLS}, deployment_environment)",
            "current": {"text": default, "value": default}, "refresh": 2, "sort": 1,
            "multi": False, "includeAll": False}


def service_variable() -> dict[str, Any]:
    query = f'label_values({SPANMETRICS_CALLS}{{deployment_environment="$environment"}}, service_name)'
    return {"name": "service", "label": "Service", "type": "query",
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "query": {"query": query, "refId": "service"}, "definition": query,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "refresh": 2, "sort": 1,
            "multi": True, "includeAll": True, "allValue": ".+"}


LOG_VALUES_LIMIT = 100
"""Values a logs variable offers at most (the plugin's ``limit`` of /select/logsql/field_values)."""


def _log_field_variable(name: str, label: str, field: str, where: str) -> dict[str, Any]:
    """A variable of a log field's values, in the plugin's variable query model
    (src/types.ts ``VariableQuery``: /select/logsql/field_values of the lines ``where`` selects)."""
    return {"name": name, "label": label, "type": "query", "datasource": datasource(LOGS),
            "query": {"refId": name, "type": "fieldValue", "field": field, "query": where,
                      "limit": LOG_VALUES_LIMIT},
            "refresh": 2, "sort": 1}


def log_environment_variable(default: str) -> dict[str, Any]:
    # Only lines that name one: the stack's own records (e.g. Alertmanager's events) have none.
    return {**_log_field_variable("environment", "Environment", "deployment.environment",
                                  "deployment.environment:*"),
            "current": {"text": default, "value": default}, "multi": False, "includeAll": False}


def log_service_variable() -> dict[str, Any]:
    """Services with lines in the environment; All is ``*``, which the plugin turns into ``in(*)``."""
    where = 'deployment.environment:="$environment"'
    return {**_log_field_variable("service", "Service", "service.name", where),
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "multi": True, "includeAll": True, "allValue": "*"}


def correlation_variable() -> dict[str, Any]:
    """Free text: paste an X-Correlation-ID (a regex; the default matches every line that has one).

    Used as ``correlation_id:~"$correlation_id"``: the plugin puts the text in parentheses there.
    """
    return {"name": "correlation_id", "label": "Correlation ID", "type": "textbox",
            "query": ".+", "current": {"text": ".+", "value": ".+"}}


def metric_with_unit(unit: str) -> str:
    """The one catalogue metric measured in ``unit`` (e.g. ``{USD}``)."""
    (name,) = [name for name, spec in catalogue().items() if spec.unit == unit]
    return name


def placement(name: str) -> dict[str, Any]:
    return catalogue()[name].dashboard


def on_dashboard(uid: str) -> dict[str, list[str]]:
    """Row title → the catalogue metrics placed on dashboard ``uid``, in catalogue order."""
    rows: dict[str, list[str]] = {}
    for name in catalogue():
        where = placement(name)
        if where["uid"] == uid:
            rows.setdefault(where["row"], []).append(name)
    return rows


def rate(name: str, by: list[str], matchers: str = APP, window: str = "$__rate_interval") -> str:
    return f"sum by ({', '.join(by)}) (rate({name}{{{matchers}}}[{window}]))"


def or_zero(expr: str, base: str) -> str:
    """``expr``, or 0 for every series of ``base`` where ``expr`` has none (no false "No data")."""
    return f"({expr}) or ({base} * 0)"


def subject(name: str) -> str:
    """What a counter counts, from its help text: "Total number of X" → "X"."""
    text = catalogue()[name].help.removeprefix("Total number of ").removeprefix("Total ")
    return text[0].upper() + text[1:]


def _legend(by: list[str]) -> str:
    return " ".join(f"{{{{{label}}}}}" for label in by) or "__auto"


def runbook(spec: dict[str, Any], alert: str) -> dict[str, Any]:
    """A panel link to the runbook section of the alert that guards what the panel shows."""
    return link(f"Runbook: {alert}", f"{spec['alerting']['runbook_base_url']}#{alert.lower()}")


def catalogue_panel(name: str, spec: dict[str, Any]) -> Panel:
    """The panel a catalogue metric gets, by its type (``spec``: the stack spec, for links)."""
    panel = _catalogue_panel(name)
    if alert := placement(name).get("alert"):
        panel.links.append(runbook(spec, alert))
    return panel


def _catalogue_panel(name: str) -> Panel:
    spec, where = catalogue()[name], placement(name)
    by, unit = list(where["by"]), UNITS.get(spec.unit, "short")
    title = spec.help
    if spec.type == "counter":
        expr = rate(name, by)
        if where.get("absent_is_zero"):  # a counter with no series until something happens: 0, not "No data"
            expr = f"{expr} or on() vector(0)"
        return timeseries(f"{subject(name)} per second", prom(expr, _legend(by)),
                          unit="currencyUSD" if spec.unit == "{USD}" else "short",
                          description=f"rate of {name} by {', '.join(by) or 'nothing'}")
    if spec.type == "histogram":
        quantiles = (0.5, 0.9) if spec.unit == "" else (0.5, 0.95, 0.99)
        targets = [prom(f"histogram_quantile({q}, {rate(name + '_bucket', ['le', *by])})",
                        f"p{round(q * 100)} {_legend(by)}".strip(), exemplar=True)
                   for q in quantiles]
        return timeseries(title, *targets, unit=unit,
                          description=f"quantiles of {name}; dots are exemplars linking to traces")
    expr = f"sum by ({', '.join(by)}) ({name}{{{APP}}})" if by else f"sum({name}{{{APP}}})"
    return timeseries(title, prom(expr, _legend(by)), unit=unit, description=f"{name} ({spec.type})")


def total_stat(name: str) -> Panel:
    """A counter's increase over the dashboard's time range."""
    return stat(subject(name),
                prom(f"sum(increase({name}{{{APP}}}[$__range]))", instant=True),
                description=f"increase of {name} over the time range")
