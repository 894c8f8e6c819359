"""The seven Theodore dashboards, each a function of the spec (one environment's data)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from theodore_catalogue import catalogue

from .panels import (
    Board,
    Panel,
    alerts_annotation,
    bargauge,
    jaeger_search,
    link,
    logs,
    logsql,
    prom,
    stat,
    table,
    timeseries,
    traces,
)
from .queries import (
    APP,
    LOG_FILTER,
    SPANMETRICS_CALLS,
    SPANMETRICS_DURATION_BUCKET,
    catalogue_panel,
    correlation_variable,
    environment_variable,
    log_environment_variable,
    log_service_variable,
    metric_with_unit,
    on_dashboard,
    or_zero,
    rate,
    runbook,
    service_variable,
    total_stat,
)

SERVER = f'{APP}, span_kind="SPAN_KIND_SERVER"'
SERVER_ERRORS = f'{SERVER}, status_code="STATUS_CODE_ERROR"'
ERROR_LEVELS = 'severity_text:~"(?i)^(error|critical|fatal)$"'
"""LogsQL: lines of the OTLP severities ERROR, CRITICAL and FATAL (any case)."""
COMPONENT = 'format if (component:"") "<scope.name>" as component'
"""A seed logger's component, else the OTLP logger (scope) name: as vmalert's log alerts group."""
UNCATEGORISED = 'format if (category:"") "uncategorised" as category'
SLO_WINDOWS = ("5m", "1h", "6h", "1d", "3d")
"""Burn-rate windows drawn (the recording rules also have 30m and 2h)."""
BUDGET_WINDOW = "3d"
"""The longest recorded window: error budget remaining is judged over it."""


def traces_link(service_expr: str) -> dict[str, Any]:
    """A data link opening Jaeger's trace search for a service in Explore, same time range."""
    pane = {"traces": {"datasource": "jaeger", "queries": [
        {"refId": "A", "datasource": {"type": "jaeger", "uid": "jaeger"}, "queryType": "search",
         "service": service_expr}], "range": {"from": "${__from}", "to": "${__to}"}}}
    panes = quote(json.dumps(pane, separators=(",", ":")), safe="${}_.")
    return {"title": f"Traces of {service_expr} in Jaeger",
            "url": f"/explore?schemaVersion=1&panes={panes}"}


def with_trace_links(panel: Panel) -> Panel:
    panel.field_config["links"] = [traces_link("${__field.labels.service_name}")]
    return panel


def anomaly_band(title: str, signal: str, unit: str, alert: str, spec: dict[str, Any],
                 width: int = 8) -> Panel:
    """A signal's 5m value inside the band its anomaly rule records (baseline ± spread)."""
    sel = '{service=~"$service"}'
    return timeseries(title, prom(f"{signal}{sel}", "{{service}}"),
                      prom(f"{signal}_band_upper{sel}", "upper band {{service}}"),
                      prom(f"{signal}_band_lower{sel}", "lower band {{service}}"),
                      unit=unit, width=width, links=[runbook(spec, alert)],
                      description=f"{signal} against the band of the {alert} rule")


def _catalogue_rows(board: Board, rows: dict[str, list[str]], spec: dict[str, Any]) -> None:
    for row, names in rows.items():
        board.row(row).add(*(catalogue_panel(name, spec) for name in names))


