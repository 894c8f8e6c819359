"""A fresh stack is quiet: with no fault injected, only Watchdog fires.

The demo's background load never fails on purpose (``loadgen --failures`` opts in), and the
native runtime leaves out of Alertmanager's config every receiver whose secret is not set, so
neither the error budget nor an undeliverable notification raises an alert. The live test starts
a stack as a new user does (no receiver secrets in the environment, the demo and its load on)
and watches Prometheus and vmalert for WATCH_SECONDS.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_obs.demo import IMAGE_FAILURE_NOTE
from theodore_obs.demo.loadgen import BROKEN_PAGE, IMAGE_FAILURES, LLM_OVERLOAD, pick
from theodore_obs.native import State, prepare, write_secrets
from theodore_obs.render import secret_files, unconfigured_receivers
from theodore_obs.spec import load_spec
from theodore_obs.tools import binary_path

from .conftest import load_stack, run_cli, shifted_stack

PORT_OFFSET = 4100
WATCH_SECONDS = 120
"""How long a new user watched a fresh stack before it fired more than Watchdog."""
RECEIVER_SECRETS = sorted(secret_files(load_stack()).values())
"""The environment variables that hold the receivers' secrets natively."""


def _kind(params: dict[str, str]) -> str:
    if params["company"].startswith("broken-"):
        return "broken page"
    return {"overload": "llm overload", IMAGE_FAILURE_NOTE: "image failure"}.get(params.get("note", ""), "good")


def test_the_background_load_fails_only_when_asked() -> None:
    rng = random.Random(7)
    quiet = Counter(_kind(pick(rng)) for _ in range(20_000))
    assert quiet == {"good": 20_000}
    rng = random.Random(7)
    noisy = Counter(_kind(pick(rng, failures=True)) for _ in range(20_000))
    for kind, share in [("broken page", BROKEN_PAGE), ("llm overload", LLM_OVERLOAD),
                        ("image failure", IMAGE_FAILURES)]:
        assert 0.5 * share * 20_000 < noisy[kind] < 1.5 * share * 20_000, (kind, noisy)


def test_receivers_without_their_secret_are_left_out_and_the_config_stays_valid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for env_var in RECEIVER_SECRETS:
        monkeypatch.delenv(env_var, raising=False)
    monkeypatch.setenv("SLACK_API_URL", "https://hooks.example/slack")
    spec, state = load_spec("local"), State(tmp_path / "state")
    write_secrets(spec.data, state)
    assert unconfigured_receivers(spec.data, state.root / "secrets") == {
        "pagerduty": ["PAGERDUTY_ROUTING_KEY"], "email": ["SMTP_PASSWORD"], "webhook": ["WEBHOOK_URL"],
        "deadmans_switch": ["DEADMANS_SWITCH_URL"]}
    prepare(spec, state)
    path = state.config / "alertmanager" / "alertmanager.yml"
    config = yaml.safe_load(path.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    integrations = {key for r in receivers.values() for key in r if key.endswith("_configs")}
    assert integrations == {"slack_configs"}
    assert receivers["critical"]["slack_configs"][0]["api_url_file"] == str(state.root / "secrets" / "slack_api_url")
    assert "deadmans-switch" not in receivers
    assert all(route["receiver"] in receivers for route in config["route"]["routes"])
    check = subprocess.run([str(binary_path("amtool")), "check-config", str(path)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_with_every_secret_set_no_receiver_is_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for env_var in RECEIVER_SECRETS:
        monkeypatch.setenv(env_var, f"https://hooks.example/{env_var.lower()}")
    spec, state = load_spec("local"), State(tmp_path / "state")
    write_secrets(spec.data, state)
    assert unconfigured_receivers(spec.data, state.root / "secrets") == {}
    prepare(spec, state)
    config = yaml.safe_load((state.config / "alertmanager" / "alertmanager.yml").read_text())
    integrations = {key for r in config["receivers"] for key in r if key.endswith("_configs")}
    assert integrations == {"slack_configs", "pagerduty_configs", "email_configs", "webhook_configs"}


@pytest.fixture(scope="module")
def fresh_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("quiet")
    spec, spec_file = shifted_stack(root, PORT_OFFSET)
    env = {"THEODORE_OBS_STATE": str(root / "state")}
    result = run_cli("up", "--spec", str(spec_file), "--timeout", "120", env=env,
                     unset=tuple(RECEIVER_SECRETS))
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield {"spec": spec, "up": result, "started": time.time()}
    finally:
        run_cli("down", env=env)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _active_alerts(spec: dict[str, Any]) -> set[tuple[str, str]]:
    ports = spec["ports"]
    prometheus = _get(f"http://127.0.0.1:{ports['prometheus']}/api/v1/alerts")["data"]["alerts"]
    vmalert = _get(f"http://127.0.0.1:{ports['vmalert']}/api/v1/alerts")["data"]["alerts"]
    return ({(a["labels"]["alertname"], a["state"]) for a in prometheus}
            | {(a["name"], a["state"]) for a in vmalert})


def _prom(spec: dict[str, Any], promql: str) -> list[dict[str, Any]]:
    query = urllib.parse.quote(promql)
    return _get(f"http://127.0.0.1:{spec['ports']['prometheus']}/api/v1/query?query={query}")["data"]["result"]


def test_up_names_the_receivers_it_left_out(fresh_stack: dict[str, Any]) -> None:
    (line,) = [x for x in fresh_stack["up"].stdout.splitlines() if "left out of the routing" in x]
    for env_var in RECEIVER_SECRETS:
        assert f"${env_var}" in line


def test_a_fresh_stack_fires_only_watchdog(fresh_stack: dict[str, Any]) -> None:
    spec, seen = fresh_stack["spec"], Counter()
    deadline = fresh_stack["started"] + WATCH_SECONDS
    while time.time() < deadline:
        seen.update(_active_alerts(spec))
        time.sleep(5)
    seen.update(_active_alerts(spec))
    assert ("Watchdog", "firing") in seen
    assert set(seen) == {("Watchdog", "firing")}, seen
    served = _prom(spec, 'sum(increase(traces_span_metrics_calls_total{span_kind="SPAN_KIND_SERVER", '
                         'service_name="theodore-demo"}[5m]))')
    assert served and float(served[0]["value"][1]) > 50, "the demo's background load never ran"
    failed = _prom(spec, "sum(alertmanager_notifications_failed_total)")
    assert not failed or float(failed[0]["value"][1]) == 0, failed
