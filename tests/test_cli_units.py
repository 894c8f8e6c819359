"""The operator CLI without a stack: options, addresses, error lines, advice from numbers."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from theodore_obs.cli import main
from theodore_obs.clients import backends_from_spec
from theodore_obs.clients.alertmanager import parse_matcher
from theodore_obs.clients.victorialogs import time_ns
from theodore_obs.commands import COMMANDS, observability
from theodore_obs.commands._common import seconds, write_json
from theodore_obs.commands.cost import recommendations
from theodore_obs.commands.logs import entry, logsql
from theodore_obs.commands.traces import CORRELATION_ATTRIBUTE
from theodore_telemetry.correlation import SPAN_ATTRIBUTE

from .conftest import load_stack, run_cli

CLOSED = "http://127.0.0.1:9"


def test_every_seed_command_is_on_theodore_obs_and_the_mountable_group() -> None:
    seed = {"status", "metrics", "logs", "traces", "alerts", "health", "dashboard", "export"}
    assert seed | {"cost", "profile"} == {c.name for c in COMMANDS} == set(observability.commands)
    help_text = run_cli("--help").stdout
    for name in [*seed, "cost", "profile", "render", "validate", "up", "down", "bench", "tools"]:
        assert f"  {name} " in help_text, name


def test_bench_without_the_dev_package_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in a `pip install theodore-observability`; submodules too, which collection may have imported.
    for name in ["theodore_bench", *(m for m in sys.modules if m.startswith("theodore_bench."))]:
        monkeypatch.setitem(sys.modules, name, None)
    result = CliRunner().invoke(main, ["bench", "--runs", "1"])
    assert result.exit_code == 2, result.output
    assert result.output == ("error: `bench` needs the dev-only package theodore_bench: in a checkout, "
                             "`make deps` (or `pip install -e bench/`)\n")


def test_theodore_cli_can_mount_the_group() -> None:
    @click.group()
    def theodore() -> None:
        """Stand-in for Theodore's own CLI."""

    theodore.add_command(observability)
    result = CliRunner().invoke(theodore, ["observability", "dashboard", "--uid", "svc-overview"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{load_stack()['grafana']['url']}/d/svc-overview\n"


def test_seed_options_exist_with_their_choices() -> None:
    def choices(command: str, option: str) -> list[str]:
        (param,) = [p for p in observability.commands[command].params if p.name == option]
        return list(param.type.choices)

    assert choices("status", "fmt") == ["table", "json", "yaml"]
    assert choices("metrics", "fmt") == ["table", "json", "prometheus"]
    assert choices("metrics", "time_range") == ["1h", "6h", "24h", "7d"]
    assert choices("logs", "level") == ["debug", "info", "warn", "error"]
    assert choices("logs", "fmt") == ["text", "json"]
    for command, options in {"status": ["component", "detailed", "alerts_only"],
                             "metrics": ["metric_name", "component", "live", "export_path"],
                             "logs": ["component", "correlation_id", "since", "follow_", "search", "export_path",
                                      "level", "fmt", "limit", "tenant"],
                             "export": ["time_range", "output", "metric_names", "component", "correlation_id",
                                        "limit", "tenant"],
                             }.items():
        assert set(options) <= {p.name for p in observability.commands[command].params}


def test_addresses_come_from_the_spec_and_overrides_win() -> None:
    spec = load_stack()
    found = backends_from_spec(spec, {"victorialogs": "http://logs.example:9428/", "jaeger": None})
    assert found.prometheus == f"http://127.0.0.1:{spec['ports']['prometheus']}"
    assert found.jaeger == f"http://127.0.0.1:{spec['ports']['jaeger_query']}"
    assert found.victorialogs == "http://logs.example:9428"
    assert backends_from_spec(spec).victorialogs == f"http://127.0.0.1:{spec['ports']['victorialogs']}"
    assert found.grafana == spec["grafana"]["url"]


def test_an_environment_variable_overrides_an_address() -> None:
    result = run_cli("logs", env={"THEODORE_OBS_VICTORIALOGS_URL": CLOSED})
    assert result.returncode == 3
    assert result.stderr == (f"error: VictoriaLogs at {CLOSED} is not answering — start the stack with `make up` "
                             "(or `theodore-obs up`)\n")


def test_grafana_down_names_where_grafana_runs() -> None:
    result = run_cli("dashboard", "Overview", "--grafana-url", CLOSED)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: Grafana at {CLOSED} is not answering")
    assert "native runtime runs no Grafana" in result.stderr


def test_a_url_without_scheme_is_bad_input_in_one_line() -> None:
    result = run_cli("traces", "--service", "x", "--jaeger-url", "127.0.0.1:16686")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "must start with http://" in result.stderr


def test_a_backend_that_hangs_is_named_with_the_wait() -> None:
    """A listener that accepts and never answers: the timeout, not a traceback."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        address = f"http://127.0.0.1:{hung.getsockname()[1]}"
        result = run_cli("cost", "--prometheus-url", address, env={"THEODORE_OBS_HTTP_TIMEOUT": "1"})
    assert result.returncode == 3
    assert result.stderr == (f"error: Prometheus at {address} did not answer within 1s — it may be overloaded "
                             "(wait longer with THEODORE_OBS_HTTP_TIMEOUT)\n")


def test_bad_spec_and_bad_durations_exit_2(tmp_path: Path) -> None:
    result = run_cli("status", "--spec", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "missing.yaml" in result.stderr
    result = run_cli("logs", "--since", "yesterday", "--victorialogs-url", CLOSED)
    assert result.returncode == 2 and "'yesterday'" in result.stderr
    result = run_cli("traces", "--min-duration", "slow", "--jaeger-url", CLOSED)
    assert result.returncode == 2 and "--min-duration" in result.stderr


def test_durations() -> None:
    assert seconds("30m") == 1800 and seconds("1h30m") == 5400 and seconds("7d") == 604800
    for bad in ["", "1x", "h", "1h 30"]:
        with pytest.raises(click.BadParameter):
            seconds(bad)


def test_matchers() -> None:
    assert parse_matcher("severity=critical") == {"name": "severity", "value": "critical",
                                                  "isRegex": False, "isEqual": True}
    assert parse_matcher("env!=prod")["isEqual"] is False
    assert parse_matcher('job=~"api|web"') == {"name": "job", "value": "api|web", "isRegex": True, "isEqual": True}
    assert parse_matcher("job!~api.*") == {"name": "job", "value": "api.*", "isRegex": True, "isEqual": False}
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_matcher("=x")


def test_logsql_of_every_filter() -> None:
    assert logsql() == '{service.name=~".+"}'
    assert logsql("warn", "theodore-demo", "abc", 'say "hi"', "0af7651916cd43dd8448eb211c80319c") == (
        '{service.name=~".+"} *"say \\"hi\\""*'
        ' (service.name:="theodore-demo" or scope.name:="theodore-demo" or component:="theodore-demo")'
        ' correlation_id:="abc" trace_id:="0af7651916cd43dd8448eb211c80319c" severity_number:>=13')


def test_times_of_victorialogs_in_nanoseconds() -> None:
    assert time_ns("2026-12-02T05:17:14.123456789Z") == 1_796_188_634_123_456_789
    assert time_ns("2026-12-02T05:17:14.1Z") == 1_796_188_634_100_000_000
    assert time_ns("2026-12-02T05:17:14Z") == 1_796_188_634_000_000_000
    for bad in ["2026-12-02T05:17:14+01:00", "2026-12-02 05:17:14Z", "1796188634"]:
        with pytest.raises(ValueError, match="RFC 3339"):
            time_ns(bad)


def test_a_log_record_becomes_an_entry() -> None:
    line = '{"message": "research done", "level": "info", "logger": "theodore_demo", "company": "acme", "service": "x"}'
    found = entry({"_time": "2026-12-02T05:17:14.5Z", "_msg": line, "service.name": "theodore-demo",
                   "scope.name": "otel-scope", "severity_text": "INFO", "correlation_id": "cid-1",
                   "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "8448eb211c80319c"})
    assert found == {"timestamp": "2026-12-02T05:17:14.500000000Z", "service": "theodore-demo", "level": "info",
                     "logger": "theodore_demo", "message": "research done", "correlation_id": "cid-1",
                     "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "8448eb211c80319c",
                     "fields": {"company": "acme"}}
    plain = entry({"_time": "2026-12-02T05:17:14Z", "_msg": "not json", "severity_text": "ERROR",
                   "scope.name": "httpx"})
    assert (plain["message"], plain["level"], plain["logger"], plain["service"]) == ("not json", "error", "httpx", None)
    assert entry({"_time": "2026-12-02T05:17:14Z"})["message"] == ""


def test_dashboard_says_where_each_ui_is() -> None:
    spec = load_stack()
    result = run_cli("dashboard")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{spec['grafana']['url']}  Grafana",
        f"http://127.0.0.1:{spec['ports']['jaeger_query']}  Jaeger UI",
        f"http://127.0.0.1:{spec['ports']['prometheus']}  Prometheus",
        f"http://127.0.0.1:{spec['ports']['alertmanager']}  Alertmanager",
        f"http://127.0.0.1:{spec['ports']['victorialogs']}/select/vmui/  VictoriaLogs"]
    found = json.loads(run_cli("dashboard", "--format", "json", "--victorialogs-url", "http://u:pw@logs:1").stdout)
    assert found["dashboards"] == [{"title": None, "uid": None, "url": spec["grafana"]["url"]}]
    assert found["interfaces"][-1] == {"name": "VictoriaLogs", "url": "http://u:***@logs:1/select/vmui/"}


def test_the_correlation_attribute_is_the_middlewares() -> None:
    assert CORRELATION_ATTRIBUTE == SPAN_ATTRIBUTE


def _report(models: list[dict[str, Any]], operations: list[dict[str, Any]], projected: float = 1.0) -> dict:
    return {"time_range": "7d", "by_model": models, "by_operation": operations,
            "budget": {"daily_usd": 500, "projected_daily_usd": projected}}


def _op(model: str, operation: str, cost: float, tokens: float, before: float | None,
        failed: float = 0.0) -> dict[str, Any]:
    return {"provider": "openai", "model": model, "operation": operation, "cost_usd": cost,
            "failed_cost_usd": failed, "tokens": tokens, "tokens_previous_period": before,
            "token_growth_ratio": (tokens - before) / before if before else None}


def test_quiet_data_gives_no_advice() -> None:
    models = [{"provider": "openai", "model": "gpt-4o-mini", "cost_per_successful_call_usd": 0.0001}]
    assert recommendations(_report(models, [_op("gpt-4o-mini", "chat", 1.0, 1000, 1000)])) == []


def test_advice_names_growth_failures_and_budget_from_the_numbers() -> None:
    models = [{"provider": "openai", "model": "gpt-4o", "cost_per_successful_call_usd": 0.01},
              {"provider": "openai", "model": "gpt-4o-mini", "cost_per_successful_call_usd": 0.0005}]
    operations = [_op("gpt-4o", "summarise", 900.0, 3000, 2000, failed=90.0),
                  _op("gpt-4o-mini", "chat", 5.0, 1000, 990)]
    found = {r["kind"]: r for r in recommendations(_report(models, operations, projected=700))}
    assert set(found) == {"costliest_model", "token_growth", "failed_spend", "over_budget"}
    assert found["costliest_model"]["factor"] == pytest.approx(20)
    assert "try gpt-4o-mini for summarise" in found["costliest_model"]["message"]
    assert found["token_growth"]["operation"] == "summarise" and found["token_growth"]["growth_ratio"] == 0.5
    assert "up 50%" in found["token_growth"]["message"]
    assert "(10%)" in found["failed_spend"]["message"]
    assert "$700.00/day" in found["over_budget"]["message"] and "summarise" in found["over_budget"]["message"]


def test_export_to_a_missing_folder_writes_nothing(tmp_path: Path) -> None:

    target = tmp_path / "nope" / "out.json"
    with pytest.raises(SystemExit) as exit_info:
        write_json(target, {"a": 1})
    assert exit_info.value.code == 2 and not target.parent.exists()
    write_json(tmp_path / "ok.json", {"a": 1})
    assert json.loads((tmp_path / "ok.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ok.json"]
