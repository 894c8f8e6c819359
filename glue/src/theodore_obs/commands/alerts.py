"""``alerts``: list firing/pending alerts, show where a label set routes, manage silences."""

from __future__ import annotations

import getpass
from datetime import timedelta
from typing import Any

import click
import yaml

from ..clients.alertmanager import Alertmanager, label_name, matcher_text, parse_matcher, silence_id
from ..clients.prometheus import Prometheus
from ..clients.victorialogs import VictoriaLogs
from ..spec import log_tenant
from ._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    Context,
    console,
    emit,
    fail,
    make_table,
    operator_command,
    seconds,
)
from ._inputs import TEXT, checked, duration
from .alert_list import active_alerts
from .incident import Selector, acknowledge, query_matcher, resolve
from .incident_timeline import timeline

FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                      show_default=True)


@click.group(invoke_without_command=True)
@click.pass_context
def alerts(click_ctx: click.Context) -> None:
    """Firing and pending alerts (the default), routing, silences, and the incident workflow:
    ack, resolve, timeline."""
    if click_ctx.invoked_subcommand is None:
        # A context of its own parses no arguments, so `list`'s options still read their
        # environment variables (THEODORE_OBS_SPEC, THEODORE_OBS_*_URL) and run their checks.
        with list_alerts.make_context("list", [], parent=click_ctx) as list_ctx:
            list_alerts.invoke(list_ctx)


@alerts.command("list")
@click.option("--state", type=click.Choice(["firing", "pending", "suppressed", "all"]), default="all",
              show_default=True)
@FORMAT
@operator_command
def list_alerts(ctx: Context, state: str, fmt: str) -> None:
    """Alerts Alertmanager holds (firing, suppressed) and Prometheus's pending ones."""
    found = [a for a in active_alerts(Prometheus(ctx.backends.prometheus),
                                      Alertmanager(ctx.backends.alertmanager))
             if state in ("all", a["state"])]
    if fmt == "json":
        emit({"count": len(found), "alerts": found}, "json")
        return
    table = make_table(f"Alerts ({len(found)})", ["alert", "state", "severity", "since", "labels", "summary"])
    for a in found:
        labels = ", ".join(f"{k}={v}" for k, v in a["labels"].items() if k not in ("alertname", "severity"))
        state = f"{a['state']} (acked by {a['acked_by']})" if a["acked_by"] else a["state"]
        table.add_row(a["name"], state, a["severity"] or "-", a["since"] or "-", labels,
                      a["summary"] or "")
    console().print(table)


def _labels(pairs: tuple[str, ...]) -> dict[str, str]:
    """``NAME=VALUE`` pairs as labels; a name must be a plain label name (never an amtool flag)."""
    labels = {}
    for pair in pairs:
        name, found, value = pair.partition("=")
        if not found:
            fail(f"label {pair!r}: expected NAME=VALUE", EXIT_BAD_INPUT)
        try:
            labels[label_name(name)] = value
        except ValueError as exc:
            fail(f"label {pair!r}: {exc}", EXIT_BAD_INPUT)
    return labels


def integrations(config_text: str) -> dict[str, list[str]]:
    """Receiver name → its integrations (``slack``, ``pagerduty``, …) in an Alertmanager config
    (nothing for a config that is not YAML or has no receivers list)."""
    try:
        config = yaml.safe_load(config_text)
    except yaml.YAMLError:
        return {}
    receivers = config.get("receivers") if isinstance(config, dict) else None
    if not isinstance(receivers, list):
        return {}
    return {str(r.get("name")): sorted(key.removesuffix("_configs") for key in map(str, r)
                                       if key.endswith("_configs"))
            for r in receivers if isinstance(r, dict)}


@alerts.command()
@click.argument("labels", nargs=-1, required=True, type=TEXT)
@FORMAT
@operator_command
def routes(ctx: Context, labels: tuple[str, ...], fmt: str) -> None:
    """Receivers an alert with LABELS (severity=critical service=api) is routed to."""
    alertmanager = Alertmanager(ctx.backends.alertmanager)
    wanted = _labels(labels)
    config = alertmanager.config()
    try:
        names = alertmanager.receivers_for(wanted, config)
    except RuntimeError as exc:
        fail(str(exc), EXIT_FAILED)
    kinds = integrations(config)
    receivers = [{"name": n, "integrations": kinds.get(n, [])} for n in names]
    if fmt == "json":
        emit({"labels": wanted, "receivers": receivers}, "json")
        return
    for r in receivers:
        click.echo(f"{r['name']}: {', '.join(r['integrations']) or '(no integrations: dropped)'}")


@alerts.group()
def silence() -> None:
    """Create, list and expire silences (Alertmanager API v2)."""


def _silence_row(s: dict[str, Any]) -> dict[str, Any]:
    matchers = [matcher_text(m) for m in s["matchers"]]
    return {"id": s["id"], "state": s["status"]["state"], "matchers": matchers, "starts_at": s["startsAt"],
            "ends_at": s["endsAt"], "created_by": s["createdBy"], "comment": s["comment"]}


MATCHER_HELP = "NAME=VALUE, NAME!=VALUE, NAME=~RE or NAME!~RE (repeat for several)."
AUTHOR = click.option("--author", type=TEXT, default=getpass.getuser, show_default="current user")
ALERT = click.argument("alert", type=TEXT)
ONLY = click.option("--matcher", "-m", "matchers", multiple=True, type=TEXT, callback=checked(query_matcher),
                    help="Only the alerts whose labels also match: " + MATCHER_HELP)


@silence.command("create")
@click.option("--matcher", "-m", "matchers", multiple=True, required=True, type=TEXT,
              callback=checked(parse_matcher), help=MATCHER_HELP)
