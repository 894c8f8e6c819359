"""Drill 3: the collector overloaded at five times the rate the stack sustains, for a minute.

One native stack (ports shifted by PORT_OFFSET, no background demo load, alert receivers
local; the memory limiter's spike allowance widened, see REFUSE_ABOVE_MIB). ``telemetrygen``
(OTLP/gRPC) is set to send OVERLOAD_FACTOR x SUSTAINED_RATE spans/s and as many log records/s
for OVERLOAD_SECONDS; meanwhile a probe sends small requests over OTLP/HTTP and OTLP/gRPC and
keeps every answer, and the demo service answers research requests at DEMO_RPS. The drill holds
that the collector's RSS stays under ``collector.memory_limit_mib``, that it refuses only with
retryable errors (HTTP 429/503, gRPC RESOURCE_EXHAUSTED/UNAVAILABLE) from its memory limiter,
that it neither crashes nor restarts, that it accepts everything again once the load is gone,
that OtelCollectorRefusingData fires and resolves, and that the demo answers every request,
within its SLO's latency objective. The rates the generator reached, the refusals, the RSS and
heap, and the demo's median latency against its unloaded median (the goal: within
LATENCY_TOLERANCE) are printed.

On a machine with two or more CPUs the demo and its upstreams get the last CPU and the
collector, the backends and the generator the others: the app and its collector are on
different hosts in any real deployment, and on two shared cores the generator alone would
take the CPU the demo needs. The generator then shares one core with the collector and the
backends, and reaches well under its target; the collector is overloaded all the same. Run
with ``-s`` for the figures.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest
import yaml
from theodore_bench.bench import _pin, _unpin
from theodore_bench.drill import drill_env, drill_spec
from theodore_bench.ingest import Usage
from theodore_obs.native import State, process_info
from theodore_obs.testing import Receivers
from theodore_obs.timing import wait_until

from tests.conftest import load_stack, run_cli
from tests.support.overload import (
    Generator,
    RefusalProbe,
    collector_gauge,
    receiver_items,
)
from tests.test_drill_faults import Stack

PORT_OFFSET = 7300
SUSTAINED_RATE = 10_000
"""Spans/s and log lines/s the native stack takes together for 60 s with nothing lost (the
highest step of ``python -m theodore_bench.ingest``, docs/reliability.md)."""
OVERLOAD_FACTOR = 5
OVERLOAD_SECONDS = 60
DEMO_RPS = 10
"""Research requests a second sent to the demo, unloaded and during the overload."""
BASELINE_SECONDS = 10
SETTLE_SECONDS = 5
"""Demo requests in the overload's first seconds (before the collector is saturated) are not counted."""
LATENCY_TOLERANCE = 0.10
RECOVERY_LIMIT = 30
"""Seconds after the load ends by which every probe request has to be accepted again (and
stay accepted for STABLE_SECONDS)."""
STABLE_SECONDS = 5
RETRYABLE_HTTP = {"429", "503"}
RETRYABLE_GRPC = {"RESOURCE_EXHAUSTED", "UNAVAILABLE"}
REFUSE_ABOVE_MIB = 64
"""The heap (MiB) above which the drill's collector refuses. The local profile refuses above
192 MiB (limit 256 - spike 64); the drill widens the spike allowance to ``memory_limit_mib`` -
REFUSE_ABOVE_MIB and keeps the limit itself, the bound its RSS is held to. At 192 the heap did
not get there within the minute when the collector shared a core with the generator, and where
it did (no CPU split) the RSS reached 322 MiB, over the limit; refusing above 80 MiB, one run
peaked at 253 MiB (docs/reliability.md)."""
APP_PROGRAMS = {"demo-upstreams"}
"""Besides the demo service itself, the programs on the app's CPU (its stand-in internet)."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("overload")
    with Receivers() as receivers:
        spec = drill_spec(load_stack(), receivers, PORT_OFFSET)
        collector = spec["environments"]["local"].setdefault("collector", {})
        collector["memory_spike_mib"] = _local(spec, "memory_limit_mib") - REFUSE_ABOVE_MIB
        (root / "stack.yaml").write_text(yaml.safe_dump(spec))
        env = {"THEODORE_OBS_STATE": str(root / "state"), **drill_env(receivers)}
        started = run_cli("up", "--spec", str(root / "stack.yaml"), "--timeout", "120", env=env)
        try:
            assert started.returncode == 0, started.stdout + started.stderr
            yield Stack(spec, State(root / "state"), root, queue_on_tmpfs=False)
        finally:
            run_cli("down", env=env)


def _local(spec: dict[str, Any], key: str) -> Any:
    """The collector setting ``key`` as the local environment has it (its overlay over the base)."""
    return spec["environments"]["local"].get("collector", {}).get(key, spec["collector"][key])


def _vm_kib(pid: int, field_name: str) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(field_name + ":"):
            return int(row.split()[1])
    return 0


@dataclass
class CpuSplit:
    """The app (demo and upstreams) on the last CPU, everything else on the others."""

    stack: Stack
    app: set[int] = field(default_factory=set)
    rest: set[int] = field(default_factory=set)

    def __enter__(self) -> Self:
        cpus = sorted(os.sched_getaffinity(0))
        self._saved: dict[int, set[int]] = {}
        if len(cpus) < 2:
            return self
        self.app, self.rest = {cpus[-1]}, set(cpus[:-1])
        app_names = {self.stack.spec["demo"]["service"], *APP_PROGRAMS}
        for info in process_info(self.stack.state):
            if info["pid"]:
                self._saved.update(_pin(info["pid"], self.app if info["name"] in app_names else self.rest))
        self._saved.update(_pin(os.getpid(), self.rest))  # and so the generator this process starts
        return self

    def __exit__(self, *_: object) -> None:
        _unpin(self._saved)


def _demo_latencies(url: str, seconds: float, cpus: set[int]) -> list[tuple[int, float]]:
    """(status, ms) of research requests at DEMO_RPS for ``seconds``, sent from ``cpus`` (the
    calling thread moves there meanwhile)."""
    thread = threading.get_native_id()
    saved = os.sched_getaffinity(thread)
    os.sched_setaffinity(thread, cpus or saved)
    answers: list[tuple[int, float]] = []
    try:
        start = time.monotonic()
        for n in range(int(seconds * DEMO_RPS)):
            time.sleep(max(0.0, start + n / DEMO_RPS - time.monotonic()))
            sent = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    response.read()
                    status = response.status
            except OSError:
                status = 0
            answers.append((status, (time.perf_counter() - sent) * 1000))
    finally:
        os.sched_setaffinity(thread, saved)
    return answers


@dataclass
class Overload:
    """What the drill saw."""

    memory_limit_mib: int
    baseline: list[tuple[int, float]]
    loaded: list[tuple[int, float]] = field(default_factory=list)
    pids: tuple[int, int] = (0, 0)
    peak_rss_mib: float = 0.0
    rss_mib: list[float] = field(default_factory=list)
    heap_mib: list[float] = field(default_factory=list)
    generator: Generator | None = None
    probe: RefusalProbe | None = None
    received: dict[str, float] = field(default_factory=dict)
    refused: dict[str, float] = field(default_factory=dict)
    load_ended: float = 0.0
    recovered_after: float | None = None
    healthy_after: bool = False
    slo_seconds: float = 0.0
    alert_fired_after: float | None = None
    alert_resolved_after: float | None = None
    collector_cpu: float = 0.0
    pinned: bool = False


def _memory_sampler(pid: int, telemetry: str, rss: list[float], heap: list[float],
                    stop: threading.Event) -> threading.Thread:
    """RSS (from /proc) and the Go heap the memory limiter watches (the collector's own gauge)
    once a second."""
    def sample() -> None:
        while not stop.wait(1.0):
            try:
                rss.append(_vm_kib(pid, "VmRSS") / 1024)
                heap.append(collector_gauge(telemetry, "otelcol_process_runtime_heap_alloc_bytes") / 2**20)
            except OSError:
                continue
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def overload(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Overload:
    spec = stack.spec
    demo_url = f"http://127.0.0.1:{spec['services'][spec['demo']['service']]['port']}/research?company=acme"
    telemetry = stack.url("collector_telemetry")
    rate = OVERLOAD_FACTOR * SUSTAINED_RATE
    assert wait_until(lambda: stack.ready("collector_health", "/"), 30)
    with CpuSplit(stack) as split:
        _demo_latencies(demo_url, 3, split.app)  # warm: every code path once
        result = Overload(memory_limit_mib=_local(spec, "memory_limit_mib"),
                          slo_seconds=spec["services"][spec["demo"]["service"]]["slo"]["latency_seconds"],
                          baseline=_demo_latencies(demo_url, BASELINE_SECONDS, split.app), pinned=bool(split.app))
        pid = stack.pid("otel-collector")
        before = receiver_items(telemetry)
        stop = threading.Event()
        sampler = _memory_sampler(pid, telemetry, result.rss_mib, result.heap_mib, stop)
        generator = Generator(f"127.0.0.1:{spec['ports']['otlp_grpc']}", rate, rate, OVERLOAD_SECONDS,
                              logs=tmp_path_factory.mktemp("telemetrygen") / "telemetrygen")
        with (RefusalProbe(stack.url("otlp_http"), f"127.0.0.1:{spec['ports']['otlp_grpc']}") as probe,
              Usage(stack.state) as usage, generator):
            start = time.monotonic()
            demo: list[list[tuple[int, float]]] = []
            client = threading.Thread(target=lambda: demo.append(_demo_latencies(
                demo_url, OVERLOAD_SECONDS - SETTLE_SECONDS - 1, split.app)), daemon=True)
            time.sleep(SETTLE_SECONDS)
            client.start()
            while time.monotonic() < start + OVERLOAD_SECONDS:
                if result.alert_fired_after is None and stack.firing("OtelCollectorRefusingData"):
                    result.alert_fired_after = time.monotonic() - start
                time.sleep(2)
            client.join(timeout=30)
            generator.wait()
            result.load_ended = time.monotonic()
            after = receiver_items(telemetry)
            # Recovered: STABLE_SECONDS of nothing but accepted answers (the collector drains its
            # queue after the load, and may refuse once more meanwhile).
            if wait_until(lambda: probe.accepted_since(time.monotonic() - STABLE_SECONDS),
                          RECOVERY_LIMIT + STABLE_SECONDS, every=0.5):
                refusals = probe.refusals()
                result.recovered_after = max(0.0, refusals[-1].at - result.load_ended if refusals else 0.0)
            result.healthy_after = stack.ready("collector_health", "/")
        stop.set()
        sampler.join(timeout=5)
    result.loaded = demo[0] if demo else []
    result.generator, result.probe = generator, probe
    result.collector_cpu = usage.cpu_share.get("otel-collector", 0.0)
    result.peak_rss_mib = _vm_kib(pid, "VmHWM") / 1024
    result.pids = (pid, stack.pid("otel-collector"))
    seconds = result.load_ended - start
    for signal in ("spans", "logs"):
        result.received[signal] = sum(after[k] - before.get(k, 0) for k in after if k[0] == signal) / seconds
        result.refused[signal] = sum(after[k] - before.get(k, 0) for k in after
                                     if k[0] == signal and k[1] == "refused") / seconds
    if result.alert_fired_after is None and wait_until(lambda: stack.firing("OtelCollectorRefusingData"), 20, every=2):
        result.alert_fired_after = time.monotonic() - start
    resolved = wait_until(lambda: not stack.alerts("OtelCollectorRefusingData"), 150, every=3)
    result.alert_resolved_after = time.monotonic() - result.load_ended if resolved else None
    _print(result, rate)
    return result


def _p50(answers: list[tuple[int, float]]) -> float:
    return statistics.median(ms for _, ms in answers)


def _print(result: Overload, rate: int) -> None:
    generator, probe = result.generator, result.probe
    assert generator is not None and probe is not None
    print(f"\ndrill 3 (overload): target {rate:,} spans/s + {rate:,} log records/s for {OVERLOAD_SECONDS}s "
          f"({OVERLOAD_FACTOR}x the sustained {SUSTAINED_RATE:,}/s); telemetrygen generated "
          + ", ".join(f"{n / OVERLOAD_SECONDS:,.0f} {s}/s" for s, n in generator.generated.items())
          + "; the receiver counted " + ", ".join(
              f"{s} {result.received[s]:,.0f}/s ({result.refused[s]:,.0f}/s refused)" for s in ("spans", "logs")))
    print(f"drill 3: collector RSS peak {result.peak_rss_mib:.0f} MiB (limit {result.memory_limit_mib} MiB), "
          f"during the load {min(result.rss_mib, default=0):.0f}-{max(result.rss_mib, default=0):.0f} MiB, "
          f"heap up to {max(result.heap_mib, default=0):.0f} MiB (refusing above {REFUSE_ABOVE_MIB}); "
          f"CPU {result.collector_cpu:.2f} cores; pid {result.pids[0]} -> {result.pids[1]}")
    print(f"drill 3: probe answers {dict(probe.statuses())}; refusal messages "
          f"{sorted({a.message for a in probe.refusals()})[:3]}")
    refusals = probe.refusals()
    last = f"{refusals[-1].at - result.load_ended:+.1f}s" if refusals else "-"
    print(f"drill 3: last refusal {last} from the end of the load, everything accepted again "
          f"{_seconds(result.recovered_after)} after it; OtelCollectorRefusingData fired "
          f"{_seconds(result.alert_fired_after)} into the load, resolved {_seconds(result.alert_resolved_after)} after it")
    if result.baseline and result.loaded:
        p50, loaded = _p50(result.baseline), _p50(result.loaded)
        print(f"drill 3: demo p50 {p50:.1f} ms unloaded, {loaded:.1f} ms under the overload "
              f"({loaded / p50 - 1:+.0%}; {len(result.loaded)} requests, "
              f"{'its own CPU' if result.pinned else 'CPUs shared'}); goal {LATENCY_TOLERANCE:+.0%}; "
              f"{_within_slo(result.loaded, result.slo_seconds):.1%} under the SLO's {result.slo_seconds:g} s")


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f}s"


def _within_slo(answers: list[tuple[int, float]], seconds: float) -> float:
    return sum(1 for _, ms in answers if ms <= seconds * 1000) / len(answers)


def test_collector_rss_stays_under_its_memory_limit(overload: Overload) -> None:
    assert overload.peak_rss_mib > 0
    assert overload.peak_rss_mib < overload.memory_limit_mib, overload.rss_mib


def test_collector_refuses_only_with_retryable_errors(overload: Overload) -> None:
    probe = overload.probe
    assert probe is not None
    refusals = probe.refusals()
    assert refusals, "the collector accepted everything: no overload reached it"
    assert any(a.transport == "http" for a in refusals) and any(a.transport == "grpc" for a in refusals)
    wrong = {(a.transport, a.status) for a in refusals
             if a.status not in (RETRYABLE_HTTP if a.transport == "http" else RETRYABLE_GRPC)}
    assert not wrong, wrong
    assert any("memory" in a.message for a in refusals), {a.message for a in refusals}


def test_collector_does_not_crash_and_recovers(overload: Overload) -> None:
    assert overload.pids[0] == overload.pids[1], "the collector restarted"
    assert overload.recovered_after is not None, "the collector still refuses after the load"
    assert overload.recovered_after <= RECOVERY_LIMIT
    assert overload.healthy_after, "the collector's health check fails after the load"


def test_refusing_alert_fires_and_resolves(overload: Overload) -> None:
    assert overload.alert_fired_after is not None, "OtelCollectorRefusingData did not fire"
    assert overload.alert_resolved_after is not None, "OtelCollectorRefusingData did not resolve"


def test_demo_serves_within_its_latency_objective(overload: Overload, stack: Stack) -> None:
    """Every research request answered during the overload, and as many within the demo's
    latency objective as its SLO asks. Its median is printed against the unloaded one and the
    LATENCY_TOLERANCE goal, which a 2-core machine does not meet even with a CPU for the demo
    (docs/reliability.md)."""
    failed = [status for status, _ in overload.loaded if status != 200]
    assert overload.loaded and not failed, failed[:10]
    assert len(overload.loaded) >= 0.9 * (OVERLOAD_SECONDS - SETTLE_SECONDS - 1) * DEMO_RPS
    slo = stack.spec["services"][stack.spec["demo"]["service"]]["slo"]
    assert _within_slo(overload.loaded, slo["latency_seconds"]) >= slo["latency_target"]
