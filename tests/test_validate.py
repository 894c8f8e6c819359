"""Every rendered file passes the tool that consumes it, and those tools do catch mistakes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from theodore_obs.validate import check_compose, checks_for, run_check, validate_env

from .conftest import ROOT, run_cli

ENVS = ["local", "prod", "staging"]
CHECKS = [(env, tool, argv, file) for env in ENVS
          for tool, argv, file in checks_for(ROOT / "rendered" / env)]


@pytest.mark.parametrize(("env", "tool", "argv", "file"), CHECKS,
                         ids=[f"{env}-{tool}-{Path(file).name}" for env, tool, _, file in CHECKS])
def test_rendered_file_passes_its_consumer(env: str, tool: str, argv: list[str], file: Path) -> None:
    finding = run_check(tool, argv, file)
    assert finding.ok, finding.line()


@pytest.mark.parametrize("env", ENVS)
def test_compose_file_matches_the_compose_specification(env: str) -> None:
    finding = check_compose(ROOT / "rendered" / env / "compose.yaml")
    assert finding.ok, finding.output


def test_every_check_kind_runs_for_each_environment() -> None:
    tools = {tool for _, tool, _, _ in CHECKS}
    assert tools == {"promtool check config", "promtool check rules", "amtool check-config",
                     "otelcol validate", "jaeger validate", "blackbox --config.check",
                     "promtool test rules", "vmalert -dryRun", "vmauth -dryRun"}


BREAKAGES = {
    "prometheus/prometheus.yml": ("scrape_interval: 5s", "scrape_interval: 5 seconds",
                                  "promtool check config"),
    "prometheus/rules/stack-health.yml": ("expr: up == 0", "expr: up ==", "promtool check rules"),
    "alertmanager/alertmanager.yml": ("receiver: low", "receiver: nobody", "amtool check-config"),
    "otel-collector/config.yaml": ("processors: [memory_limiter, transform/tenant-theodore, resourcedetection]",
                                   "processors: [memory_limiter, nosuchprocessor]",
                                   "otelcol validate"),
    "otel-collector/agent.yaml": ("routing_key: traceID", "routing_key: spanID", "otelcol validate"),
    "jaeger/config.yaml": ("ephemeral: false", "ephemeral: sometimes", "jaeger validate"),
    "prometheus/blackbox.yml": ("timeout: 5s", "timeout: five", "blackbox --config.check"),
    "compose.yaml": ("restart: unless-stopped", "restart: 42", "compose-spec schema"),
    "vmauth/auth.yml": ("src_paths:", "src_pathz:", "vmauth -dryRun"),
    "vmalert/rules/logs.yml": ("| stats by (service.name, component) count() as events",
                               "| stats by (service.name, component) count( as events",
                               "vmalert -dryRun"),
}


@pytest.mark.parametrize("relative", sorted(BREAKAGES))
def test_a_broken_file_is_reported_by_its_tool(relative: str, tmp_path: Path) -> None:
    """Break one file in a copy of rendered/local: only that file's check fails, by name."""
    old, new, tool = BREAKAGES[relative]
    env_dir = tmp_path / "local"
    shutil.copytree(ROOT / "rendered" / "local", env_dir)
    target = env_dir / relative
    assert old in target.read_text()
    target.write_text(target.read_text().replace(old, new, 1))
    expected = {(tool, target)}
    if tool == "promtool check rules":  # check config loads the rule files too
        expected.add(("promtool check config", env_dir / "prometheus" / "prometheus.yml"))
        unit_test = env_dir / "prometheus" / "tests" / f"{target.stem}.test.yml"
        if unit_test.exists():  # and the rule group's promtool unit tests
            expected.add(("promtool test rules", unit_test))
    failed = [f for f in validate_env(env_dir) if not f.ok]
    assert {(f.tool, f.file) for f in failed} == expected, "\n".join(f.line() for f in failed)


def test_validate_command_names_tool_and_file_and_exits_1(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rendered" / "local", tmp_path / "local")
    am = tmp_path / "local" / "alertmanager" / "alertmanager.yml"
    am.write_text(am.read_text().replace("receiver: low", "receiver: nobody"))
    result = run_cli("validate", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "FAIL amtool check-config" in result.stdout
    assert str(am) in result.stdout
    assert "1 check(s) failed" in result.stderr
