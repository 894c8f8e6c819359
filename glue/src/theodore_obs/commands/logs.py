"""``logs``: the apps' logs in VictoriaLogs, filtered by level, component, correlation ID and text.

``--tenant NAME`` of a tenant with a ``token_file`` reads through vmauth with that tenant's token,
``--audit`` the audit trail with the auditors' token (``tenant_access``); either token comes from
``--token-file``, by default the native stack's secret file."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..clients.victorialogs import VictoriaLogs, VmauthLogs, logsql_string, time_ns
from ..components import component
from ..paths import state_root
from ..spec import log_tenant
from ..tenant_access import TokenError, read_token
from ._common import Context, _url_option, emit, operator_command, seconds, write_json
from ._errors import EXIT_BAD_INPUT, fail
from ._inputs import LIMIT, SECONDS, SINCE, TEXT, output_file

MIN_SEVERITY = {"debug": 5, "info": 9, "warn": 13, "error": 17}
"""OpenTelemetry severity numbers where each level starts; ``--level`` shows it and above."""
ALL_APPS = '{service.name=~".+"}'
"""Every stream of an app: the collector makes ``service.name`` a stream field."""
COMPONENT_FIELDS = ("service.name", "scope.name", "component")
"""What ``--component`` matches: the service, the logger (OTLP scope) or the event's component."""
RECORD_FIELDS = {"service": "service.name", "logger": "scope.name", "correlation_id": "correlation_id",
                 "trace_id": "trace_id", "span_id": "span_id"}
"""Where a log's fields are in VictoriaLogs when its JSON line lacks them."""

TENANT = click.option("--tenant", type=TEXT,
                      help="The spec's tenant whose logs to read (default: log_store.tenant).")
"""The ``--tenant`` option of ``logs`` and ``export logs``."""

VMAUTH_URL_ENV = "THEODORE_OBS_VMAUTH_URL"
"""Environment variable overriding vmauth's base URL (default: the spec's port on 127.0.0.1)."""


def logsql(level: str | None = None, component: str | None = None, correlation_id: str | None = None,
           search: str | None = None, trace_id: str | None = None) -> str:
    """The LogsQL query for the filters (fields the OTLP ingestion sets); every user value is a
    quoted, escaped LogsQL string: a substring of the line or a field's exact value."""
    query = [ALL_APPS]
    if search:
        query.append(f"*{logsql_string(search)}*")
    if component:
        value = logsql_string(component)
        query.append("(" + " or ".join(f"{name}:={value}" for name in COMPONENT_FIELDS) + ")")
    if correlation_id:
        query.append(f"correlation_id:={logsql_string(correlation_id)}")
    if trace_id:
        query.append(f"trace_id:={logsql_string(trace_id)}")
    if level:
        query.append(f"severity_number:>={MIN_SEVERITY[level]}")
    return " ".join(query)


def log_store(ctx: Context, tenant: str | None = None) -> tuple[str, VictoriaLogs]:
    """The tenant's name and the log store's client for it (default: the spec's
    ``log_store.tenant``); exit 2 naming the spec's tenants when there is no such tenant."""
    name = ctx.spec["log_store"]["tenant"] if tenant is None else tenant
    if name not in ctx.spec["tenants"]:
        fail(f"--tenant: no tenant {name!r} in the spec (known: {', '.join(sorted(ctx.spec['tenants']))})",
             EXIT_BAD_INPUT)
    account_id, project_id = log_tenant(ctx.spec, name)
    return name, VictoriaLogs(ctx.backends.victorialogs, account_id, project_id)


def _token(token_file: Path | None, default: str) -> tuple[str, str]:
    """The token and where it came from: ``--token-file``, else the native stack's secret file
    ``default``; exit 2 saying what is wrong with the file."""
    path = token_file or state_root() / "secrets" / default
    try:
        return read_token(path), str(path)
    except TokenError as exc:
        where = "--token-file " if token_file else ""
        hint = "" if token_file else (" (`theodore-obs up` writes it for the native stack; "
                                      "elsewhere pass --token-file)")
        fail(f"{where}{exc}{hint}", EXIT_BAD_INPUT)


def reader(ctx: Context, tenant: str | None, audit: bool, token_file: Path | None,
           vmauth_url: str | None) -> tuple[str | None, VictoriaLogs]:
    """Whose logs ``logs`` reads (None: the audit trail) and through what: vmauth with the
    tenant's or the auditors' token, or the log store itself for the tenants without a token
    (``log_store.tenant`` when no ``--tenant`` is given, as always)."""
    if audit and tenant is not None:
        fail("--audit reads the audit trail with the auditors' token: leave out --tenant", EXIT_BAD_INPUT)
    if audit:
        name, file = None, ctx.spec["audit"]["reader_token_file"]
    else:
        name, store = log_store(ctx, tenant)
        file = ctx.spec["tenants"][name].get("token_file") if tenant is not None else None
        if file is None:
            if token_file is not None:
                fail(f"--token-file: tenant {name!r} has no token_file in the spec; its logs are read "
                     "from the log store itself", EXIT_BAD_INPUT)
            return name, store
    token, source = _token(token_file, file)
    url = vmauth_url or component("vmauth").base_url(ctx.spec["ports"], "127.0.0.1")
    return name, VmauthLogs(url, token, source)


