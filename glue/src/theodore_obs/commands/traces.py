"""``traces``: find traces in Jaeger by id, correlation ID, service, duration or error; span trees;
a trace found by id comes with its logs from VictoriaLogs (``trace_id:="…"``)."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.table import Table
from rich.tree import Tree

from ..clients import BackendError, BackendUnavailable
from ..clients.jaeger import Jaeger
from ..clients.jaeger import trace_id as checked_trace_id
from ..timing import GO_UNITS, duration_seconds
from ._common import Context, console, emit, escape, iso, make_table, markup, operator_command
from ._errors import EXIT_FAILED, fail
from ._inputs import LIMIT, SINCE, TEXT, checked, seconds
from .logs import fetch, log_store, logsql, text_line

CORRELATION_ATTRIBUTE = "theodore.correlation_id"
"""The span attribute our correlation middleware sets (``telemetry.correlation.SPAN_ATTRIBUTE``;
kept here so the CLI runs without OpenTelemetry installed, and checked equal by a test)."""

SELF_SERVICES = {"jaeger", "jaeger-all-in-one"}
"""Jaeger's own traces, left out when searching every service."""
LOG_MARGIN_US = 60_000_000
"""A trace's logs are looked for from a minute before its first span to a minute after its end."""
MAX_TRACE_LOGS = 1000
"""The most log lines shown with one trace."""


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def _parent(span: dict[str, Any]) -> str | None:
    return next((r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"), None)


def normalise(trace: dict[str, Any]) -> dict[str, Any]:
    """A Jaeger trace in the documented shape: times in ms, spans oldest first with parents."""
    processes = trace.get("processes", {})
    spans = []
    for s in sorted(trace["spans"], key=lambda s: s["startTime"]):
        tags = _tags(s)
        spans.append({
            "span_id": s["spanID"], "parent_id": _parent(s), "operation": s["operationName"],
            "service": processes.get(s["processID"], {}).get("serviceName"),
            "start": iso(s["startTime"] / 1e6), "start_us": s["startTime"],
            "duration_ms": round(s["duration"] / 1000, 3),
            "error": tags.get("error") in (True, "true"), "attributes": tags})
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_id"] not in ids] or spans[:1]
    begin = min(s["start_us"] for s in spans)
    end = max(s["start_us"] + s["duration_ms"] * 1000 for s in spans)
    correlation = next((s["attributes"][CORRELATION_ATTRIBUTE] for s in spans
                        if CORRELATION_ATTRIBUTE in s["attributes"]), None)
    return {"trace_id": trace["traceID"], "root_service": roots[0]["service"],
            "root_operation": roots[0]["operation"], "start": iso(begin / 1e6),
            "duration_ms": round((end - begin) / 1000, 3), "span_count": len(spans),
            "error": any(s["error"] for s in spans), "correlation_id": correlation, "spans": spans}


def go_duration(text: str | None) -> str | None:
    """``--min-duration`` as Jaeger reads it (a Go duration: ``250ms``, ``1.5s``, ``1m30s``), checked."""
    if text is not None:
        try:
            duration_seconds(text, GO_UNITS)
        except ValueError:
            raise click.BadParameter(f"{text!r}: expected a duration like 250ms, 1.5s",
                                     param_hint="--min-duration") from None
    return text


def search(jaeger: Jaeger, service: str | None, correlation_id: str | None, errors: bool,
           min_duration: str | None, since: str, limit: int) -> list[dict[str, Any]]:
    tags = {}
    if correlation_id:
        tags[CORRELATION_ATTRIBUTE] = correlation_id
    if errors:
        tags["error"] = "true"
    end_us = int(time.time() * 1e6)
    start_us = end_us - int(seconds(since) * 1e6)
    services = [service] if service else [s for s in jaeger.services() if s not in SELF_SERVICES]
    found: dict[str, dict[str, Any]] = {}
    for name in services:
        for trace in jaeger.find(name, tags, min_duration, start_us, end_us, limit):
            found.setdefault(trace["traceID"], normalise(trace))
    return sorted(found.values(), key=lambda t: t["start"], reverse=True)[:limit]


def span_tree(trace: dict[str, Any]) -> Tree:
    begin = min(s["start_us"] for s in trace["spans"])
    tree = Tree(f"[bold]trace {escape(trace['trace_id'])}[/] {trace['duration_ms']:.1f}ms, "
                f"{trace['span_count']} spans" + (f", correlation {escape(trace['correlation_id'])}"
                                                 if trace["correlation_id"] else ""))
    children: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["span_id"] for s in trace["spans"]}
    for s in trace["spans"]:
        children.setdefault(s["parent_id"] if s["parent_id"] in ids else None, []).append(s)

    def add(node: Tree, parent: str | None) -> None:
        for s in children.get(parent, []):
            mark = " [red]ERROR[/]" if s["error"] else ""
            offset = (s["start_us"] - begin) / 1000
            name = f"{escape(s['operation'])} [dim]({escape(str(s['service']))})[/]"
            add(node.add(f"{name} {s['duration_ms']:.2f}ms "
                         f"[dim]+{offset:.1f}ms[/]{mark}"), s["span_id"])

    add(tree, None)
    return tree


def trace_table(traces: list[dict[str, Any]]) -> Table:
    table = make_table(f"Traces ({len(traces)})",
                       ["trace id", "start", "root", "spans", "duration", "error", "correlation id"],
                       numeric=("spans", "duration"))
    for t in traces:
        table.add_row(t["trace_id"], t["start"], f"{t['root_service']}: {t['root_operation']}",
                      str(t["span_count"]), f"{t['duration_ms']:.1f}ms",
                      markup("[red]yes[/]") if t["error"] else "no", t["correlation_id"] or "-")
    return table


def trace_logs(ctx: Context, trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace's log lines in VictoriaLogs (its spans' time, oldest first); OTLP writes
    ``trace_id`` as 32 hex digits."""
    begin = min(s["start_us"] for s in trace["spans"])
    end = begin + trace["duration_ms"] * 1000
    _tenant, store = log_store(ctx)
    query = logsql(trace_id=trace["trace_id"].lower().rjust(32, "0"))
    start_ns, end_ns = int(begin - LOG_MARGIN_US) * 1000, int(end + LOG_MARGIN_US) * 1000
    return fetch(store, query, start_ns, end_ns, MAX_TRACE_LOGS)


def with_logs(ctx: Context, trace: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """``trace`` with its ``logs``; ``None`` (and why, in ``errors``) when VictoriaLogs failed."""
    try:
        return {**trace, "logs": trace_logs(ctx, trace)}
    except (BackendUnavailable, BackendError) as exc:
        errors["logs"] = str(exc)
        return {**trace, "logs": None}


def print_logs(trace: dict[str, Any], errors: dict[str, str]) -> None:
    out = console()
    if trace["logs"] is None:
        out.print(f"[yellow]logs unavailable:[/] {escape(errors['logs'])}")
        return
    out.print(f"logs of trace {escape(trace['trace_id'])}: {len(trace['logs'])}")
    for e in trace["logs"]:
        click.echo(text_line(e))


def public(trace: dict[str, Any]) -> dict[str, Any]:
    return {**trace, "spans": [{k: v for k, v in s.items() if k != "start_us"} for s in trace["spans"]]}


@click.command()
@click.option("--trace-id", type=TEXT, callback=checked(checked_trace_id),
              help="Show this trace as a span tree (16 or 32 hex digits).")
@click.option("--correlation-id", type=TEXT, help=f"Traces whose spans carry this {CORRELATION_ATTRIBUTE}.")
@click.option("--service", type=TEXT, help="Only traces of this service (default: every service).")
@click.option("--min-duration", callback=lambda _c, _p, v: go_duration(v), help="e.g. 250ms, 1.5s.")
@click.option("--errors", is_flag=True, help="Only traces with an error span.")
@SINCE
@click.option("--limit", type=LIMIT, default=20, show_default=True)
@click.option("--tree/--no-tree", default=None, help="Span trees (default: for --trace-id/--correlation-id).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@operator_command
def traces(ctx: Context, trace_id: str | None, correlation_id: str | None, service: str | None,
           min_duration: str | None, errors: bool, since: str, limit: int, tree: bool | None,
           fmt: str) -> None:
    """Find traces and print them as span trees with durations; with --trace-id, the trace's
    log lines too (from VictoriaLogs)."""
    jaeger, problems = Jaeger(ctx.backends.jaeger), {}
    if trace_id:
        found = jaeger.trace(trace_id)
        if found is None:
            fail(f"Jaeger has no trace {trace_id}", EXIT_FAILED)
        results = [with_logs(ctx, normalise(found), problems)]
    else:
        results = search(jaeger, service, correlation_id, errors, min_duration, since, limit)
    if fmt == "json":
        emit({"count": len(results), "traces": [public(t) for t in results],
              **({"errors": problems} if trace_id else {})}, "json")
    elif tree if tree is not None else bool(trace_id or correlation_id):
        for t in results:
            console().print(span_tree(t))
    else:
        console().print(trace_table(results))
    if trace_id and fmt != "json":
        print_logs(results[0], problems)
    if (trace_id or correlation_id) and not results:
        fail(f"no trace with {CORRELATION_ATTRIBUTE}={correlation_id} in the last {since}", EXIT_FAILED)