def service_overview(spec: dict[str, Any]) -> Board:
    board = Board("theodore-service-overview", "Theodore / Service overview",
                  "RED per service from span metrics (with exemplars), top endpoints, errors.",
                  ["services"], [environment_variable(spec["environment"]), service_variable()],
                  annotations=[alerts_annotation('alertname!="Watchdog"')])
    calls, duration = SPANMETRICS_CALLS, SPANMETRICS_DURATION_BUCKET
    requests = rate(calls, ["service_name"], SERVER)
    error_ratio = f"{or_zero(rate(calls, ['service_name'], SERVER_ERRORS), requests)} / {requests}"
    high_errors = [runbook(spec, "HighErrorRate")]
    board.row("RED from spans").add(
        stat("Requests per second", prom(f"sum(rate({calls}{{{SERVER}}}[$__rate_interval]))", instant=True),
             unit="reqps", width=8),
        stat("Error ratio", prom(f"sum({error_ratio})", instant=True), unit="percentunit", width=8,
             thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")], links=high_errors),
        stat("p95 latency",
             prom(f"histogram_quantile(0.95, {rate(duration, ['le'], SERVER)})", instant=True),
             unit="ms", width=8),
        with_trace_links(timeseries("Requests per second by service",
                                    prom(rate(calls, ["service_name"], SERVER), "{{service_name}}"),
                                    unit="reqps", width=8)),
        with_trace_links(timeseries("Error ratio by service", prom(error_ratio, "{{service_name}}"),
                                    unit="percentunit", width=8, links=high_errors)),
        with_trace_links(timeseries(
            "Latency by service (dots: exemplars → trace)",
            *(prom(f"histogram_quantile({q}, {rate(duration, ['le', 'service_name'], SERVER)})",
                   f"p{round(q * 100)} {{{{service_name}}}}", exemplar=True) for q in (0.5, 0.95)),
            unit="ms", width=8)),
    )
    board.row("Anomaly bands (baseline ± max(3 standard deviations over a day, 10 %))").add(
        anomaly_band("Request rate", "service:request_rate:rate5m", "reqps", "RequestRateAnomaly", spec),
        anomaly_band("Mean latency", "service:request_duration_seconds:mean5m", "s", "LatencyAnomaly", spec),
        anomaly_band("Error ratio", "service:request_errors:ratio_rate5m", "percentunit", "ErrorRatioAnomaly",
                     spec),
    )
    board.row("Endpoints").add(
        bargauge("Top endpoints by traffic", prom(
            f"topk(10, {rate(calls, ['service_name', 'span_name'], SERVER, '$__range')})",
            "{{service_name}} {{span_name}}", instant=True), unit="reqps", width=8),
        bargauge("Slowest endpoints (p95)", prom(
            f"topk(10, histogram_quantile(0.95, "
            f"{rate(duration, ['le', 'service_name', 'span_name'], SERVER, '$__range')}))",
            "{{service_name}} {{span_name}}", instant=True), unit="ms", width=8),
        bargauge("Errors by endpoint", prom(
            or_zero(f"sum by (service_name, span_name) (increase({calls}{{{SERVER_ERRORS}}}[$__range]))",
                    f"sum by (service_name, span_name) (increase({calls}{{{SERVER}}}[$__range]))"),
            "{{service_name}} {{span_name}}", instant=True), width=8, links=high_errors),
    )
    board.row("Traces").add(
        traces("Error traces of $service", jaeger_search("$service", "error=true"), width=12,
               repeat="service", description="Jaeger trace search; click a trace id to open it"))
    _catalogue_rows(board, on_dashboard(board.uid), spec)
    return board


def research_kpis(spec: dict[str, Any]) -> Board:
    board = Board("theodore-research-kpis", "Theodore / Research and business KPIs",
                  "Seed metrics: research, scraping, similarity, events, messages, images, scores.",
                  ["business"], [environment_variable(spec["environment"]), service_variable()])
    rows = on_dashboard(board.uid)
    counters = [name for names in rows.values() for name in names
                if catalogue()[name].type == "counter"]
    board.row("Totals over the time range").add(*(total_stat(name) for name in counters))
    _catalogue_rows(board, rows, spec)
    return board


def ai_cost(spec: dict[str, Any]) -> Board:
    board = Board("theodore-ai-cost", "Theodore / AI operations and cost",
                  "Tokens and USD by provider, model and operation; cost against budget; failures.",
                  ["business", "ai"], [environment_variable(spec["environment"]), service_variable()])
    cost, errors = metric_with_unit("{USD}"), metric_with_unit("{error}")
    (duration,) = [name for names in on_dashboard(board.uid).values() for name in names
                   if catalogue()[name].type == "histogram"]
    budgets, by = spec["ai"]["budgets"], ["provider", "model", "operation"]
    hour, day = f"sum(increase({cost}{{{APP}}}[1h]))", f"sum(increase({cost}{{{APP}}}[1d]))"
    over_budget = [runbook(spec, "AICostThresholdExceeded")]
    board.row("Cost against budget").add(
        stat("Spend, last hour", prom(hour, instant=True), unit="currencyUSD", width=6,
             thresholds=[(None, "green"), (0.8 * budgets["hourly_usd"], "orange"),
                         (budgets["hourly_usd"], "red")], links=over_budget),
        stat("Spend, last 24 h", prom(day, instant=True), unit="currencyUSD", width=6,
             thresholds=[(None, "green"), (0.8 * budgets["daily_usd"], "orange"),
                         (budgets["daily_usd"], "red")], links=over_budget),
        stat("Hourly budget used", prom(f"{hour} / {budgets['hourly_usd']}", instant=True),
             unit="percentunit", width=6, thresholds=[(None, "green"), (0.8, "orange"), (1, "red")]),
        stat("Daily budget used", prom(f"{day} / {budgets['daily_usd']}", instant=True),
             unit="percentunit", width=6, thresholds=[(None, "green"), (0.8, "orange"), (1, "red")]),
        timeseries("Spend over the last hour vs hourly budget",
                   prom(hour, "spend, trailing hour"),
                   prom(f"vector({budgets['hourly_usd']})", "hourly budget"),
                   unit="currencyUSD", width=12, links=over_budget),
        anomaly_band("Spend per second against its band", "service:ai_cost_usd:rate5m", "currencyUSD",
                     "AICostAnomaly", spec, width=12),
    )
    failures = rate(errors, by, f'{APP}, error_type="ai_operation_failure"')
    calls = rate(f"{duration}_count", by)
    spikes = [runbook(spec, "AIOperationFailureSpike")]
    board.row("Failures").add(
        timeseries("AI failures per second",
                   prom(or_zero(failures, calls), "{{provider}} {{model}} {{operation}}"), links=spikes),
        timeseries("AI failure ratio", prom(f"{or_zero(failures, calls)} / {calls}",
                                            "{{provider}} {{model}} {{operation}}"),
                   unit="percentunit", links=spikes),
    )
    _catalogue_rows(board, on_dashboard(board.uid), spec)
    return board


def logs_board(spec: dict[str, Any]) -> Board:
    board = Board("theodore-logs", "Theodore / Logs",
                  "Log volume by level, category and component; error logs; one correlation ID.",
                  ["services", "logs"],
                  [log_environment_variable(spec["environment"]), log_service_variable(),
                   correlation_variable()])

    def volume(by: str, legend: str, pipeline: str = "") -> dict[str, Any]:
        """Lines per step of the time range, one series per value of ``by``."""
        return logsql(f"{LOG_FILTER}{pipeline} | stats by ({by}) count() as lines", legend, stats=True)

    board.row("Volume").add(
        timeseries("Log lines by level", volume("severity_text", "{{severity_text}}"), width=8),
        timeseries("Log lines by category", volume("category", "{{category}}", f" | {UNCATEGORISED}"),
                   width=8, links=[runbook(spec, "SecurityEventDetected")]),
        timeseries("Log lines by component", volume("component", "{{component}}", f" | {COMPONENT}"),
                   width=8),
        timeseries("Error lines by service",
                   volume("service.name", "{{service.name}}", f" {ERROR_LEVELS}"), width=24,
                   height=6, links=[runbook(spec, "ErrorLogSpike"), runbook(spec, "HighErrorRate")]),
    )
    board.row("Lines").add(
        logs("Error logs (trace_id opens the trace)", f"{LOG_FILTER} {ERROR_LEVELS}",
             links=[runbook(spec, "CriticalLogEvents")]),
        logs("Logs of correlation ID $correlation_id", f'{LOG_FILTER} correlation_id:~"$correlation_id"',
             description="Set Correlation ID to an X-Correlation-ID value to follow one request"),
    )
    return board


def _services_with_slo(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc["slo"] for name, svc in spec["services"].items() if svc.get("slo")}


def slo(spec: dict[str, Any]) -> Board:
    board = Board("theodore-slo", "Theodore / SLOs",
                  "Error budget remaining and burn rates per service, from the SLO recording rules.",
                  ["reliability"], [environment_variable(spec["environment"]), service_variable()],
                  annotations=[alerts_annotation('alertname=~"SLO.*"')])
    for service, target in _services_with_slo(spec).items():
        sel = f'service="{service}", service=~"$service"'
        kinds = {"availability": ("request_errors", 1 - target["availability"], "SLOAvailabilityBurnRate"),
                 "latency": ("request_latency_over_slo", 1 - target["latency_target"], "SLOLatencyBurnRate")}
        board.row(f"{service}: {target['availability']:.1%} available, "
                  f"{target['latency_target']:.0%} under {target['latency_seconds']} s")
        for kind, (ratio, budget, alert) in kinds.items():
            remaining = f"1 - (service:{ratio}:ratio_rate{BUDGET_WINDOW}{{{sel}}} / {budget:g})"
            board.add(stat(f"{kind.capitalize()} error budget remaining ({BUDGET_WINDOW})",
                           prom(remaining, instant=True), unit="percentunit", width=6,
                           thresholds=[(None, "red"), (0.25, "orange"), (0.5, "green")],
                           links=[runbook(spec, alert)]))
        for kind, (ratio, budget, alert) in kinds.items():
            board.add(timeseries(
                f"{kind.capitalize()} burn rate (1 = spending the budget exactly)",
                *(prom(f"service:{ratio}:ratio_rate{w}{{{sel}}} / {budget:g}", w) for w in SLO_WINDOWS),
                width=12, links=[runbook(spec, alert)]))
    return board


def alerts(spec: dict[str, Any]) -> Board:
    board = Board("theodore-alerts", "Theodore / Alerts overview",
                  "What fires now, and whether Alertmanager delivers it.", ["reliability"],
                  links=[link("Alert groups (Grafana Alerting, Alertmanager data source)",
                              "/alerting/groups?alertmanager=Alertmanager")])
    firing = 'ALERTS{alertstate="firing"}'
    board.row("Firing").add(
        stat("Firing alerts (Watchdog included)", prom(f"count({firing})", instant=True), width=6,
             links=[runbook(spec, "Watchdog")]),
        table("Firing alerts", prom(f"sum by (alertname, severity) ({firing})", instant=True), width=18),
        timeseries("Firing alerts by severity", prom(f"count by (severity) ({firing})", "{{severity}}"),
                   width=24, height=6),
    )
    board.row("Delivery").add(
        timeseries("Alerts in Alertmanager",
                   prom('sum by (state) (alertmanager_alerts{job="alertmanager"})', "{{state}}"), width=8),
        timeseries("Notifications per second",
                   prom(_per_second("alertmanager_notifications_total", "alertmanager", "integration"),
                        "{{integration}}"), width=8),
        timeseries("Failed notifications per second",
                   prom(_per_second("alertmanager_notifications_failed_total", "alertmanager", "integration"),
                        "{{integration}}"),
                   width=8, links=[runbook(spec, "AlertmanagerNotificationsFailing")]),
        timeseries("Rule evaluation failures per second",
                   prom(_per_second("prometheus_rule_evaluation_failures_total", "prometheus", "rule_group"),
                        "{{rule_group}}"),
                   prom(_per_second("vmalert_execution_errors_total", "vmalert"), "vmalert (log rules)"),
                   width=12, links=[runbook(spec, "PrometheusRuleEvaluationFailures"),
                                    runbook(spec, "VMAlertRuleEvaluationFailures")]),
        timeseries("Prometheus → Alertmanager notifications per second",
                   prom(_per_second("prometheus_notifications_sent_total", "prometheus"), "sent"),
                   prom(_per_second("prometheus_notifications_errors_total", "prometheus"), "errors"),
                   width=12, links=[runbook(spec, "PrometheusNotificationsFailing")]),
    )
    return board


def _per_second(metric: str, job: str, by: str = "") -> str:
    return f"sum{f' by ({by})' if by else ''} (rate({metric}{{job=\"{job}\"}}[$__rate_interval]))"


def stack_health(spec: dict[str, Any]) -> Board:
    board = Board("theodore-stack-health", "Theodore / Stack health",
                  "Collector throughput, drops and queues; Prometheus, VictoriaLogs, vmalert, Jaeger, "
                  "Alertmanager; probes.",
                  ["platform"])
    col, signals = "otel-collector", ("spans", "metric_points", "log_records")
    board.row("Targets and probes").add(
        bargauge("Scrape targets up", prom("min by (job) (up)", "{{job}}", instant=True), width=8,
                 links=[runbook(spec, "TargetDown")]),
        bargauge("Health probes", prom('probe_success{job="blackbox-health"}', "{{instance}}", instant=True),
                 width=8, links=[runbook(spec, "ProbeFailed")]),
        timeseries("Probe duration", prom('probe_duration_seconds{job="blackbox-health"}', "{{instance}}"),
                   unit="s", width=8),
    )
    board.row("OpenTelemetry Collector").add(
        timeseries("Accepted per second", *(prom(_per_second(f"otelcol_receiver_accepted_{s}_total", col), s)
                                           for s in signals), width=8),
        timeseries("Exported per second",
                   *(prom(_per_second(f"otelcol_exporter_sent_{s}_total", col, "exporter"),
                          f"{s} {{{{exporter}}}}") for s in signals), width=8,
                   links=[runbook(spec, "OtelCollectorExportFailing"),
                          runbook(spec, "OtelCollectorExportStalled")]),
        timeseries("Dropped per second (refused or failed)",
                   *(prom(_per_second(f"otelcol_receiver_refused_{s}_total", col), f"refused {s}")
                     for s in signals),
                   *(prom(_per_second(f"otelcol_exporter_send_failed_{s}_total", col, "exporter"),
                          f"failed {s} {{{{exporter}}}}") for s in signals), width=8,
                   links=[runbook(spec, "OtelCollectorRefusingData"),
                          runbook(spec, "OtelCollectorDroppingData"),
                          runbook(spec, "IntegrationExportFailing")]),
        timeseries("Exporter queue fill", prom(
            f'max by (exporter) (otelcol_exporter_queue_size{{job="{col}"}} / '
            f'otelcol_exporter_queue_capacity{{job="{col}"}})', "{{exporter}}"),
            unit="percentunit", width=12, links=[runbook(spec, "OtelCollectorQueueFilling")]),
        timeseries("Collector memory (RSS)", prom(f'otelcol_process_memory_rss_bytes{{job="{col}"}}', "rss"),
                   unit="bytes", width=12),
    )
    board.row("Prometheus, VictoriaLogs, vmalert, Jaeger, Alertmanager").add(
        timeseries("Prometheus head series", prom('prometheus_tsdb_head_series{job="prometheus"}', "series"),
                   width=6),
        timeseries("Prometheus samples appended per second",
                   prom(_per_second("prometheus_tsdb_head_samples_appended_total", "prometheus"), "samples"),
                   width=6),
        timeseries("VictoriaLogs rows ingested per second",
                   prom(_per_second("vl_rows_ingested_total", "victorialogs", "type"), "{{type}}"), width=6),
        timeseries("VictoriaLogs streams created",
                   prom('sum(vl_streams_created_total{job="victorialogs"})', "streams"), width=6,
                   description="log streams (distinct stream field values) VictoriaLogs has created"),
        timeseries("VictoriaLogs HTTP errors per second by path",
                   prom(_per_second("vl_http_errors_total", "victorialogs", "path"), "{{path}}"), width=12,
                   links=[runbook(spec, "VictoriaLogsRequestErrors")]),
        timeseries("VictoriaLogs disk",
                   prom('sum by (type) (vl_data_size_bytes{job="victorialogs"})', "data {{type}}"),
                   prom('min(vl_free_disk_space_bytes{job="victorialogs"})', "free"),
                   unit="bytes", width=12),
        timeseries("vmalert rules evaluated per second",
                   prom(_per_second("vmalert_execution_total", "vmalert"), "evaluations"), width=8),
        timeseries("vmalert evaluation errors per second",
                   prom(_per_second("vmalert_execution_errors_total", "vmalert"), "errors"), width=8,
                   links=[runbook(spec, "VMAlertRuleEvaluationFailures")]),
        timeseries("vmalert → Alertmanager notifications per second",
                   prom(_per_second("vmalert_alerts_sent_total", "vmalert"), "sent"),
                   prom(_per_second("vmalert_alerts_send_errors_total", "vmalert"), "errors"), width=8,
                   links=[runbook(spec, "VMAlertNotificationsFailing")]),
        timeseries("Jaeger spans received and stored per second",
                   prom(_per_second("otelcol_receiver_accepted_spans_total", "jaeger"), "received"),
                   prom(_per_second("otelcol_exporter_sent_spans_total", "jaeger"), "stored"), width=8),
        timeseries("Jaeger storage size",
                   prom('sum(jaeger_storage_badger_size_bytes_lsm{job="jaeger"}) + '
                        'sum(jaeger_storage_badger_size_bytes_vlog{job="jaeger"})', "badger"),
                   unit="bytes", width=8),
        timeseries("Alertmanager alerts and notifications",
                   prom('sum(alertmanager_alerts{job="alertmanager"})', "alerts"),
                   prom(_per_second("alertmanager_notifications_total", "alertmanager"), "notifications/s"),
                   width=8),
    )
    return board


VERSION_LEGEND = "{{service_version}} {{span_name}}"


def versions(spec: dict[str, Any]) -> Board:
    """Each version of a service side by side, per operation, from the regression rules."""
    lookback = spec["regression"]["lookback"]
    board = Board("theodore-versions", "Theodore / Versions",
                  "Throughput, p95 latency and error ratio of each service.version per operation, and the "
                  f"best version of the last {lookback} each one is judged against (docs/profiling.md).",
                  ["services", "performance"],
                  [environment_variable(spec["environment"]), service_variable()],
                  annotations=[alerts_annotation('alertname=~"Version.*Regression"')])
    sel = '{service=~"$service"}'
    p95, errors = ("service_version_operation:request_duration_seconds:p95_5m",
                   "service_version_operation:request_errors:ratio_rate5m")
    latency_link = runbook(spec, "VersionLatencyRegression")
    errors_link = runbook(spec, "VersionErrorRegression")
    judged = (f"Versions with at least {spec['regression']['min_requests']} requests of the operation "
              "in 5 minutes")
    board.row("Now, side by side").add(
        table("p95 latency by version and operation (5m)", prom(f"{p95}{sel}", instant=True), unit="s",
              description=judged, links=[latency_link]),
        table("Error ratio by version and operation (5m)", prom(f"{errors}{sel}", instant=True),
              unit="percentunit", description=judged, links=[errors_link]),
    )
    board.row("Over time").add(
        timeseries("p95 latency by version", prom(f"{p95}{sel}", VERSION_LEGEND), unit="s",
                   links=[latency_link]),
        timeseries(f"Best version's p95 ({lookback} average): the baseline",
                   prom(f"service_operation:request_duration_seconds:p95_5m_best_avg{lookback}{sel}",
                        "{{span_name}}"), unit="s", links=[latency_link]),
        timeseries("Error ratio by version", prom(f"{errors}{sel}", VERSION_LEGEND), unit="percentunit",
                   links=[errors_link]),
        timeseries("Requests per second by version",
                   prom(f"service_version_operation:requests:rate5m{sel}", VERSION_LEGEND), unit="reqps"),
    )
    return board


DASHBOARDS = {
    "Services": [service_overview, versions, logs_board],
    "Business": [research_kpis, ai_cost],
    "Reliability": [slo, alerts],
    "Platform": [stack_health],
}
"""Folder (Grafana folder = directory, ``foldersFromFilesStructure``) → its dashboards."""
