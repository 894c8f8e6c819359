"""Two distributions from one repo, each standing alone in a fresh virtualenv.

- The app side: ``pip install theodore-telemetry`` (with the shared metric catalogue) and
  nothing of the stack tooling; an unmodified app under ``opentelemetry-instrument`` ships its
  trace, its redacted JSON logs and its catalogue metrics to the native stack.
- The tooling: ``pip install theodore-observability`` and nothing of the app side; it renders
  exactly the committed ``rendered/`` and validates it with the real tools.

Both install from copies of the source folders without ``-e`` (a build writes into the
folder it builds), so what a wheel would leave out (the catalogue's data file, the entry
points) fails here. The stack runs on the spec's ports shifted by PORT_OFFSET.
"""

from __future__ import annotations

import filecmp
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, native_stack
from .support.victorialogs import json_lines, logsql_string, query_logs
from .test_native import eventually, get_json, prom_query, url

PORT_OFFSET = 2600
APP_SIDE = ("theodore_telemetry", "opentelemetry", "structlog", "orjson")
TOOLING = ("theodore_obs", "click", "jinja2", "jsonschema", "rich", "supervisor", "yaml")
FIXTURES = Path(__file__).parent / "fixtures"


def _venv(root: Path, *packages: str) -> Path:
    """A fresh virtualenv under ``root`` with exactly these repository folders installed (and
    their dependencies); returns its ``bin``."""
    sources = root / "src"
    for package in packages:
        shutil.copytree(ROOT / package, sources / package,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    run = subprocess.run([str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                          "--disable-pip-version-check", *(str(sources / p) for p in packages)],
                         capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return root / "venv" / "bin"


def _env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a shell with only this virtualenv on PATH (nothing from the test's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "VIRTUAL_ENV": str(bin_dir.parent), **extra}


def _importable(bin_dir: Path, modules: tuple[str, ...]) -> dict[str, bool]:
    code = ("import importlib.util, json, sys\n"
            "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))")
    run = subprocess.run([str(bin_dir / "python"), "-c", code, *modules], env=_env(bin_dir), cwd="/",
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def app_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("app-venv"), "catalogue", "telemetry")


@pytest.fixture(scope="module")
def tooling_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("tooling-venv"), "catalogue", "glue")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield from native_stack(tmp_path_factory.mktemp("packages"), PORT_OFFSET)


def test_the_app_package_brings_none_of_the_tooling(app_bin: Path) -> None:
    assert _importable(app_bin, APP_SIDE) == dict.fromkeys(APP_SIDE, True)
    assert _importable(app_bin, TOOLING) == dict.fromkeys(TOOLING, False)
    assert (app_bin / "opentelemetry-instrument").is_file()
    assert not (app_bin / "theodore-obs").exists()


def _instrument(app_bin: Path, stack: dict[str, Any], app: str, service: str, *args: str) -> list[dict]:
    env = _env(app_bin, OTEL_SERVICE_NAME=service, OTEL_EXPORTER_OTLP_ENDPOINT=url(stack, "otlp_http", ""))
    run = subprocess.run(["opentelemetry-instrument", "python", str(FIXTURES / app), *args], env=env,
                         cwd="/", capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_the_app_package_alone_instruments_an_unmodified_app(app_bin: Path, stack: dict[str, Any]) -> None:
    """Trace in Jaeger, redacted JSON lines with its trace id in VictoriaLogs, catalogue metrics
    in Prometheus: the distro and configurator come from the entry points of theodore-telemetry."""
    service, marker = f"app-only-{secrets.token_hex(3)}", secrets.token_hex(6)
    stdout = _instrument(app_bin, stack, "plain_app.py", service, marker)
    assert [r["level"] for r in stdout if marker in r["message"]] == ["info", "error"]

    def stored() -> list[dict[str, Any]]:
        rows = query_logs(url(stack, "victorialogs", ""), f"service.name:={logsql_string(service)}")
        return json_lines(rows) if len(rows) >= 2 else []

    lines = eventually(stored, timeout=60)
    assert all(planted not in json.dumps(lines) for planted in ("hunter2-plain", "PLANTEDSECRET", "PLANTEDBEARER"))
    (trace_id,) = {line["trace_id"] for line in lines}
    (found,) = eventually(lambda: get_json(url(stack, "jaeger_query", f"/api/traces/{trace_id}"))["data"],
                          timeout=60)
    assert found["spans"][0]["operationName"] == "research-request"

    metrics_service = f"app-only-metrics-{secrets.token_hex(3)}"
    _instrument(app_bin, stack, "metrics_app.py", metrics_service)
    (requests,) = eventually(lambda: prom_query(
        stack, f'theodore_requests_total{{job="{metrics_service}",endpoint="/research"}}'), timeout=60, every=2)
    assert requests["value"][1] == "1"


def test_the_tooling_brings_none_of_the_app_side(tooling_bin: Path) -> None:
    assert _importable(tooling_bin, TOOLING) == dict.fromkeys(TOOLING, True)
    assert _importable(tooling_bin, APP_SIDE) == dict.fromkeys(APP_SIDE, False)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_the_tooling_alone_renders_the_committed_output_and_validates_it(tooling_bin: Path,
                                                                          tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    env = _env(tooling_bin)
    render = subprocess.run(["theodore-obs", "render", "--out", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert render.returncode == 0, render.stderr
    committed = ROOT / "rendered"
    assert _tree(out) == _tree(committed)
    _, differ, errors = filecmp.cmpfiles(committed, out, sorted(_tree(out)), shallow=False)
    assert (differ, errors) == ([], [])
    validate = subprocess.run(["theodore-obs", "validate", "--dir", str(out)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
    assert validate.returncode == 0, validate.stdout + validate.stderr


def test_the_tooling_alone_says_how_to_get_the_demo(tooling_bin: Path, tmp_path: Path) -> None:
    """`up` with the demo on and its extra not installed: one clear line, exit 1, nothing started."""
    env = _env(tooling_bin, THEODORE_OBS_STATE=str(tmp_path / "state"))
    run = subprocess.run(["theodore-obs", "up", "--runtime", "native"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "pip install 'theodore-observability[demo]'" in run.stderr
    assert "missing theodore_telemetry, flask" in run.stderr
    assert not (tmp_path / "state" / "supervisord.pid").exists()
