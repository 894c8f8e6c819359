"""Drill 4: an app whose collector is unreachable for 60 s keeps serving, stays bounded in
memory, and counts what it dropped.

A Flask app the project does not know runs under ``opentelemetry-instrument`` with the
``theodore`` distro; each request makes SPANS spans and LINES log lines. The stack's collector
(one native stack, ports shifted by PORT_OFFSET) is stopped through supervisord for OUTAGE
seconds while a client sends RATE requests a second: every request is answered 200 within a
second. The app's RSS stays under its warm RSS plus RSS_HEADROOM_MIB and levels off once the
SDK's queues are full (why those figures: see RSS_HEADROOM_MIB, RSS_PLATEAU_MIB). When the collector is back, Prometheus holds theodore_telemetry_dropped_total
for the app with exactly the counts the app reports itself (``drops.dropped_counts()``),
AppTelemetryDropped fires for it, and ``theodore-obs status`` lists both. Run with ``-s`` for
the figures.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from theodore_obs.timing import wait_until

from .conftest import native_stack, run_cli
from .test_native import get_json, prom_query, url

PORT_OFFSET = 1100
OUTAGE = 60
"""Seconds the collector is down (drill 4)."""
RATE = 20
"""Requests per second the client sends during the outage."""
SPANS, LINES = 10, 20
"""Spans and log lines per request: 600 telemetry items a second while nothing can leave."""
LATENCY_LIMIT = 1.0
"""Seconds any request may take while the collector is down (measured: at most 0.21 s here)."""
RSS_HEADROOM_MIB = 32
"""How far the app's RSS may rise over its warm RSS during the outage. The SDK holds at most
OTEL_BSP_MAX_QUEUE_SIZE spans and OTEL_BLRP_MAX_QUEUE_SIZE log records (2048 each, the
defaults) plus one 512-item batch in each exporter's retry loop: about 5,000 items of 1-3 KiB;
measured, the RSS rises 20-23 MiB. The same app and load with both queues at 1,000,000 (kept
without bound: the outage's 37,200 items) rose 65 MiB, from 98 to 163 MiB."""
RSS_PLATEAU_MIB = 10
"""How much the RSS may still grow over the outage's second half: the queues are full by then
(2048 spans at ~200 a second), measured 2-4 MiB; with unbounded queues it grew 28 MiB."""

APP = '''
import logging, sys
import flask
from opentelemetry import trace
from theodore_telemetry.drops import dropped_counts

log = logging.getLogger("offline_app")
tracer = trace.get_tracer("offline_app")
app = flask.Flask("offline_app")


@app.route("/work/<int:n>")
def work(n):
    for step in range(int(sys.argv[2])):
        with tracer.start_as_current_span("step") as span:
            span.set_attribute("step", step)
    for line in range(int(sys.argv[3])):
        log.info("request %s line %s", n, line)
    return {"n": n}


@app.route("/drops")
def drops():
    return {"dropped": [[signal, reason, count] for (signal, reason), count in dropped_counts().items()]}


app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
'''


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield from native_stack(tmp_path_factory.mktemp("app-offline"), PORT_OFFSET)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class App:
    """The instrumented app as a child process, with its port and what it says it dropped."""

    def __init__(self, stack: dict[str, Any], root: Path) -> None:
        self.service, self.port = f"offline-app-{secrets.token_hex(3)}", _free_port()
        script = root / "offline_app.py"
        script.write_text(APP)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "THEODORE_"))}
        env.update({"OTEL_SERVICE_NAME": self.service, "OTEL_METRIC_EXPORT_INTERVAL": "5000",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": url(stack, "otlp_http", ""),
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
        self.output = (root / "app.out").open("w")
        self.process = subprocess.Popen(
            ["opentelemetry-instrument", sys.executable, str(script), str(self.port), str(SPANS), str(LINES)],
            env=env, stdout=self.output, stderr=subprocess.STDOUT)

    def get(self, path: str, timeout: float = 5) -> tuple[int, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as response:
            return response.status, json.loads(response.read())

    def dropped(self) -> dict[tuple[str, str], int]:
        return {(signal, reason): count for signal, reason, count in self.get("/drops")[1]["dropped"]}

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        (kib,) = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")]
        return int(kib) / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.output.close()


@pytest.fixture
def app(stack: dict[str, Any], tmp_path: Path) -> Iterator[App]:
    running = App(stack, tmp_path)
    try:
        assert wait_until(lambda: _answers(running), 30), (tmp_path / "app.out").read_text()[-3000:]
        yield running
    finally:
        running.stop()


def _answers(app: App) -> bool:
    try:
        return app.get("/work/0", timeout=2)[0] == 200
    except OSError:
        return False


def _supervisorctl(stack: dict[str, Any], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(stack["state"].supervisor_conf),
                    *args], check=True, capture_output=True, timeout=60)


def _collector_ready(stack: dict[str, Any]) -> bool:
    try:
        with urllib.request.urlopen(url(stack, "collector_health", "/"), timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _serve_through_outage(app: App) -> tuple[list[tuple[int, float]], list[float]]:
    """RATE requests a second for OUTAGE seconds: (status, seconds) of each, and RSS samples."""
    answers: list[tuple[int, float]] = []
    rss: list[float] = []
    start = time.monotonic()
    for n in range(1, RATE * OUTAGE + 1):
        time.sleep(max(0.0, start + n / RATE - time.monotonic()))
        sent = time.monotonic()
        try:
            status = app.get(f"/work/{n}")[0]
        except OSError:
            status = 0
        answers.append((status, time.monotonic() - sent))
        if n % RATE == 0:
            rss.append(app.rss_mib())
    return answers, rss


def _stored_drops(stack: dict[str, Any], service: str) -> dict[tuple[str, str], int]:
    found = prom_query(stack, f'sum by (signal, reason) (theodore_telemetry_dropped_total{{service_name="{service}"}})')
    return {(r["metric"]["signal"], r["metric"]["reason"]): int(float(r["value"][1])) for r in found}


def _settled(app: App) -> dict[tuple[str, str], int] | None:
    """The app's counts once they stopped moving (the exports in flight at the restart finished)."""
    before = app.dropped()
    time.sleep(3)
    after = app.dropped()
    return after if after == before and after else None


def _firing(stack: dict[str, Any], service: str) -> list[dict[str, Any]]:
    alerts = get_json(url(stack, "prometheus", "/api/v1/alerts"))["data"]["alerts"]
    return [a for a in alerts if a["labels"].get("alertname") == "AppTelemetryDropped"
            and a["labels"].get("service") == service and a["state"] == "firing"]


def test_drill_4_app_serves_bounded_and_counts_drops_while_its_collector_is_down(
        stack: dict[str, Any], app: App) -> None:
    assert stack["up"].returncode == 0, stack["up"].stdout + stack["up"].stderr
    for n in range(RATE * 3):  # warm: every code path and the SDK's queues in use once
        assert app.get(f"/work/{n}")[0] == 200
    warm_rss = app.rss_mib()
    _supervisorctl(stack, "stop", "otel-collector")
    assert not _collector_ready(stack)
    try:
        answers, rss = _serve_through_outage(app)
        down_for = time.monotonic()
    finally:
        _supervisorctl(stack, "start", "otel-collector")
    assert wait_until(lambda: _collector_ready(stack), 30), "the collector did not come back"
    back = time.monotonic()

    failed = [(n, status) for n, (status, _) in enumerate(answers, 1) if status != 200]
    slowest = max(seconds for _, seconds in answers)
    print(f"drill 4: {len(answers)} requests during the {OUTAGE}s outage, {len(failed)} not 200, "
          f"slowest {slowest * 1000:.0f} ms; RSS warm {warm_rss:.1f} MiB, during the outage "
          f"{min(rss):.1f}-{max(rss):.1f} MiB (at {OUTAGE // 2}s {rss[len(rss) // 2 - 1]:.1f}, at the end {rss[-1]:.1f})")
    assert not failed, failed[:10]
    assert slowest <= LATENCY_LIMIT, f"a request took {slowest:.2f}s while the collector was down"
    assert max(rss) <= warm_rss + RSS_HEADROOM_MIB, (warm_rss, rss)
    assert rss[-1] - rss[len(rss) // 2 - 1] <= RSS_PLATEAU_MIB, rss

    dropped = wait_until(lambda: _settled(app), 40, every=0.5)
    assert dropped, "the app counted no drops while its collector was down"
    produced = RATE * OUTAGE * (SPANS + 1)
    lost_spans = sum(count for (signal, _), count in dropped.items() if signal == "spans")
    assert {("spans", "queue_full"), ("logs", "queue_full"), ("metrics", "export_failed")} <= dropped.keys(), dropped
    assert lost_spans <= produced, (lost_spans, produced)

    stored = wait_until(lambda: (found := _stored_drops(stack, app.service)) == dropped and found, 60, every=1)
    assert stored == dropped, (_stored_drops(stack, app.service), dropped)
    in_prometheus = time.monotonic() - back
    assert wait_until(lambda: _firing(stack, app.service), 60, every=1), "AppTelemetryDropped did not fire"
    fired = time.monotonic() - back

    status = run_cli("status", "--spec", str(stack["spec_file"]), "--format", "json", env=stack["env"], timeout=120)
    assert "Traceback" not in status.stderr, status.stderr
    report = json.loads(status.stdout)
    listed = {(d["signal"], d["reason"]): d["dropped"] for d in report["app_drops"] if d["service"] == app.service}
    assert listed == dropped, report["app_drops"]
    assert any(a["name"] == "AppTelemetryDropped" and a["labels"].get("service") == app.service
               for a in report["alerts"]), report["alerts"]
    print(f"drill 4: dropped {dict(sorted(dropped.items()))} of {produced} spans and "
          f"{RATE * OUTAGE * LINES} log lines sent in the outage (+{time.monotonic() - down_for:.0f}s); "
          f"in Prometheus {in_prometheus:.0f}s and AppTelemetryDropped firing {fired:.0f}s after the collector was back")
