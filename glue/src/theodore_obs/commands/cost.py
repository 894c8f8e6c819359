"""``cost``: AI spend and tokens by provider, model and operation against the budget, with advice.

The series come from the distro's GenAI span processor (``theodore_telemetry.ai_cost``); the budget
from the spec (``ai.budgets``). Every number is a PromQL answer at one evaluation time.
"""

from __future__ import annotations

from typing import Any

import click
from theodore_catalogue import catalogued

from ..clients.prometheus import Prometheus
from ._common import (
    TIME_RANGES,
    Context,
    console,
    emit,
    escape,
    iso,
    make_table,
    operator_command,
    seconds,
)
from ._inputs import AT, at_or_now

AI_COST = catalogued("theodore_ai_cost_total", "counter")
AI_DURATION = catalogued("theodore_ai_operation_duration_seconds", "histogram")
AI_TOKENS = catalogued("theodore_ai_tokens_total", "counter")
COMPANIES_RESEARCHED = catalogued("theodore_companies_researched_total", "counter")
"""The series queried here, checked against the catalogue (name and type) at import."""
CALLS = f"{AI_DURATION}_count"
"""Calls are counted by the duration histogram's ``_count`` series."""
SUCCESS = 'success=~"(?i)true"'
"""The processor records ``success`` as a Python bool, which arrives as ``True``/``False``."""
GROWTH_WORTH_FLAGGING = 0.2
"""Token growth over the previous period above which an operation is called out."""
MODEL = ("provider", "model")
OPERATION = ("provider", "model", "operation")


def _by(prometheus: Prometheus, promql: str, labels: tuple[str, ...],
        at: float) -> dict[tuple[str, ...], float]:
    rows = prometheus.query(f"sum by ({', '.join(labels)}) ({promql})", at)
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in rows}


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def by_model(prometheus: Prometheus, window: str, at: float) -> list[dict[str, Any]]:
    cost = _by(prometheus, f"increase({AI_COST}[{window}])", MODEL, at)
    tokens = _by(prometheus, f"increase({AI_TOKENS}[{window}])", (*MODEL, "token_type"), at)
    calls = _by(prometheus, f"increase({CALLS}[{window}])", MODEL, at)
    good = _by(prometheus, f"increase({CALLS}{{{SUCCESS}}}[{window}])", MODEL, at)
    rows = []
    for key in sorted(set(cost) | set(calls)):
        spent, ok = cost.get(key, 0.0), good.get(key, 0.0)
        rows.append({"provider": key[0], "model": key[1], "cost_usd": spent,
                     "tokens_input": tokens.get((*key, "input"), 0.0),
                     "tokens_output": tokens.get((*key, "output"), 0.0),
                     "calls": calls.get(key, 0.0), "successful_calls": ok,
                     "cost_per_successful_call_usd": _ratio(spent, ok)})
    return sorted(rows, key=lambda r: -r["cost_usd"])


def by_operation(prometheus: Prometheus, window: str, at: float) -> list[dict[str, Any]]:
    cost = _by(prometheus, f"increase({AI_COST}[{window}])", OPERATION, at)
    failed = _by(prometheus, f"increase({AI_COST}{{success!~\"(?i)true\"}}[{window}])", OPERATION, at)
    tokens = _by(prometheus, f"increase({AI_TOKENS}[{window}])", OPERATION, at)
    before = _by(prometheus, f"increase({AI_TOKENS}[{window}] offset {window})", OPERATION, at)
    rows = []
    for key in sorted(set(cost) | set(tokens)):
        now, then = tokens.get(key, 0.0), before.get(key)
        rows.append({"provider": key[0], "model": key[1], "operation": key[2],
                     "cost_usd": cost.get(key, 0.0), "failed_cost_usd": failed.get(key, 0.0),
                     "tokens": now, "tokens_previous_period": then,
                     "token_growth_ratio": (now - then) / then if then else None})
    return sorted(rows, key=lambda r: -r["cost_usd"])


def budget(prometheus: Prometheus, budgets: dict[str, float], total: float, window_s: float,
           at: float) -> dict[str, Any]:
    last_hour = prometheus.scalar(f"sum(increase({AI_COST}[1h]))", at)
    last_day = prometheus.scalar(f"sum(increase({AI_COST}[1d]))", at)
    hourly, daily = budgets.get("hourly_usd"), budgets.get("daily_usd")
    range_budget = (daily * window_s / 86400 if daily and window_s >= 86400
                    else hourly * window_s / 3600 if hourly else None)
    return {"hourly_usd": hourly, "daily_usd": daily, "last_hour_usd": last_hour, "last_day_usd": last_day,
            "hourly_used_ratio": _ratio(last_hour, hourly or 0),
            "daily_used_ratio": _ratio(last_day, daily or 0),
            "range_budget_usd": range_budget, "range_used_ratio": _ratio(total, range_budget or 0),
            "projected_daily_usd": total / window_s * 86400}


