"""``dashboard``: print (or open) where each UI is (Grafana first), or a dashboard's URL by title or uid."""

from __future__ import annotations

import webbrowser

import click

from ..clients._http import mask_url, path_segment
from ..clients.grafana import Grafana
from ..clients.victorialogs import UI_PATH
from ._common import EXIT_FAILED, Context, emit, fail, operator_command
from ._inputs import TEXT


def user_interfaces(ctx: Context) -> list[dict[str, str]]:
    """Each UI of the stack and its URL (passwords masked): Grafana, Jaeger's, Prometheus's,
    Alertmanager's and VictoriaLogs' own (``/select/vmui/``)."""
    found = ctx.backends
    return [{"name": name, "url": mask_url(url)} for name, url in [
        ("Grafana", found.grafana), ("Jaeger UI", found.jaeger), ("Prometheus", found.prometheus),
        ("Alertmanager", found.alertmanager), ("VictoriaLogs", found.victorialogs + UI_PATH)]]


@click.command()
@click.argument("title", required=False, type=TEXT)
@click.option("--uid", type=TEXT, help="The dashboard's uid (no Grafana API call needed).")
@click.option("--open", "open_", is_flag=True, help="Open the URL in a browser too.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@operator_command
def dashboard(ctx: Context, title: str | None, uid: str | None, open_: bool, fmt: str) -> None:
    """Where each UI is (Grafana, Jaeger, Prometheus, Alertmanager, VictoriaLogs); with TITLE,
    the dashboards whose title contains it (asks Grafana), with --uid that dashboard's URL.
    A password in a URL is printed as ``***`` (``--open`` opens the real Grafana URL)."""
    base = ctx.backends.grafana
    if title:
        found = [{"title": d["title"], "uid": d["uid"], "url": base + d["url"]}
                 for d in Grafana.from_spec(base, ctx.spec).search(title)]
        if not found:
            fail(f"Grafana at {mask_url(base)} has no dashboard titled like {title!r}", EXIT_FAILED)
    else:
        found = [{"title": None, "uid": uid, "url": f"{base}/d/{path_segment(uid)}" if uid else base}]
    if open_:
        webbrowser.open(found[0]["url"])
    found = [{**d, "url": mask_url(d["url"])} for d in found]
    interfaces = [] if title or uid else user_interfaces(ctx)
    if fmt == "json":
        emit({"dashboards": found, **({"interfaces": interfaces} if interfaces else {})}, "json")
    elif interfaces:
        for ui in interfaces:
            click.echo(f"{ui['url']}  {ui['name']}")
    else:
        for d in found:
            click.echo(d["url"] if d["title"] is None else f"{d['url']}  {d['title']}")