@click.option("--duration", default="2h", show_default=True, callback=duration, help="How long: 30m, 2h, 1d.")
@click.option("--comment", required=True, type=TEXT, help="Why (shown to everyone who sees the silence).")
@AUTHOR
@FORMAT
@operator_command
def create_silence(ctx: Context, matchers: tuple[dict[str, Any], ...], duration: str, comment: str,
                   author: str, fmt: str) -> None:
    """Silence alerts matching every MATCHER for DURATION."""
    created = Alertmanager(ctx.backends.alertmanager).create_silence(
        list(matchers), timedelta(seconds=seconds(duration)), comment, author)
    if fmt == "json":
        emit({"silence_id": created}, "json")
    else:
        click.echo(f"created silence {created} for {duration}")


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@FORMAT
@operator_command
def list_silences(ctx: Context, show_all: bool, fmt: str) -> None:
    """Active and pending silences."""
    found = [_silence_row(s) for s in Alertmanager(ctx.backends.alertmanager).silences()
             if show_all or s["status"]["state"] != "expired"]
    if fmt == "json":
        emit({"count": len(found), "silences": found}, "json")
        return
    table = make_table(f"Silences ({len(found)})", ["id", "state", "matchers", "ends at", "by", "comment"])
    for s in found:
        table.add_row(s["id"], s["state"], " ".join(s["matchers"]), s["ends_at"], s["created_by"],
                      s["comment"])
    console().print(table)


@silence.command("expire")
@click.argument("silence", metavar="SILENCE_ID", type=TEXT, callback=checked(silence_id))
@operator_command
def expire_silence(ctx: Context, silence: str) -> None:
    """End the silence SILENCE_ID (a UUID) now."""
    Alertmanager(ctx.backends.alertmanager).expire_silence(silence)
    click.echo(f"expired silence {silence}")


@alerts.command()
@ALERT
@ONLY
@click.option("--duration", default="1h", show_default=True, callback=duration,
              help="How long notifications stay quiet: 30m, 2h.")
@click.option("--comment", default="", type=TEXT, help="What you are doing about it.")
@AUTHOR
@FORMAT
@operator_command
def ack(ctx: Context, alert: str, matchers: tuple[dict[str, Any], ...], duration: str, comment: str,
        author: str, fmt: str) -> None:
    """Acknowledge ALERT (an alertname or a fingerprint): an ``ack:`` silence on each firing
    alert it names, so its notifications stop repeating while you work on it."""
    done = acknowledge(Alertmanager(ctx.backends.alertmanager), Selector(alert, matchers),
                       timedelta(seconds=seconds(duration)), comment, author)
    if fmt == "json":
        emit({"acked": [{"labels": d.target.labels, "fingerprint": d.target.fingerprint,
                         "silence_id": d.silence_id, "renewed": d.renewed} for d in done]}, "json")
        return
    for d in done:
        click.echo(f"{'renewed ack' if d.renewed else 'acked'} {_described(d.target.labels)} for {duration} "
                   f"as {author} (silence {d.silence_id})")


@alerts.command("resolve")
@ALERT
@ONLY
@click.option("--comment", default="", type=TEXT, help="What fixed it (in the resolved notification).")
@AUTHOR
@FORMAT
@operator_command
def resolve_alert(ctx: Context, alert: str, matchers: tuple[dict[str, Any], ...], comment: str, author: str,
                  fmt: str) -> None:
    """Resolve ALERT (an alertname or a fingerprint): end its acks and the alert itself, so
    every receiver gets the resolved notification (PagerDuty closes the incident). Refused
    while its rule still fires in Prometheus or vmalert."""
    evaluators = {"Prometheus": Prometheus(ctx.backends.prometheus),
                  "vmalert": Prometheus(ctx.backends.vmalert)}
    done = resolve(Alertmanager(ctx.backends.alertmanager), evaluators, Selector(alert, matchers), author,
                   comment)
    if fmt == "json":
        emit({"resolved": [{"labels": t.labels, "was": t.state} for t in done.resolved],
              "expired_silences": done.expired, "notes": done.notes}, "json")
        return
    for t in done.resolved:
        click.echo(f"resolved {_described(t.labels)} (was {t.state})")
    if done.expired:
        click.echo(f"ended ack silences: {', '.join(done.expired)}")
    for note in done.notes:
        click.echo(f"note: {note}")


@alerts.command("timeline")
@ALERT
@ONLY
@click.option("--since", default="24h", show_default=True, callback=duration,
              help="How far back: 2h, 1d, 7d.")
@FORMAT
@operator_command
def alert_timeline(ctx: Context, alert: str, matchers: tuple[dict[str, Any], ...], since: str,
                   fmt: str) -> None:
    """ALERT's incident in time order: when it fired, who was notified through which receiver,
    acks and silences, resolution."""
    logs = VictoriaLogs(ctx.backends.victorialogs, *log_tenant(ctx.spec))
    story = timeline(Selector(alert, matchers), Alertmanager(ctx.backends.alertmanager),
                     Prometheus(ctx.backends.prometheus), logs, seconds(since))
    if fmt == "json":
        emit({"alert": alert, "since": since, "events": [e.row() for e in story.events],
              "pagerduty_dedup_keys": story.dedup_keys, "notes": story.notes}, "json")
        return
    table = make_table(f"Timeline of {alert} ({since})", ["time", "event", "detail", "source"])
    for e in story.events:
        table.add_row(e.row()["at"], e.event, e.detail, e.source)
    console().print(table)
    for receiver, key in story.dedup_keys.items():
        click.echo(f"PagerDuty dedup_key ({receiver}): {key}")
    for note in story.notes:
        click.echo(f"note: {note}")


def _described(labels: dict[str, str]) -> str:
    rest = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    return f"{labels.get('alertname', '?')}{{{rest}}}"