def recommendations(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Advice each backed by the report's own numbers; nothing is said without data behind it."""
    found = []
    priced = [m for m in report["by_model"] if m["cost_per_successful_call_usd"]]  # free models: no factor
    if len(priced) >= 2:
        worst, best = (max(priced, key=lambda m: m["cost_per_successful_call_usd"]),
                       min(priced, key=lambda m: m["cost_per_successful_call_usd"]))
        factor = worst["cost_per_successful_call_usd"] / best["cost_per_successful_call_usd"]
        ops = sorted({o["operation"] for o in report["by_operation"] if o["model"] == worst["model"]})
        found.append({"kind": "costliest_model", "model": worst["model"], "compared_to": best["model"],
                      "factor": factor, "message":
                      f"{worst['provider']}/{worst['model']} costs "
                      f"${worst['cost_per_successful_call_usd']:.6f} "
                      f"per successful call, {factor:.1f}x {best['model']} "
                      f"(${best['cost_per_successful_call_usd']:.6f}); try {best['model']} for "
                      f"{', '.join(ops)}"})
    for op in report["by_operation"]:
        ratio = op["token_growth_ratio"]
        if ratio is not None and ratio > GROWTH_WORTH_FLAGGING:
            found.append({"kind": "token_growth", "operation": op["operation"], "model": op["model"],
                          "growth_ratio": ratio, "message":
                          f"{op['operation']} on {op['model']} used {op['tokens']:.0f} tokens, "
                          f"up {ratio:.0%} "
                          f"on the previous {report['time_range']} ({op['tokens_previous_period']:.0f}): "
                          "check prompt size and retries"})
        if op["failed_cost_usd"] > 0:
            share = op["failed_cost_usd"] / op["cost_usd"]
            found.append({"kind": "failed_spend", "operation": op["operation"], "model": op["model"],
                          "failed_cost_usd": op["failed_cost_usd"], "message":
                          f"${op['failed_cost_usd']:.6f} ({share:.0%}) of {op['operation']} on {op['model']} "
                          "went to failed calls: fix their cause before retrying"})
    plan = report["budget"]
    if plan["daily_usd"] and plan["projected_daily_usd"] > plan["daily_usd"]:
        top = report["by_operation"][0] if report["by_operation"] else None
        found.append({"kind": "over_budget", "projected_daily_usd": plan["projected_daily_usd"], "message":
                      f"at this rate AI spend reaches ${plan['projected_daily_usd']:.2f}/day, over the "
                      f"${plan['daily_usd']:.2f} daily budget"
                      + (f"; the biggest spender is {top['operation']} on {top['model']}" if top else "")})
    return found


def cost_report(prometheus: Prometheus, budgets: dict[str, float], window: str, at: float) -> dict[str, Any]:
    """The ``cost --format json`` document (fields documented in the README)."""
    models, operations = by_model(prometheus, window, at), by_operation(prometheus, window, at)
    total = sum(m["cost_usd"] for m in models)
    researched = prometheus.scalar(f"sum(increase({COMPANIES_RESEARCHED}{{{SUCCESS}}}[{window}]))", at)
    report = {"time_range": window, "at": iso(at), "at_unix": at, "total_usd": total,
              "total_tokens": sum(m["tokens_input"] + m["tokens_output"] for m in models),
              "successful_researches": researched,
              "cost_per_successful_research_usd": _ratio(total, researched),
              "by_model": models, "by_operation": operations,
              "budget": budget(prometheus, budgets, total, seconds(window), at)}
    report["recommendations"] = recommendations(report)
    return report


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}" if value < 1 else f"${value:,.2f}"


def _print(report: dict[str, Any]) -> None:
    out = console()
    out.print(f"[bold]AI spend over the last {report['time_range']}[/] (at {report['at']}): "
              f"{_usd(report['total_usd'])}, {report['total_tokens']:.0f} tokens, "
              f"{_usd(report['cost_per_successful_research_usd'])} per successful research")
    money = ("cost", "input tokens", "output tokens", "calls", "ok", "$/ok call")
    models = make_table("By model", ["provider", "model", *money], numeric=money)
    for m in report["by_model"]:
        models.add_row(m["provider"], m["model"], _usd(m["cost_usd"]), f"{m['tokens_input']:.0f}",
                       f"{m['tokens_output']:.0f}", f"{m['calls']:.0f}", f"{m['successful_calls']:.0f}",
                       _usd(m["cost_per_successful_call_usd"]))
    out.print(models)
    amounts = ("cost", "tokens", "previous period", "growth")
    ops = make_table("By operation", ["provider", "model", "operation", *amounts], numeric=amounts)
    for o in report["by_operation"]:
        growth = "-" if o["token_growth_ratio"] is None else f"{o['token_growth_ratio']:+.0%}"
        before = "-" if o["tokens_previous_period"] is None else f"{o['tokens_previous_period']:.0f}"
        ops.add_row(o["provider"], o["model"], o["operation"], _usd(o["cost_usd"]), f"{o['tokens']:.0f}",
                    before, growth)
    out.print(ops)
    b = report["budget"]
    out.print(f"budget: last hour {_usd(b['last_hour_usd'])} of {_usd(b['hourly_usd'])}, last day "
              f"{_usd(b['last_day_usd'])} of {_usd(b['daily_usd'])}, "
              f"projected {_usd(b['projected_daily_usd'])}/day")
    quiet = [{"message": "no recommendations: nothing stands out in this range"}]
    for r in report["recommendations"] or quiet:
        out.print(f"• {escape(r['message'])}")


@click.command()
@click.option("--time-range", type=click.Choice(TIME_RANGES), default="24h", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@AT
@operator_command
def cost(ctx: Context, time_range: str, fmt: str, at_text: str | None) -> None:
    """AI spend and tokens by provider, model and operation, against the budget, with advice."""
    at = at_or_now(at_text)
    report = cost_report(Prometheus(ctx.backends.prometheus), ctx.spec.get("ai", {}).get("budgets", {}),
                         time_range, at)
    if fmt == "json":
        emit(report, "json")
    else:
        _print(report)