def entry(record: dict[str, str]) -> dict[str, Any]:
    """One log in the documented shape; a JSON line (``_msg``) is parsed into ``fields``."""
    line = record.get("_msg", "")
    try:
        fields = json.loads(line)
    except ValueError:
        fields = None
    fields = fields if isinstance(fields, dict) else {"message": line}
    known = {key: fields.pop(key, None) for key in
             ["message", "level", "logger", "correlation_id", "trace_id", "span_id", "timestamp"]}
    for key in ["service", "environment"]:
        fields.pop(key, None)
    ns = time_ns(record["_time"])
    seconds_part, nanos = divmod(ns, 1_000_000_000)
    found = {key: known.get(key) or record.get(name) for key, name in RECORD_FIELDS.items()}
    return {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds_part)) + f".{nanos:09d}Z",
        "service": record.get("service.name"),
        "level": known["level"] or (record.get("severity_text") or "").lower() or None,
        "logger": found["logger"],
        "message": known["message"],
        "correlation_id": found["correlation_id"],
        "trace_id": found["trace_id"],
        "span_id": found["span_id"],
        "fields": fields,
    }


def fetch(store: VictoriaLogs, query: str, start_ns: int, end_ns: int | None,
          limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, oldest first."""
    return [entry(record) for record in store.query(query, start_ns, end_ns, limit)]


def text_line(e: dict[str, Any]) -> str:
    extra = f" cid={e['correlation_id']}" if e["correlation_id"] else ""
    return (f"{e['timestamp'][:23]}Z {(e['level'] or '-').upper():<5} {e['service'] or '-'} "
            f"{e['logger'] or '-'}: {e['message']}{extra}")


def follow(store: VictoriaLogs, query: str, start_ns: int, interval: float, max_lines: int | None,
           max_seconds: float | None) -> Iterator[dict[str, Any]]:
    """New entries as they arrive; stops after ``max_lines``/``max_seconds`` if set."""
    stop_at = None if max_seconds is None else time.monotonic() + max_seconds
    for count, record in enumerate(store.follow(query, start_ns, interval, stop_at), start=1):
        yield entry(record)
        if max_lines is not None and count >= max_lines:
            return


@click.command()
@click.option("--level", type=click.Choice(list(MIN_SEVERITY)), help="This level and above.")
@click.option("--component", type=TEXT, help="A service (theodore-demo), logger or component.")
@click.option("--correlation-id", type=TEXT, help="Only lines of this request.")
@SINCE
@click.option("--follow", "follow_", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--search", type=TEXT, help="Only lines containing this text.")
@TENANT
@click.option("--audit", is_flag=True,
              help="Read the audit trail (audit and security events) with the auditors' token.")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False),
              help="The token for vmauth of --tenant or --audit (default: the native stack's secret file).")
@click.option("--vmauth-url", envvar=VMAUTH_URL_ENV, callback=_url_option,
              help="vmauth base URL for --tenant and --audit (default: from the spec).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@output_file("--export", "export_path", help="Also write the lines as a JSON document to this file.")
@click.option("--limit", type=LIMIT, default=100, show_default=True, help="At most this many lines (newest).")
@click.option("--interval", type=SECONDS, default=1.0, hidden=True,
              help="How often --follow looks for new lines (seconds).")
@click.option("--max-lines", type=LIMIT, hidden=True, help="Stop --follow after this many lines.")
@click.option("--max-seconds", type=SECONDS, hidden=True, help="Stop --follow after this long.")
@operator_command
def logs(ctx: Context, level: str | None, component: str | None, correlation_id: str | None, since: str,
         follow_: bool, search: str | None, tenant: str | None, audit: bool, token_file: Path | None,
         vmauth_url: str | None, fmt: str, export_path: Path | None, limit: int, interval: float,
         max_lines: int | None, max_seconds: float | None) -> None:
    """Search and tail the apps' logs in VictoriaLogs (LogsQL), or the audit trail (--audit)."""
    tenant, store = reader(ctx, tenant, audit, token_file, vmauth_url)
    query = logsql(level, component, correlation_id, search)
    now_ns = time.time_ns()
    start_ns = now_ns - int(seconds(since) * 1e9)
    if follow_:
        for e in follow(store, query, start_ns, interval, max_lines, max_seconds):
            click.echo(json.dumps(e) if fmt == "json" else text_line(e))
        return
    entries = fetch(store, query, start_ns, now_ns, limit)
    document = {"query": query, "since": since, "tenant": tenant, "audit": audit, "count": len(entries),
                "entries": entries}
    if export_path:
        write_json(export_path, document)
    if fmt == "json":
        emit(document, "json")
    else:
        for e in entries:
            click.echo(text_line(e))
        if export_path:
            click.echo(f"wrote {len(entries)} lines to {export_path}", err=True)
