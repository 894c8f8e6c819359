"""``health``: readiness of every stack component and of each app's health endpoints."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click

from ..endpoints import Endpoint, probe
from ..spec import observed_services
from ._common import EXIT_FAILED, Context, console, emit, make_table, operator_command
from .status import component_endpoints

APP_PATHS = {"ready": "/readyz", "status": "/status"}
"""Siblings of an app's ``health_path`` that ``telemetry.health`` serves (absent → not reported)."""


def _get_json(url: str) -> tuple[int | None, Any]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 (spec's loopback URLs)
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (OSError, ValueError):
        return None, None


def app_details(base: str) -> dict[str, Any]:
    """Readiness (failing checks) and per-check status of an app, when it serves them."""
    found: dict[str, Any] = {}
    code, body = _get_json(base + APP_PATHS["ready"])
    if code in (200, 503) and isinstance(body, dict):
        found["ready"] = code == 200
        found["failing"] = body.get("failing", [])
    code, body = _get_json(base + APP_PATHS["status"])
    if code == 200 and isinstance(body, dict) and "checks" in body:
        found["checks"] = [{"name": c["name"], "healthy": c["healthy"], "critical": c.get("critical"),
                            "detail": c.get("detail"), "latency_ms": c.get("latency_ms")}
                           for c in body["checks"]]
    return found


def _check(endpoint: Endpoint, kind: str, required: bool, app_base: str | None) -> dict[str, Any]:
    health = probe(endpoint, timeout=3)
    row = {"component": endpoint.component, "kind": kind, "required": required, "url": endpoint.ready_url,
           "healthy": health.healthy, "detail": health.detail, "latency_ms": health.latency_ms}
    if app_base and health.healthy:
        row.update(app_details(app_base))
        row["healthy"] = row.get("ready", True)
    return row


def health_report(ctx: Context) -> dict[str, Any]:
    """The ``health --format json`` document (fields documented in the README)."""
    apps = {name: f"http://127.0.0.1:{svc['port']}" for name, svc in observed_services(ctx.spec).items()}
    jobs = [(e, "app" if e.component in apps else "stack", True, apps.get(e.component))
            for e in component_endpoints(ctx)]
    jobs.append((Endpoint("grafana", f"{ctx.backends.grafana}/api/health"), "stack", False, None))
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        rows = list(pool.map(lambda job: _check(*job), jobs))
    return {"healthy": all(r["healthy"] for r in rows if r["required"]), "components": rows}


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@operator_command
def health(ctx: Context, fmt: str) -> None:
    """Readiness of every component and app; exit 1 when a required one is not ready."""
    report = health_report(ctx)
    if fmt == "json":
        emit(report, "json")
    else:
        table = make_table("Health", ["component", "kind", "state", "latency", "detail"],
                           numeric=("latency",))
        for r in report["components"]:
            state = "[green]ready[/]" if r["healthy"] else ("[red]NOT READY[/]" if r["required"]
                                                           else "[yellow]absent (optional)[/]")
            detail = r["detail"]
            if r.get("failing"):
                detail += "; failing: " + ", ".join(r["failing"])
            if r.get("checks"):
                detail += "; checks: " + ", ".join(f"{c['name']} {'ok' if c['healthy'] else 'FAIL'}"
                                                   for c in r["checks"])
            table.add_row(r["component"], r["kind"], state, f"{r['latency_ms']:.1f}ms", detail)
        console().print(table)
    if not report["healthy"]:
        sys.exit(EXIT_FAILED)
