"""``health``: readiness of every stack component and of each app's health endpoints."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click

from ..clients._http import get_json, mask_url, shape_error
from ..clients.shapes import BOOL, STR, arr, obj
from ..endpoints import Endpoint, probe
from ..spec import observed_services
from ._common import EXIT_FAILED, Context, console, emit, fail, make_table, markup, operator_command
from .status import component_endpoints

APP_PATHS = {"ready": "/readyz", "status": "/status"}
"""Siblings of an app's ``health_path`` that ``telemetry.health`` serves (absent → not reported)."""
READY = obj(optional={"failing": arr(STR)})
STATUS = obj(checks=arr(obj(name=STR, healthy=BOOL)))


def app_details(base: str) -> dict[str, Any]:
    """Readiness (failing checks) and per-check status of an app, when it serves them."""
    found: dict[str, Any] = {}
    code, body = get_json(base + APP_PATHS["ready"])
    if code in (200, 503) and shape_error(body, READY) is None:
        found["ready"] = code == 200
        found["failing"] = body.get("failing", [])
    code, body = get_json(base + APP_PATHS["status"])
    if code == 200 and shape_error(body, STATUS) is None:
        found["checks"] = [{"name": c["name"], "healthy": c["healthy"], "critical": c.get("critical"),
                            "detail": c.get("detail"), "latency_ms": c.get("latency_ms")}
                           for c in body["checks"]]
    return found


def _check(endpoint: Endpoint, kind: str, required: bool, app_base: str | None) -> dict[str, Any]:
    health = probe(endpoint, timeout=3)
    row = {"component": endpoint.component, "kind": kind, "required": required,
           "url": mask_url(endpoint.ready_url),
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
            state = markup("[green]ready[/]" if r["healthy"] else ("[red]NOT READY[/]" if r["required"]
                                                                  else "[yellow]absent (optional)[/]"))
            detail = r["detail"]
            if r.get("failing"):
                detail += "; failing: " + ", ".join(r["failing"])
            if r.get("checks"):
                detail += "; checks: " + ", ".join(f"{c['name']} {'ok' if c['healthy'] else 'FAIL'}"
                                                   for c in r["checks"])
            table.add_row(r["component"], r["kind"], state, f"{r['latency_ms']:.1f}ms", detail)
        console().print(table)
    if not report["healthy"]:
        down = [r["component"] for r in report["components"] if r["required"] and not r["healthy"]]
        fail(f"not ready: {', '.join(down)}", EXIT_FAILED)
