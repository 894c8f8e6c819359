"""``status``: each component's health and version, scrape targets up/down, active alerts, and
the telemetry instrumented apps dropped before it reached the collector."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import click
from theodore_catalogue import catalogued

from ..clients import BackendError, BackendUnavailable
from ..clients.alertmanager import Alertmanager
from ..clients.prometheus import Prometheus
from ..components import COMPONENTS
from ..endpoints import Endpoint, probe_all, service_endpoints, stack_endpoints
from ._common import Context, console, emit, escape, make_table, markup, operator_command
from ._errors import EXIT_BAD_INPUT, EXIT_FAILED, fail
from ._inputs import TEXT
from .alert_list import active_alerts

DROPPED = catalogued("theodore_telemetry_dropped_total", "counter")


def component_endpoints(ctx: Context) -> list[Endpoint]:
    """The readiness endpoints of the stack and the observed apps, honouring URL overrides."""
    # A backend URL override moves the component's probes too when they share its API port.
    default = {c.name: c.base_url(ctx.spec["ports"], "127.0.0.1") for c in COMPONENTS
               if c.health_port == c.port}
    found = []
    for endpoint in stack_endpoints(ctx.spec) + service_endpoints(ctx.spec):
        base, wanted = default.get(endpoint.component), getattr(ctx.backends, endpoint.component, None)
        if base and wanted and wanted != base:
            found.append(dataclasses.replace(
                endpoint, ready_url=endpoint.ready_url.replace(base, wanted, 1),
                version_url=endpoint.version_url and endpoint.version_url.replace(base, wanted, 1)))
        else:
            found.append(endpoint)
    return found


def scrape_targets(prometheus: Prometheus) -> list[dict[str, Any]]:
    return [{"job": t["labels"].get("job"), "instance": t["labels"].get("instance"), "health": t["health"],
             "last_error": t.get("lastError") or None, "last_scrape": t.get("lastScrape")}
            for t in prometheus.targets()]


def _count(value: str) -> int | None:
    """A sample value as a count; ``None`` for NaN or infinity (no count to show)."""
    number = float(value)
    return int(number) if math.isfinite(number) else None


def app_drops(prometheus: Prometheus) -> list[dict[str, Any]]:
    """Per app (OTLP ``service_name``), signal and reason: the items its live processes dropped."""
    found = prometheus.query(f"sum by (service_name, signal, reason) ({DROPPED})")
    return sorted(({"service": r["metric"].get("service_name"), "signal": r["metric"].get("signal"),
                    "reason": r["metric"].get("reason"), "dropped": _count(r["value"][1])}
                   for r in found), key=lambda d: (d["service"] or "", d["signal"] or "", d["reason"] or ""))


def _attempt(call: Any, errors: dict[str, str], name: str) -> Any:
    try:
        return call()
    except (BackendUnavailable, BackendError) as exc:
        errors[name] = str(exc)
        return None


def status_report(ctx: Context, component: str | None = None, detailed: bool = False) -> dict[str, Any]:
    """The ``status --format json`` document (fields documented in the README)."""
    endpoints = [e for e in component_endpoints(ctx) if component in (None, e.component)]
    components = probe_all(endpoints)
    prometheus, errors = Prometheus(ctx.backends.prometheus, timeout=5), {}
    targets = _attempt(lambda: scrape_targets(prometheus), errors, "targets")
    alerts = _attempt(lambda: active_alerts(prometheus, Alertmanager(ctx.backends.alertmanager, timeout=5)),
                      errors, "alerts")
    drops = _attempt(lambda: app_drops(prometheus), errors, "app_drops")
    if component and targets is not None:
        targets = [t for t in targets if t["job"] == component]
    if component and drops is not None:
        drops = [d for d in drops if d["service"] == component]
    if component and alerts is not None:
        alerts = [a for a in alerts if component in (a["labels"].get("job"), a["labels"].get("service"))]
    report: dict[str, Any] = {
        "components": [h.as_dict() for h in components],
        "healthy": all(h.healthy for h in components),
        "targets_summary": None if targets is None else {
            "up": sum(t["health"] == "up" for t in targets),
            "down": sum(t["health"] != "up" for t in targets),
            "down_targets": [t for t in targets if t["health"] != "up"]},
        "alerts": alerts,
        "app_drops": drops,
        "errors": errors,
    }
    if detailed:
        report["targets"] = targets
    return report


def _print_table(report: dict[str, Any], alerts_only: bool, detailed: bool) -> None:
    out = console()
    if not alerts_only:
        table = make_table("Components", ["component", "state", "latency", "version", "detail"],
                           numeric=("latency",))
        for h in report["components"]:
            state = markup("[green]healthy[/]" if h["healthy"] else "[red]DOWN[/]")
            table.add_row(h["component"], state, f"{h['latency_ms']:.1f}ms", h["version"] or "-", h["detail"])
        out.print(table)
        summary = report["targets_summary"]
        if summary is not None:
            out.print(f"scrape targets: {summary['up']} up, {summary['down']} down")
            for t in summary["down_targets"]:
                where = f"{t['job']} {t['instance']}: {t['last_error'] or '-'}"
                out.print(f"  [red]down[/] {escape(where)}")
        if detailed and report.get("targets"):
            targets = make_table("Scrape targets", ["job", "instance", "health", "last scrape"])
            for t in report["targets"]:
                targets.add_row(t["job"], t["instance"], t["health"], t["last_scrape"] or "-")
            out.print(targets)
        _print_drops(out, report["app_drops"])
    _print_alerts(out, report["alerts"])
    for name, error in report.get("errors", {}).items():
        out.print(f"[yellow]{name} unavailable:[/] {escape(error)}")


def _print_drops(out: Any, drops: list[dict[str, Any]] | None) -> None:
    if drops is None:
        return
    lost = [d for d in drops if d["dropped"]]
    if not lost:
        out.print("app telemetry dropped: none")
        return
    out.print("app telemetry dropped (before the collector):")
    for d in lost:
        where = f"{d['service']} {d['signal']} ({d['reason']})"
        out.print(f"  [yellow]{d['dropped']}[/] {escape(where)}")


def _print_alerts(out: Any, alerts: list[dict[str, Any]] | None) -> None:
    if alerts is None:
        return
    if not alerts:
        out.print("active alerts: none")
        return
    table = make_table(f"Active alerts ({len(alerts)})", ["alert", "state", "severity", "since", "summary"])
    for a in alerts:
        table.add_row(a["name"], a["state"], a["severity"] or "-", a["since"] or "-", a["summary"] or "")
    out.print(table)


@click.command()
@click.option("--component", type=TEXT, help="Only this component (e.g. victorialogs, theodore-demo).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "yaml"]), default="table",
              show_default=True)
@click.option("--detailed", is_flag=True, help="Also list every scrape target.")
@click.option("--alerts-only", is_flag=True, help="Show only active alerts.")
@operator_command
def status(ctx: Context, component: str | None, fmt: str, detailed: bool, alerts_only: bool) -> None:
    """Each component's health and version, scrape targets up/down and active alerts."""
    known = [e.component for e in component_endpoints(ctx)]
    if component and component not in known:
        fail(f"--component: no component {component!r} (known: {', '.join(known)})", EXIT_BAD_INPUT)
    if alerts_only:
        alerts = active_alerts(Prometheus(ctx.backends.prometheus), Alertmanager(ctx.backends.alertmanager))
        report = {"alerts": [a for a in alerts if component in (None, a["labels"].get("job"),
                                                               a["labels"].get("service"))]}
    else:
        report = status_report(ctx, component, detailed)
    if fmt == "table":
        _print_table(report, alerts_only, detailed)
    else:
        emit(report, fmt)
    if not report.get("healthy", True):
        down = [c["component"] for c in report["components"] if not c["healthy"]]
        fail(f"not healthy: {', '.join(down)}", EXIT_FAILED)
