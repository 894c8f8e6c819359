"""``export``: metrics, logs or traces over a time range into one JSON file for analysis."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from theodore_catalogue import catalogue

from ..clients.jaeger import Jaeger
from ..clients.prometheus import Prometheus, metric_name
from . import logs as logs_command
from . import traces as traces_command
from ._common import TIME_RANGES, Context, iso, operator_command, seconds, write_json
from ._inputs import LIMIT, TEXT, checked, output_file
from .metrics import metric_kind, name_selector

MAX_POINTS = 500
"""Samples per series at most; the step grows with the range (never under 15s)."""


def export_metrics(prometheus: Prometheus, names: list[str], start: float, end: float,
                   job: str | None) -> dict[str, Any]:
    step = max(15.0, round((end - start) / MAX_POINTS))
    series = []
    for name in names:
        kind = metric_kind(prometheus, name)
        match = f"{name}_bucket|{name}_sum|{name}_count" if kind == "histogram" else name
        for row in prometheus.query_range(name_selector(match, job), start, end, step):
            labels = {k: v for k, v in row["metric"].items() if k != "__name__"}
            series.append({"name": row["metric"]["__name__"], "type": kind, "labels": labels,
                           "values": [[t, float(v)] for t, v in row["values"]]})
    return {"step_seconds": step, "series": series}


@click.command("export")
@click.argument("signal", type=click.Choice(["metrics", "logs", "traces"]))
@click.option("--time-range", type=click.Choice(TIME_RANGES), default="1h", show_default=True)
@output_file("--output", "-o", "output", help="JSON file to write (default: theodore-SIGNAL-<time>.json).")
@click.option("--metric-name", "metric_names", multiple=True, type=TEXT, callback=checked(metric_name),
              help="Metrics to export (default: catalogue).")
@click.option("--component", type=TEXT,
              help="Job (metrics), service, logger or component (logs), service (traces).")
@click.option("--correlation-id", type=TEXT, help="Logs and traces of this request only.")
@click.option("--limit", type=LIMIT, default=5000, show_default=True,
              help="At most this many log lines or traces.")
@logs_command.TENANT
@operator_command
def export(ctx: Context, signal: str, time_range: str, output: Path | None, metric_names: tuple[str, ...],
           component: str | None, correlation_id: str | None, limit: int, tenant: str | None) -> None:
    """Write SIGNAL (metrics, logs, traces) over the time range to a JSON file."""
    end = time.time()
    start = end - seconds(time_range)
    output = output or Path(f"theodore-{signal}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(end))}.json")
    document: dict[str, Any] = {"signal": signal, "time_range": time_range, "start": iso(start),
                                "end": iso(end)}
    if signal == "metrics":
        document.update(export_metrics(Prometheus(ctx.backends.prometheus),
                                       list(metric_names) or list(catalogue()), start, end, component))
        count = len(document["series"])
    elif signal == "logs":
        name, store = logs_command.log_store(ctx, tenant)
        query = logs_command.logsql(component=component, correlation_id=correlation_id)
        entries = logs_command.fetch(store, query, int(start * 1e9), int(end * 1e9), limit)
        document.update(query=query, tenant=name, entries=entries)
        count = len(entries)
    else:
        found = traces_command.search(Jaeger(ctx.backends.jaeger), component, correlation_id, False, None,
                                      time_range, min(limit, 1500))
        document["traces"] = [traces_command.public(t) for t in found]
        count = len(found)
    write_json(output, document)
    click.echo(f"wrote {count} {signal} {'series' if signal == 'metrics' else 'records'} to {output}")
