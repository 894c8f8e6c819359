"""The native runtime's supervisor config and secret files, without starting anything."""

from __future__ import annotations

import configparser
import stat
from pathlib import Path

from theodore_obs.native import State, supervisor_config, write_secrets
from theodore_obs.spec import load_spec


def test_one_program_per_component_with_its_own_log_and_directory(tmp_path: Path) -> None:
    state = State(tmp_path)
    conf = configparser.RawConfigParser()
    conf.read_string(supervisor_config(load_spec("local").data, state))
    programs = sorted(s.split(":", 1)[1] for s in conf.sections() if s.startswith("program:"))
    assert programs == ["alertmanager", "blackbox", "demo-load", "demo-upstreams", "jaeger",
                        "otel-collector", "prometheus", "theodore-demo", "victorialogs",
                        "victorialogs-audit", "vmalert", "vmauth"]
    vmauth = conf["program:vmauth"]
    assert "-httpListenAddr=127.0.0.1:8427" in vmauth["command"]
    assert f"-auth.config={tmp_path / 'secrets' / 'vmauth-auth.yml'}" in vmauth["command"]
    demo = conf["program:theodore-demo"]
    assert "opentelemetry-instrument" in demo["command"]
    assert 'OTEL_SERVICE_NAME="theodore-demo"' in demo["environment"]
    assert str(tmp_path / "config" / "apps" / "ai-prices.json") in demo["environment"]
    prometheus = conf["program:prometheus"]
    assert "--web.listen-address=127.0.0.1:9090" in prometheus["command"]
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
    assert prometheus["stdout_logfile"] == str(tmp_path / "logs" / "prometheus.log")
    assert prometheus["stopasgroup"] == "true"
    assert conf["unix_http_server"]["file"] == str(tmp_path / "supervisor.sock")


def test_secrets_come_from_the_environment_with_private_permissions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SLACK_API_URL", "https://hooks.example/secret")
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    missing = write_secrets(load_spec("local").data, State(tmp_path))
    slack = tmp_path / "secrets" / "slack_api_url"
    assert slack.read_text() == "https://hooks.example/secret"
    assert stat.S_IMODE(slack.stat().st_mode) == 0o600
    assert "PAGERDUTY_ROUTING_KEY" in missing
    assert not (tmp_path / "secrets" / "pagerduty_routing_key").exists()
