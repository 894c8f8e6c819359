"""Version regression on a running native stack: version A, then B with a planted slowdown on
one operation, and VersionLatencyRegression names that operation and that version.

The stack runs the `local` profile (short lookback, few requests to judge, 15 s `for:`) on the
spec's ports shifted by PORT_OFFSET, without its own demo: the test runs the demo service
itself, once per version, with its upstreams and a steady load.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest
import yaml

from .conftest import load_stack, run_cli
from .test_native import eventually, get_json

PORT_OFFSET = 15200
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("regression")
    spec = load_stack()
    spec["ports"] = {name: port + PORT_OFFSET for name, port in spec["ports"].items()}
    spec["services"]["theodore-demo"]["port"] += PORT_OFFSET
    spec["demo"]["upstream_port"] += PORT_OFFSET
    spec["demo"]["enabled"] = False
    spec_file = root / "stack.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    env = {"THEODORE_OBS_STATE": str(root / "state")}
    up = run_cli("up", "--spec", str(spec_file), "--timeout", "120", env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield {"spec": spec, "root": root, "state": root / "state"}
    finally:
        run_cli("down", env=env)


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def demo(stack: dict[str, Any], version: str, slowdown: str = "") -> subprocess.Popen[bytes]:
    """The demo service as ``version`` (its resource attribute service.version)."""
    spec, root = stack["spec"], stack["root"]
    port = spec["services"]["theodore-demo"]["port"]
    env = {"OTEL_SERVICE_NAME": "theodore-demo", "THEODORE_SERVICE_VERSION": version,
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{spec['ports']['otlp_http']}",
           "THEODORE_ENVIRONMENT": "local", "THEODORE_DEMO_SLOWDOWN": slowdown,
           "THEODORE_AI_PRICES_FILE": str(stack["state"] / "config" / "apps" / "ai-prices.json")}
    proc = start([str(BIN / "opentelemetry-instrument"), sys.executable, "-m", "theodore_obs.demo.app",
                  f"--port={port}", f"--upstream=http://127.0.0.1:{spec['demo']['upstream_port']}",
                  f"--store={root / 'research.db'}"], env, root / f"demo-{version}.log")
    eventually(lambda: ready(f"http://127.0.0.1:{port}/readyz") or None, timeout=60, every=0.5)
    return proc


class Load:
    """Requests to /research and /companies from a few threads until stopped."""

    def __init__(self, port: int, threads: int = 4) -> None:
        self.base, self.done = f"http://127.0.0.1:{port}", threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.done.is_set():
            for path in ("/research?company=acme", "/companies"):
                try:
                    urllib.request.urlopen(self.base + path, timeout=10).read()
                except (OSError, urllib.error.URLError):
                    pass
            time.sleep(0.1)

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=15)


def regressions(stack: dict[str, Any]) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{stack['spec']['ports']['prometheus']}/api/v1/alerts"
    return [a for a in get_json(url)["data"]["alerts"]
            if a["labels"]["alertname"] == "VersionLatencyRegression" and a["state"] == "firing"]


def judged(stack: dict[str, Any], version: str) -> list[dict[str, Any]] | None:
    query = urllib.parse.urlencode({"query": "service_version_operation:request_duration_seconds:p95_5m"
                                             f'{{service_version="{version}", span_name="GET /research"}}'})
    url = f"http://127.0.0.1:{stack['spec']['ports']['prometheus']}/api/v1/query?{query}"
    return get_json(url)["data"]["result"] or None


def test_a_slower_release_fires_a_latency_regression_naming_the_operation(stack: dict[str, Any]) -> None:
    spec, root = stack["spec"], stack["root"]
    port = spec["services"]["theodore-demo"]["port"]
    started = time.monotonic()
    upstreams = start([sys.executable, "-m", "theodore_obs.demo.upstreams",
                       f"--port={spec['demo']['upstream_port']}"], {}, root / "upstreams.log")
    try:
        version_a = demo(stack, "1.0.0")
        with Load(port):
            eventually(lambda: judged(stack, "1.0.0"), timeout=120, every=2)
            time.sleep(15)
        stop(version_a)
        assert regressions(stack) == []
        version_b = demo(stack, "1.1.0", slowdown="/research=0.3")
        try:
            with Load(port):
                (alert,) = eventually(lambda: regressions(stack), timeout=180, every=2)
        finally:
            stop(version_b)
    finally:
        stop(upstreams)
    assert {k: alert["labels"][k] for k in ("service", "service_version", "span_name", "severity")} == {
        "service": "theodore-demo", "service_version": "1.1.0", "span_name": "GET /research",
        "severity": "medium"}
    assert alert["annotations"]["summary"].startswith("theodore-demo 1.1.0: GET /research p95 ")
    print(f"regression test: {time.monotonic() - started:.0f}s from version A's start to the alert")
