"""The generator: deterministic, atomic, strict, and in step with the committed output."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest
import yaml
from theodore_obs.output_tree import MANIFEST
from theodore_obs.render import (
    COMPOSE,
    native_runtime,
    render_files,
    templates,
    write_tree,
)
from theodore_obs.spec import load_spec

from .conftest import ROOT, run_cli

ENVS = ["local", "prod", "staging"]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_committed_output_is_not_drifted(tmp_path: Path) -> None:
    """rendered/ is exactly what stack.yaml and the templates give (CI's drift check)."""
    result = run_cli("render", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    fresh, committed = _tree(tmp_path), _tree(ROOT / "rendered")
    drifted = sorted(set(fresh) ^ set(committed) | {k for k in fresh if committed.get(k) != fresh[k]})
    assert not drifted, (f"rendered/ is out of date for {drifted}: run `make render` and commit "
                         "the result")


def test_render_is_deterministic(tmp_path: Path) -> None:
    for attempt in ("a", "b"):
        assert run_cli("render", "--out", str(tmp_path / attempt)).returncode == 0
    comparison = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b"), comparison.report()


@pytest.mark.parametrize("env", ENVS)
def test_every_output_parses_and_yaml_names_its_template(env: str) -> None:
    files = render_files(load_spec(env), COMPOSE)
    generated = {path for path in files if path.startswith("grafana/dashboards/")}  # from Python
    assert set(files) - generated == set(templates())
    for relative, text in files.items():
        template = templates().get(relative)
        if relative.endswith(".json"):
            json.loads(text)
            continue
        if relative.endswith(".tmpl"):  # Go templates (Alertmanager notifications) name it in a comment
            assert text.startswith(f"{{{{/* Rendered from {template} for environment '{env}'"), relative
            assert "make render" in text.splitlines()[0]
            continue
        assert text.startswith(f"# Rendered from {template} for environment '{env}'"), relative
        assert "make render" in text.splitlines()[0]
        yaml.safe_load(text)


def test_only_the_requested_environment_is_rendered(tmp_path: Path) -> None:
    result = run_cli("render", "--env", "prod", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "prod"]


def test_native_runtime_addresses_loopback_and_the_state_dir(tmp_path: Path) -> None:
    files = render_files(load_spec("local"), native_runtime(tmp_path))
    collector = yaml.safe_load(files["otel-collector/config.yaml"])
    assert collector["exporters"]["otlp/jaeger"]["endpoint"] == "127.0.0.1:14317"
    assert collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "127.0.0.1:4317"
    assert collector["extensions"]["file_storage"]["directory"].startswith(str(tmp_path))
    compose_collector = yaml.safe_load(render_files(load_spec("local"), COMPOSE)["otel-collector/config.yaml"])
    assert compose_collector["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:14317"


def test_failed_render_leaves_previous_output_intact(tmp_path: Path, monkeypatch) -> None:
    """A template that references an unknown value fails (StrictUndefined) and writes nothing."""
    out = tmp_path / "out"
    assert run_cli("render", "--out", str(out)).returncode == 0
    before = _tree(out)
    broken = tmp_path / "repo"
    for name in ["stack.yaml", "stack.schema.json", "versions.yaml"]:
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).write_text((ROOT / name).read_text())
    for template in {p.relative_to(ROOT) for p in ROOT.glob("*/**/*.j2")
                     if not p.is_relative_to(ROOT / ".venv")}:  # included templates too
        target = broken / template
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((ROOT / template).read_text())
    (broken / "vmalert/templates/rules/logs.yml.j2").write_text(
        "retention: {{ retention.victorialogs.perod }}\n")
    result = run_cli("render", "--out", str(out), env={"THEODORE_OBS_ROOT": str(broken)})
    assert result.returncode != 0
    assert "perod" in result.stderr
    assert _tree(out) == before


def test_write_tree_replaces_the_whole_tree(tmp_path: Path) -> None:
    dest = tmp_path / "env"
    write_tree({"a.yml": "1", "sub/b.yml": "2"}, dest)
    write_tree({"c.yml": "3"}, dest)
    assert _tree(dest) == {"c.yml": "3"}
    assert [p.name for p in tmp_path.iterdir()] == ["env"]


def test_no_secret_values_are_rendered(monkeypatch, tmp_path: Path) -> None:
    """Receivers read files; a secret set in the environment never reaches the output."""
    secret = "https://hooks.slack.example/T0/B0/very-secret-value"
    monkeypatch.setenv("SLACK_API_URL", secret)
    result = run_cli("render", "--out", str(tmp_path))
    assert result.returncode == 0
    assert not [p for p, text in _tree(tmp_path).items() if "very-secret-value" in text]
    am = yaml.safe_load((tmp_path / "local/alertmanager/alertmanager.yml").read_text())
    (critical,) = [r for r in am["receivers"] if r["name"] == "critical"]
    slack = critical["slack_configs"][0]
    assert slack["api_url_file"] == "/run/secrets/slack_api_url"


def test_a_service_health_probe_carries_its_service_label() -> None:
    """A failing probe of a service inhibits that service's alerts: it needs the service label."""
    config = yaml.safe_load((ROOT / "rendered/local/prometheus/prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "blackbox-health"]
    labelled = {t: group.get("labels", {}).get("service") for group in job["static_configs"]
                for t in group["targets"]}
    assert labelled["http://theodore-demo:8000/healthz"] == "theodore-demo"
    assert labelled["http://prometheus:9090/-/ready"] is None
