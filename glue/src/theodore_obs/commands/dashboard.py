"""``dashboard``: print (or open) Grafana's URL, or a dashboard's by title or uid."""

from __future__ import annotations

import webbrowser

import click

from ..clients._http import mask_url, path_segment
from ..clients.grafana import Grafana
from ._common import EXIT_FAILED, Context, emit, fail, operator_command
from ._inputs import TEXT


@click.command()
@click.argument("title", required=False, type=TEXT)
@click.option("--uid", type=TEXT, help="The dashboard's uid (no Grafana API call needed).")
@click.option("--open", "open_", is_flag=True, help="Open the URL in a browser too.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@operator_command
def dashboard(ctx: Context, title: str | None, uid: str | None, open_: bool, fmt: str) -> None:
    """Grafana's URL; with TITLE, the dashboards whose title contains it (asks Grafana).
    A password in --grafana-url is printed as ``***`` (``--open`` opens the real URL)."""
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
    if fmt == "json":
        emit({"dashboards": found}, "json")
    else:
        for d in found:
            click.echo(d["url"] if d["title"] is None else f"{d['url']}  {d['title']}")
