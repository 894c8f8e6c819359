"""A real Alertmanager started from a spec, for routing, inhibition and template tests.

The spec is rendered for the native runtime into a temporary directory (the same templates
``make render`` uses), the receivers' secret files are written there, and the built binary
runs on 127.0.0.1 until the context ends.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from theodore_obs.render import (
    alertmanager_flags,
    native_runtime,
    render_files,
    write_tree,
)
from theodore_obs.spec import load_spec
from theodore_obs.tools import binary_path


def _request(url: str, body: Any = None, method: str = "GET") -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


class Alertmanager:
    """Client for one running Alertmanager's v2 API."""

    def __init__(self, base: str, config: Path) -> None:
        self.base, self.config = base, config

    def post(self, *alerts: dict[str, Any]) -> None:
        _request(f"{self.base}/api/v2/alerts", list(alerts), "POST")

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        return _request(f"{self.base}/api/v2/alerts?{query}")


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def alert(name: str, severity: str, service: str = "svc-a", resolved: bool = False,
          **labels: str) -> dict[str, Any]:
    """An alert as Prometheus posts it, with the annotations every Theodore rule carries."""
    now = dt.datetime.now(dt.UTC)
    body = {
        "labels": {"alertname": name, "severity": severity, "service": service, **labels},
        "annotations": {
            "summary": f"{name} on {service}",
            "description": f"{name} has been true for {service} long enough to act.",
            "runbook_url": f"https://runbook.example/observability#{name.lower()}",
            "dashboard_url": f"https://grafana.example/d/theodore?var-service={service}",
        },
        "startsAt": iso(now - dt.timedelta(minutes=1) if resolved else now),
        "generatorURL": "http://127.0.0.1:9090/graph",
    }
    body["endsAt"] = iso(now - dt.timedelta(seconds=1) if resolved else now + dt.timedelta(minutes=10))
    return body


@contextmanager
def running_alertmanager(spec: dict[str, Any], root: Path, secrets: dict[str, str],
                         environment: str = "local", timeout: float = 60) -> Iterator[Alertmanager]:
    """Render ``spec`` (a stack.yaml dict) for the native runtime and run its Alertmanager."""
    root.mkdir(parents=True, exist_ok=True)
    spec_file = root / "stack.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    loaded = load_spec(environment, spec_file)
    runtime = native_runtime(root)
    files = {k: v for k, v in render_files(loaded, runtime).items() if k.startswith("alertmanager/")}
    write_tree(files, root / "config")
    secrets_dir = Path(runtime.secrets_dir)
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    for name, value in secrets.items():
        (secrets_dir / name).write_text(value)
    config = root / "config" / "alertmanager" / "alertmanager.yml"
    data = root / "data"
    data.mkdir(exist_ok=True)
    argv = [str(binary_path("alertmanager")), *alertmanager_flags(loaded.data, runtime, str(config), str(data))]
    base = f"http://127.0.0.1:{loaded.data['ports']['alertmanager']}"
    with open(root / "alertmanager.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TZ": "UTC"})
        try:
            _wait_ready(base, process, root / "alertmanager.log", timeout)
            yield Alertmanager(base, config)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"alertmanager exited {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                ready = response.status == 200
            time.sleep(0.3)  # a process that lost its port to another exits right after
            if ready and process.poll() is None:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"alertmanager not ready after {timeout}s:\n{log.read_text()[-2000:]}")
