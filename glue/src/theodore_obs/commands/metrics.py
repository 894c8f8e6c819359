"""``metrics``: catalogue metrics per job over a time range, as a table, JSON or exposition text."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click
from rich.live import Live
from rich.table import Table
from theodore_catalogue import catalogue, names_with

from ..clients.prometheus import Prometheus, label_value, metric_name
from ._common import (
    TIME_RANGES,
    Context,
    console,
    emit,
    iso,
    make_table,
    operator_command,
    write_json,
)
from ._inputs import AT, LIMIT, SECONDS, TEXT, at_or_now, checked, output_file


def _queries(name: str, kind: str, selector: str, window: str) -> dict[str, str]:
    """PromQL per reported field, each summed by job."""
    if kind == "histogram":
        buckets = f"sum by (job, le) (rate({name}_bucket{selector}[{window}]))"
        return {"count": f"sum by (job) (increase({name}_count{selector}[{window}]))",
                "p50": f"histogram_quantile(0.5, {buckets})",
                "p95": f"histogram_quantile(0.95, {buckets})"}
    if kind == "counter":
        return {"value": f"sum by (job) ({name}{selector})",
                "increase": f"sum by (job) (increase({name}{selector}[{window}]))"}
    return {"value": f"sum by (job) ({name}{selector})"}


def metric_kind(prometheus: Prometheus, name: str) -> str:
    known = catalogue().get(name)
    if known:
        return "gauge" if known.type == "updowncounter" else known.type
    return prometheus.metric_type(name) or "gauge"


def _number(text: str) -> float | None:
    value = float(text)
    return round(value, 6) if math.isfinite(value) else None  # NaN: no observations


def metric_report(prometheus: Prometheus, name: str, window: str, job: str | None,
                  at: float) -> dict[str, Any]:
    kind = metric_kind(prometheus, name)
    selector = f"{{job={label_value(job)}}}" if job else ""
    series: dict[str, dict[str, Any]] = {}
    for field, promql in _queries(name, kind, selector, window).items():
        for row in prometheus.query(promql, at):
            entry = series.setdefault(row["metric"].get("job", ""), {"job": row["metric"].get("job")})
            entry[field] = _number(row["value"][1])
    help_text = known.help if (known := catalogue().get(name)) else None
    return {"name": name, "type": kind, "help": help_text,
            "series": sorted(series.values(), key=lambda s: s["job"] or "")}


def selected_names(metric_name: str | None, component: str | None) -> tuple[list[str], str | None]:
    """The metric names to show and the job to filter on (``--component`` is a word or a job)."""
    if metric_name:
        return [metric_name], component
    if component and names_with(component):
        return names_with(component), None
    return list(catalogue()), component


def metrics_report(prometheus: Prometheus, names: list[str], window: str, job: str | None,
                   at: float) -> dict[str, Any]:
    """The ``metrics --format json`` document (fields documented in the README)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        reports = list(pool.map(lambda n: metric_report(prometheus, n, window, job, at), names))
    return {"time_range": window, "at": iso(at), "job": job, "metrics": reports}


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def metrics_table(report: dict[str, Any], show_empty: bool) -> Table:
    values = ("value", "increase", "count", "p50", "p95")
    table = make_table(f"Metrics over the last {report['time_range']} (at {report['at']})",
                       ["metric", "type", "job", *values], numeric=values)
    for metric in report["metrics"]:
        if not metric["series"] and show_empty:
            table.add_row(metric["name"], metric["type"], "(no data)", *["-"] * 5)
        for s in metric["series"]:
            table.add_row(metric["name"], metric["type"], s["job"] or "-",
                          *(_cell(s.get(k)) for k in ["value", "increase", "count", "p50", "p95"]))
    return table


def exposition(prometheus: Prometheus, names: list[str], job: str | None, at: float) -> str:
    """Current samples in the Prometheus text format, with the catalogue's HELP and TYPE."""
    lines = []
    for name in names:
        kind = metric_kind(prometheus, name)
        match = f"{name}|{name}_bucket|{name}_sum|{name}_count" if kind == "histogram" else name
        rows = prometheus.query(name_selector(match, job), at)
        if not rows:
            continue
        help_text = known.help if (known := catalogue().get(name)) else None
        lines += [f"# HELP {name} {help_text}"] if help_text else []
        lines.append(f"# TYPE {name} {kind}")
        for row in sorted(rows, key=lambda r: sorted(r["metric"].items())):
            labels = {k: v for k, v in row["metric"].items() if k != "__name__"}
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{row['metric']['__name__']}{{{rendered}}} {row['value'][1]}")
    return "\n".join(lines)


def name_selector(names: str, job: str | None) -> str:
    """``{__name__=~"NAMES",job="JOB"}`` with both values escaped as PromQL strings."""
    job_matcher = f",job={label_value(job)}" if job else ""
    return f"{{__name__=~{label_value(names)}{job_matcher}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@click.command()
@click.option("--metric-name", type=TEXT, callback=checked(metric_name),
              help="One metric (a catalogue name, or any name Prometheus has).")
@click.option("--time-range", type=click.Choice(TIME_RANGES), default="1h", show_default=True)
@click.option("--component", type=TEXT,
              help="A word of the metric names (ai, storage, cache) or a job (theodore-demo).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "prometheus"]), default="table",
              show_default=True)
@click.option("--live", is_flag=True, help="Refresh the table until Ctrl-C.")
@click.option("--interval", type=SECONDS, default=5.0, show_default=True,
              help="Seconds between --live refreshes.")
@click.option("--iterations", type=LIMIT, hidden=True, help="Stop --live after this many refreshes.")
@output_file("--export", "export_path", help="Also write the JSON report to this file.")
@AT
@operator_command
def metrics(ctx: Context, metric_name: str | None, time_range: str, component: str | None, fmt: str,
            live: bool, interval: float, iterations: int | None, export_path: Path | None,
            at_text: str | None) -> None:
    """Current values, increases and latency quantiles of the catalogue metrics."""
    prometheus = Prometheus(ctx.backends.prometheus)
    names, job = selected_names(metric_name, component)
    at = at_or_now(at_text)
    if live:
        _live(prometheus, names, time_range, job, interval, iterations)
        return
    if fmt == "prometheus":
        click.echo(exposition(prometheus, names, job, at))
        return
    report = metrics_report(prometheus, names, time_range, job, at)
    if export_path:
        write_json(export_path, report)
    if fmt == "json":
        emit(report, "json")
    else:
        console().print(metrics_table(report, show_empty=metric_name is not None))
        if export_path:
            click.echo(f"wrote {export_path}")


def _live(prometheus: Prometheus, names: list[str], window: str, job: str | None, interval: float,
          iterations: int | None) -> None:
    """Redraw in place on a terminal; elsewhere (a pipe, a file) print one table per refresh."""
    out, count = console(), 0
    with Live(console=out, auto_refresh=False) if out.is_terminal else nullcontext() as view:
        while iterations is None or count < iterations:
            table = metrics_table(metrics_report(prometheus, names, window, job, time.time()),
                                  show_empty=len(names) == 1)
            if view is None:
                out.print(table)
                out.file.flush()
            else:
                view.update(table, refresh=True)
            count += 1
            if iterations is None or count < iterations:
                time.sleep(interval)
