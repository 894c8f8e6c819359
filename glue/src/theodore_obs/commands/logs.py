"""``logs``: the apps' logs in Loki, filtered by level, component, correlation ID and text."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..clients.loki import Loki, logql_string
from ._common import Context, emit, operator_command, seconds, write_json
from ._inputs import LIMIT, SECONDS, SINCE, TEXT, output_file

MIN_SEVERITY = {"debug": 5, "info": 9, "warn": 13, "error": 17}
"""OpenTelemetry severity numbers where each level starts; ``--level`` shows it and above."""


def logql(level: str | None = None, component: str | None = None, correlation_id: str | None = None,
          search: str | None = None) -> str:
    """The LogQL query for the filters (labels and structured metadata the OTLP ingestion sets);
    every user value is a quoted, escaped LogQL string."""
    query = '{service_name=~".+"}'
    if search:
        query += f" |= {logql_string(search)}"
    if component:
        query += f" | service_name={logql_string(component)} or scope_name={logql_string(component)}"
    if correlation_id:
        query += f" | correlation_id={logql_string(correlation_id)}"
    if level:
        query += f" | severity_number >= {MIN_SEVERITY[level]}"
    return query


def entry(labels: dict[str, str], ns: str, line: str) -> dict[str, Any]:
    """One log line in the documented shape; JSON lines are parsed into ``fields``."""
    try:
        fields = json.loads(line)
    except ValueError:
        fields = None
    fields = fields if isinstance(fields, dict) else {"message": line}
    known = {key: fields.pop(key, None) for key in
             ["message", "level", "logger", "correlation_id", "trace_id", "span_id", "timestamp"]}
    for key in ["service", "environment"]:
        fields.pop(key, None)
    seconds_part, nanos = divmod(int(ns), 1_000_000_000)
    return {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds_part)) + f".{nanos:09d}Z",
        "service": labels.get("service_name"),
        "level": known["level"] or labels.get("detected_level"),
        "logger": known["logger"] or labels.get("scope_name"),
        "message": known["message"],
        "correlation_id": known["correlation_id"] or labels.get("correlation_id"),
        "trace_id": known["trace_id"] or labels.get("trace_id"),
        "span_id": known["span_id"] or labels.get("span_id"),
        "fields": fields,
        "_ns": int(ns),
    }


def fetch(loki: Loki, query: str, start_ns: int, end_ns: int | None, limit: int,
          direction: str = "backward") -> list[dict[str, Any]]:
    """Entries oldest first."""
    streams = loki.query_range(query, start_ns, end_ns, limit, direction)
    found = [entry(s["stream"], ns, line) for s in streams for ns, line in s["values"]]
    found.sort(key=lambda e: e["_ns"])
    return found[-limit:] if direction == "backward" else found[:limit]


def public(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "_ns"} for e in entries]


def text_line(e: dict[str, Any]) -> str:
    extra = f" cid={e['correlation_id']}" if e["correlation_id"] else ""
    return (f"{e['timestamp'][:23]}Z {(e['level'] or '-').upper():<5} {e['service'] or '-'} "
            f"{e['logger'] or '-'}: {e['message']}{extra}")


def follow(loki: Loki, query: str, start_ns: int, interval: float, max_lines: int | None,
           max_seconds: float | None) -> Iterator[dict[str, Any]]:
    """New entries as they arrive, by polling; stops after ``max_lines``/``max_seconds`` if set."""
    seen: set[tuple[int, str]] = set()
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    count = 0
    while deadline is None or time.monotonic() < deadline:
        batch = fetch(loki, query, start_ns, None, 1000, "forward")
        for e in batch:
            key = (e["_ns"], json.dumps(e["fields"], sort_keys=True) + str(e["message"]))
            if key in seen:
                continue
            seen.add(key)
            yield e
            count += 1
            if max_lines is not None and count >= max_lines:
                return
        if batch:
            start_ns = max(start_ns, batch[-1]["_ns"])
        time.sleep(interval)


@click.command()
@click.option("--level", type=click.Choice(list(MIN_SEVERITY)), help="This level and above.")
@click.option("--component", type=TEXT, help="A service (theodore-demo) or logger (theodore_demo).")
@click.option("--correlation-id", type=TEXT, help="Only lines of this request.")
@SINCE
@click.option("--follow", "follow_", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--search", type=TEXT, help="Only lines containing this text.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@output_file("--export", "export_path", help="Also write the lines as a JSON document to this file.")
@click.option("--limit", type=LIMIT, default=100, show_default=True, help="At most this many lines (newest).")
@click.option("--interval", type=SECONDS, default=1.0, hidden=True, help="Seconds between --follow polls.")
@click.option("--max-lines", type=LIMIT, hidden=True, help="Stop --follow after this many lines.")
@click.option("--max-seconds", type=SECONDS, hidden=True, help="Stop --follow after this long.")
@operator_command
def logs(ctx: Context, level: str | None, component: str | None, correlation_id: str | None, since: str,
         follow_: bool, search: str | None, fmt: str, export_path: Path | None, limit: int,
         interval: float, max_lines: int | None, max_seconds: float | None) -> None:
    """Search and tail the apps' logs in Loki."""
    loki = Loki(ctx.backends.loki)
    query = logql(level, component, correlation_id, search)
    now_ns = time.time_ns()
    start_ns = now_ns - int(seconds(since) * 1e9)
    if follow_:
        for e in follow(loki, query, start_ns, interval, max_lines, max_seconds):
            click.echo(json.dumps(public([e])[0]) if fmt == "json" else text_line(e))
        return
    entries = public(fetch(loki, query, start_ns, now_ns, limit))
    document = {"query": query, "since": since, "count": len(entries), "entries": entries}
    if export_path:
        write_json(export_path, document)
    if fmt == "json":
        emit(document, "json")
    else:
        for e in entries:
            click.echo(text_line(e))
        if export_path:
            click.echo(f"wrote {len(entries)} lines to {export_path}", err=True)
