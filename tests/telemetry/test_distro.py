"""The distro sets defaults only; the user's OTEL_* variables win. Entry points are registered."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from theodore_telemetry.distro import DEFAULTS, TheodoreConfigurator, TheodoreDistro


def test_entry_points_named_theodore() -> None:
    distros = {e.name: e.value for e in entry_points(group="opentelemetry_distro")}
    configurators = {e.name: e.value for e in entry_points(group="opentelemetry_configurator")}
    assert distros["theodore"] == "theodore_telemetry.distro:TheodoreDistro"
    assert configurators["theodore"] == "theodore_telemetry.distro:TheodoreConfigurator"
    assert TheodoreConfigurator


def test_defaults_fill_gaps_and_never_override(monkeypatch) -> None:
    for name in [*DEFAULTS, "OTEL_RESOURCE_ATTRIBUTES", "THEODORE_ENVIRONMENT"]:
        monkeypatch.setenv(name, "placeholder")  # recorded, so undone after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=theodore")
    monkeypatch.setenv("THEODORE_ENVIRONMENT", "staging")
    TheodoreDistro()._configure()
    assert os.environ["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    assert os.environ["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert os.environ["OTEL_PROPAGATORS"] == "tracecontext,baggage"
    assert os.environ["OTEL_RESOURCE_ATTRIBUTES"] == (
        "service.namespace=theodore,deployment.environment=staging")


def test_an_explicit_environment_attribute_is_kept(monkeypatch) -> None:
    for name in DEFAULTS:
        monkeypatch.setenv(name, DEFAULTS[name])
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    TheodoreDistro()._configure()
    assert os.environ["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=prod"


def test_otlp_encoders_are_ours_unless_the_sdk_ones_are_asked_for() -> None:
    """Under opentelemetry-instrument, the OTLP/HTTP exporters encode with otlp_encoding."""
    probe = ("from opentelemetry.exporter.otlp.proto.http import trace_exporter, _log_exporter; "
             "print(trace_exporter.encode_spans.__module__, _log_exporter.encode_logs.__module__)")
    instrument = str(Path(sys.executable).parent / "opentelemetry-instrument")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "THEODORE_"))}
    modules = {}
    for encoder in ("theodore", "sdk"):
        out = subprocess.run([instrument, sys.executable, "-c", probe], capture_output=True, text=True,
                             env={**env, "OTEL_SERVICE_NAME": "probe", "THEODORE_OTLP_ENCODER": encoder},
                             timeout=60, check=True)
        # The probe's own line; JSON lines are the app's logs (e.g. its last export failing at exit).
        modules[encoder] = next(line for line in out.stdout.splitlines() if not line.startswith("{"))
    assert modules == {"theodore": "theodore_telemetry.otlp_encoding theodore_telemetry.otlp_encoding",
                       "sdk": "opentelemetry.exporter.otlp.proto.common._internal.trace_encoder "
                              "opentelemetry.exporter.otlp.proto.common._internal._log_encoder"}


FLASK_REQUEST = """
import flask
app = flask.Flask("probe")
app.add_url_rule("/", "index", lambda: "ok")
assert app.test_client().get("/").status_code == 200
"""


def _metric_names_exported(extra_env: dict[str, str]) -> set[str]:
    """Metric names a Flask request under opentelemetry-instrument exports (console exporter,
    flushed at exit)."""
    instrument = str(Path(sys.executable).parent / "opentelemetry-instrument")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "THEODORE_"))}
    env.update({"OTEL_SERVICE_NAME": "probe", "OTEL_METRICS_EXPORTER": "console",
                "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **extra_env})
    out = subprocess.run([instrument, sys.executable, "-c", FLASK_REQUEST], capture_output=True,
                         text=True, env=env, timeout=60, check=True)
    return set(re.findall(r'"name": "([a-z_.]+)"', out.stdout))


def test_instrumentations_record_no_metrics_unless_asked() -> None:
    """Spanmetrics derives RED from the spans; the Flask instrumentation's own duration
    histogram is not paid for twice by default, and comes back with the switch."""
    assert not {name for name in _metric_names_exported({}) if name.startswith("http.server")}
    on = _metric_names_exported({"THEODORE_INSTRUMENTATION_METRICS": "true"})
    assert {name for name in on if name.startswith("http.server")}


def test_an_unreadable_price_table_turns_ai_cost_off_and_nothing_else(tmp_path) -> None:
    """A price file that is missing or not a table is named in a warning; the instrumentations
    still load (the configurator does not fail) and the app runs."""
    probe = "import flask; print('instrumented' if flask.Flask.__name__ != 'Flask' else 'plain')"
    instrument = str(Path(sys.executable).parent / "opentelemetry-instrument")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "THEODORE_"))}
    env.update({"OTEL_SERVICE_NAME": "probe", "OTEL_TRACES_EXPORTER": "none",
                "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"})
    (tmp_path / "bad.json").write_text('{"openai": {"gpt-4o": {"per_token": 1}}}')
    for prices in (tmp_path / "missing.json", tmp_path / "bad.json"):
        out = subprocess.run([instrument, sys.executable, "-c", probe], capture_output=True,
                             text=True, env={**env, "THEODORE_AI_PRICES_FILE": str(prices)},
                             timeout=60, check=True)
        assert "instrumented" in out.stdout.splitlines(), out
        assert str(prices) in out.stdout + out.stderr
        assert "AI cost is off" in out.stdout + out.stderr
