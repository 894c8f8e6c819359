"""Benchmarks (``make bench``): measured figures, never timed tests.

- ``up``: native ``up`` until every component is ready, on fresh state;
- ``log``: one log call through our pipeline vs bare structlog JSON vs stdlib logging;
- ``units``: CPU per span, per OTLP-encoded span (the SDK's encoder and ours), per metric point,
  the least telemetry a demo request must record, and a Flask request with the instrumentation's
  own metrics off and on;
- ``request``: the demo service bare, under the stock OpenTelemetry distro and under ours
  (``distros``: in a venv of the bench's own), for its heaviest and its lightest request, the app
  alone on one core, with what each request sends;
- ``spans``: spans per second one process exports to the collector over OTLP/HTTP;
- ``logs``: the log store's idle memory, ingest rate and correlation-id lookup
  (``logstore``);
- ``alerts``: the alert drill (``drill``) and the probe app's faults (``probe_faults``): fault
  start → PagerDuty notification per alert, split into phases (``alert_phases``), and fault
  cleared → resolve, on a native stack with local receivers.
The last four run against native stacks started here on fresh state (default ports).
"""

from __future__ import annotations

import functools
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import structlog
import yaml
from opentelemetry import trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from theodore_obs import native
from theodore_obs.paths import repo_root
from theodore_obs.spec import Spec, load_spec
from theodore_obs.testing.receivers import Receivers
from theodore_obs.timing import wait_until
from theodore_telemetry import otlp_encoding
from theodore_telemetry.log_export import EXPORT
from theodore_telemetry.logs import configure_logging
from theodore_telemetry.metrics import TheodoreMetrics

from .drill import EXPECTED, RESOLVES, DrillResult, drill_env, drill_spec, run_drill
from .probe_faults import EXPECTED as PROBE_EXPECTED
from .probe_faults import run_probe


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def time_to_healthy(runs: int = 3, env: str = "local") -> list[float]:
    """Seconds from ``up`` until every component is ready, each run on fresh state."""
    spec = load_spec(env)
    results = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="bench-up-") as tmp:
            state = native.State(Path(tmp))
            try:
                seconds = native.up(spec, state, say=lambda *_: None)
            finally:
                native.down(state, say=lambda *_: None)
        print(f"  run {run}: healthy in {seconds:.2f}s", flush=True)
        results.append(seconds)
    return results


def report_up(runs: int) -> str:
    results = time_to_healthy(runs)
    return (f"native `up` to all-healthy, {runs} runs on fresh state: median "
            f"{statistics.median(results):.2f}s (min {min(results):.2f}s, max {max(results):.2f}s)")


class _Discard(LogRecordExporter):
    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _per_call_us(call: Callable[[], None], calls: int, batch: int = 100) -> float:
    """Median microseconds per call, over batches of ``batch`` calls."""
    samples = []
    for _ in range(calls // batch):
        start = time.perf_counter()
        for _ in range(batch):
            call()
        samples.append((time.perf_counter() - start) / batch * 1e6)
    return statistics.median(samples)


def _cpu_per_call_us(call: Callable[[], None], calls: int, drain: Callable[[], object]) -> float:
    """Process CPU µs per call, every thread included, until ``drain`` has exported the rest."""
    start = time.process_time()
    for _ in range(calls):
        call()
    drain()
    return (time.process_time() - start) / calls * 1e6


OUR_LOG_CALL = "ours (structlog → redact → JSON, stdout + OTLP)"
BARE_STRUCTLOG = "bare structlog JSON"
SPAN = "span started and ended (SDK, batch processor)"
SUMMED_POINT = "metric point, counter summed in process"


def log_call_costs(calls: int = 20_000) -> dict[str, float]:
    """Median µs per log call, inside an active span, writing to /dev/null.

    The caller's latency is what a request pays; the last line is the whole cost, the export
    thread's share of building OTLP records included.
    """
    sink = open(os.devnull, "w")  # noqa: SIM115 (kept open for the whole benchmark)
    span = TracerProvider().get_tracer("bench").start_span("bench")
    fields = {"company": "acme", "api_key": "sk-proj-abcdefghijklmnopqrstuv", "pages": 3}
    results = {}
    with _active(span):
        provider = LoggerProvider()
        provider.add_log_record_processor(BatchLogRecordProcessor(_Discard()))
        set_logger_provider(provider)
        configure_logging(service="bench", environment="bench", otlp=True, stream=sink)
        ours = structlog.get_logger("bench")
        results[OUR_LOG_CALL] = _per_call_us(
            lambda: ours.info("researched company", **fields), calls)
        ours_cpu = _cpu_per_call_us(lambda: ours.info("researched company", **fields), calls,
                                    lambda: (EXPORT.flush(), provider.force_flush()))
        library = logging.getLogger("bench.library")
        ours_stdlib = _per_call_us(lambda: library.info("fetched %s in %d ms", "acme", 12), calls)

        structlog.configure(processors=[structlog.processors.add_log_level,
                                        structlog.processors.TimeStamper(fmt="iso"),
                                        structlog.processors.JSONRenderer()],
                            logger_factory=structlog.PrintLoggerFactory(sink),
                            cache_logger_on_first_use=True)
        bare = structlog.get_logger("bench")
        results[BARE_STRUCTLOG] = _per_call_us(
            lambda: bare.info("researched company", **fields), calls)

        stdlib = logging.getLogger("bench.stdlib")
        stdlib.propagate = False
        handler = logging.StreamHandler(sink)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        stdlib.addHandler(handler)
        results["stdlib logging (plain text)"] = _per_call_us(
            lambda: stdlib.info("researched company %s", "acme"), calls)
        results["ours, CPU of every thread (OTLP records built)"] = ours_cpu
        results["ours, a library's stdlib line (same chain)"] = ours_stdlib
    structlog.reset_defaults()
    return results


SERVER_SPAN_ATTRIBUTES = {
    "http.method": "GET", "http.server_name": "127.0.0.1", "http.scheme": "http", "net.host.port": 8000,
    "http.host": "127.0.0.1:8000", "http.target": "/companies", "net.peer.ip": "127.0.0.1",
    "net.peer.port": 51234, "http.user_agent": "Python-urllib/3.11", "http.flavor": "1.1",
    "http.route": "/companies", "http.status_code": 200, "theodore.correlation_id": "0" * 36,
}
"""What the Flask instrumentation and our correlation processor put on a server span."""


def telemetry_unit_costs(calls: int = 5_000) -> dict[str, float]:
    """CPU µs per unit of telemetry, on this machine, in this process: what a request pays per
    span, per OTLP-encoded span and per metric point, whatever instrumentation records them."""
    spans = TracerProvider()
    spans.add_span_processor(BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=calls * 2))
    tracer = spans.get_tracer("bench")

    def one_span() -> None:
        with tracer.start_as_current_span("GET /companies", attributes=SERVER_SPAN_ATTRIBUTES):
            pass

    finished = InMemorySpanExporter()
    recorded = TracerProvider()
    recorded.add_span_processor(SimpleSpanProcessor(finished))
    recorded.get_tracer("bench").start_span("GET /companies", attributes=SERVER_SPAN_ATTRIBUTES).end()
    batch = list(finished.get_finished_spans()) * 512
    ours = TheodoreMetrics(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    labels = {"endpoint": "/companies", "status_code": 200}
    with _active(spans.get_tracer("bench").start_span("request")):
        results = {
            SPAN: _cpu_per_call_us(one_span, calls, lambda: None),
            "span encoded to OTLP protobuf by the SDK's exporter": _cpu_per_call_us(
                lambda: encode_spans(batch).SerializePartialToString(), 10, lambda: None) / len(batch),
            "span encoded to OTLP protobuf by ours (otlp_encoding)": _cpu_per_call_us(
                lambda: otlp_encoding.encode_spans(batch).SerializePartialToString(), 10,
                lambda: None) / len(batch),
            "metric point, SDK counter inside a span (exemplar)": _cpu_per_call_us(
                lambda: ours.record("theodore_errors_total", 1, error_type="http_error", **labels),
                calls, lambda: None),
            "metric point, SDK histogram inside a span (exemplar)": _cpu_per_call_us(
                lambda: ours.record("theodore_request_duration_seconds", 0.012, endpoint="/companies",
                                    method="GET"), calls, lambda: None),
            SUMMED_POINT: _cpu_per_call_us(
                lambda: ours.record("theodore_requests_total", 1, method="GET", **labels), calls,
                lambda: None),
        }
    spans.shutdown()
    return results


LEAST_TELEMETRY_ASKED = {SPAN: 3, OUR_LOG_CALL: 2, SUMMED_POINT: 2}
"""The least telemetry one demo request needs: a server, a client and an AI span; the request's
log lines (two, at the least); a request and a domain metric point."""


def least_telemetry_us(unit_costs: dict[str, float], log_costs: dict[str, float]) -> float:
    """What ``LEAST_TELEMETRY_ASKED`` costs the request's own thread at the measured unit
    costs, even if every export ran on another core for nothing: a floor under the added p50."""
    costs = {**unit_costs, **log_costs}
    return sum(count * costs[unit] for unit, count in LEAST_TELEMETRY_ASKED.items())


@contextmanager
def _active(span: Any) -> Iterator[None]:
    with trace.use_span(span, end_on_exit=True):
        yield


@contextmanager
def _bench_stack(env: str = "local") -> Iterator[tuple[Spec, native.State]]:
    spec = load_spec(env)
    spec.data["demo"]["load_rps"] = 0
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        state = native.State(Path(tmp))
        native.up(spec, state, say=lambda *_: None)
        try:
            yield spec, state
        finally:
            native.down(state, say=lambda *_: None)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (every thread), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _latencies(url: str, requests_count: int | None = None, seconds: float | None = None) -> list[float]:
    """Milliseconds per sequential request: ``requests_count`` of them, or as many as fit in
    ``seconds``."""
    samples: list[float] = []
    deadline = time.perf_counter() + seconds if seconds is not None else None
    def more() -> bool:
        return len(samples) < requests_count if deadline is None else time.perf_counter() < deadline

    while more():
        start = time.perf_counter()
        urllib.request.urlopen(url, timeout=10).read()  # noqa: S310 (loopback)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


ENDPOINTS = {"research": "/research?company=acme", "companies": "/companies"}
"""The demo's heaviest request (scrape, LLM, store, enrichment) and its lightest (one query)."""

WITHOUT_ONE_SIGNAL = {
    "SDK disabled, stdout logs kept (OTEL_SDK_DISABLED=true)": {"OTEL_SDK_DISABLED": "true"},
    "spans not recorded (OTEL_TRACES_SAMPLER=always_off)": {"OTEL_TRACES_SAMPLER": "always_off"},
    "metrics not exported (OTEL_METRICS_EXPORTER=none)": {"OTEL_METRICS_EXPORTER": "none"},
    "logs at ERROR only (THEODORE_LOG_LEVEL=ERROR)": {"THEODORE_LOG_LEVEL": "ERROR"},
}
"""Instrumented runs with the SDK off or one signal turned down: what each signal costs a
research request (one run each). With the SDK disabled the instrumentation wrappers still run
around no-op spans and meters, and our logging still writes its JSON lines to stdout."""

WINDOW_SECONDS = 15.0
"""Each measurement lasts one metric export interval (the distro's OTEL_METRIC_EXPORT_INTERVAL),
so every window pays for exactly one metric export, as a long-running service does per 15 s."""


def _pin(pid: int, cpus: set[int]) -> dict[int, set[int]]:
    """Move every thread of ``pid`` to ``cpus`` (threads start where their creator runs);
    returns what each thread had, for ``_unpin``."""
    saved = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError, ValueError):  # a thread that just ended
            saved[int(task.name)] = os.sched_getaffinity(int(task.name))
            os.sched_setaffinity(int(task.name), cpus)
    return saved


def _unpin(saved: dict[int, set[int]]) -> None:
    for tid, cpus in saved.items():
        with suppress(OSError):
            os.sched_setaffinity(tid, cpus)


@contextmanager
def _demo_core(state: native.State) -> Iterator[set[int] | None]:
    """Reserve the last CPU for the demo app under test: the stack, its upstreams and this
    client move to the others, so the app's figures do not depend on where the scheduler put
    the collector's work. Yields the reserved CPU set (None on a one-CPU machine)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        yield None
        return
    saved: dict[int, set[int]] = {}
    for pid in [os.getpid(), *(info["pid"] for info in native.process_info(state) if info["pid"])]:
        saved.update(_pin(pid, set(cpus[:-1])))
    try:
        yield {cpus[-1]}
    finally:
        _unpin(saved)


def _bench_port(spec: Spec) -> int:
    """Where the measured demo listens: beside the stack's own demo, which keeps running."""
    return spec.data["services"][spec.data["demo"]["service"]]["port"] + 100


def _demo_command(spec: Spec, state: native.State, port: int, otel_env: dict[str, str] | None, store: str, *,
                  app_path: str | None, bin_dir: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """The demo's command line and environment as ``up`` starts it, on ``port`` with its SQLite
    file ``store``: under ``opentelemetry-instrument`` with the stack's environment plus
    ``otel_env``, or bare (no instrumentation, no OTEL_*) for None; with ``app_path`` first on its
    PYTHONPATH (another checkout's ``glue/src``, to measure that code); with the Python and
    ``opentelemetry-instrument`` of ``bin_dir`` (another virtualenv) instead of this one's."""
    demo = spec.data["demo"]
    command, app_env = native.demo_programs(spec.data, state)[demo["service"]]
    command = [f"--port={port}" if arg.startswith("--port=") else arg for arg in command]
    command = [f"--store={state.root / store}" if arg.startswith("--store=") else arg for arg in command]
    python = str(bin_dir / "python") if bin_dir else sys.executable
    arguments = command[command.index(sys.executable) + 1:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if app_path:
        env["PYTHONPATH"] = app_path
    if otel_env is None:
        command = [python, *arguments]
    else:
        command = [str(Path(python).parent / "opentelemetry-instrument"), python, *arguments]
        env.update(app_env)
        env.update(otel_env)
    if bin_dir:
        env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(bin_dir.parent)
    return command, env


@contextmanager
def _demo_app(spec: Spec, state: native.State, port: int, otel_env: dict[str, str] | None, store: str, *,
              cpus: set[int] | None, app_path: str | None, bin_dir: Path | None = None) -> Iterator[int]:
    """The demo of ``_demo_command``, its threads on ``cpus``. Yields its pid once it answers."""
    command, env = _demo_command(spec, state, port, otel_env, store, app_path=app_path, bin_dir=bin_dir)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        if cpus:
            _pin(process.pid, cpus)
        _wait_http(f"http://127.0.0.1:{port}/healthz")
        if cpus:
            _pin(process.pid, cpus)  # threads started before the first pin
        yield process.pid
    finally:
        process.terminate()
        process.wait(10)


def _serve(url: str, pid: int, seconds: float = WINDOW_SECONDS) -> dict[str, float]:
    """Sequential requests for ``seconds`` after 30 warm-up: latency percentiles, rate, and the
    server's CPU per request (every thread of it, from /proc)."""
    _latencies(url, 30)
    cpu_before = _cpu_seconds(pid)
    samples = _latencies(url, seconds=seconds)
    return {"seconds": seconds, "requests": len(samples), "p50_ms": _percentile(samples, 0.5),
            "p99_ms": _percentile(samples, 0.99), "rps": 1000 / statistics.mean(samples),
            "cpu_ms": (_cpu_seconds(pid) - cpu_before) / len(samples) * 1000}


def _collector_accepted(spec: Spec) -> dict[str, float]:
    """Spans and log records the collector's OTLP receiver has accepted so far (its own metrics)."""
    url = f"http://127.0.0.1:{spec.data['ports']['collector_telemetry']}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    totals = {"spans": 0.0, "log_records": 0.0}
    for line in text.splitlines():
        for signal in totals:
            if line.startswith(f"otelcol_receiver_accepted_{signal}_total{{") and 'receiver="otlp"' in line:
                totals[signal] += float(line.rsplit(" ", 1)[1])
    return totals


def _settled_accepted(spec: Spec, quiet_seconds: float = 7.0, timeout: float = 30.0) -> dict[str, float]:
    """The collector's counts once nothing new arrived for ``quiet_seconds`` (the SDK's batch
    processors export every 5 s at most)."""
    last, since = _collector_accepted(spec), time.monotonic()

    def quiet() -> bool:
        nonlocal last, since
        now = _collector_accepted(spec)
        if now != last:
            last, since = now, time.monotonic()
        return time.monotonic() - since >= quiet_seconds

    wait_until(quiet, timeout, every=1)  # still moving after ``timeout``: the counts as they are
    return last


ROUNDS = 3
"""Bare and instrumented runs alternate this many times per endpoint; figures are medians."""


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


BARE, STOCK, OURS = "bare", "stock distro", "ours"
SPANS_ONLY = "stock distro, spans only"
TWO_WAY: dict[str, dict[str, str] | None] = {BARE: None, OURS: {}}
"""The demo bare and under ``opentelemetry-instrument`` with this venv's (our) distro;
``distros.COMPARED`` adds the stock OpenTelemetry distro, whole and with its spans alone."""


def request_overhead(spec: Spec, state: native.State, seconds: float = WINDOW_SECONDS,
                     endpoints: Sequence[str] = tuple(ENDPOINTS), app_path: str | None = None, *,
                     setups: dict[str, dict[str, str] | None] = TWO_WAY, bin_dir: Path | None = None,
                     rounds: int = ROUNDS, with_signals: bool = True,
                     say: Callable[[str], object] = lambda _: None) -> dict[str, dict[str, dict[str, float]]]:
    """Per endpoint: the demo under each of ``setups`` (None: bare; otherwise the extra
    environment of an instrumented run), sequential requests on loopback.

    The setups alternate ``rounds`` times (a shared 2-core VM drifts; medians of alternating
    runs hold still). The first run of each instrumented setup also counts what each request
    sent the collector (spans, log lines). The research request is then measured once more
    per row of ``WITHOUT_ONE_SIGNAL`` (ours) unless not ``with_signals``.
    """
    port = _bench_port(spec)
    results: dict[str, dict[str, dict[str, float]]] = {}
    with _demo_core(state) as cpus:
        app = functools.partial(_demo_app, spec, state, port, cpus=cpus, app_path=app_path, bin_dir=bin_dir)
        for endpoint in endpoints:
            url, store = f"http://127.0.0.1:{port}{ENDPOINTS[endpoint]}", f"bench-{endpoint}.db"
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in setups}
            sent: dict[str, dict[str, float]] = {}
            for round_number in range(1, rounds + 1):
                for name, otel_env in setups.items():
                    say(f"  GET {ENDPOINTS[endpoint]}, round {round_number}/{rounds}: {name} "
                        f"({seconds:.0f} s)")
                    with app(otel_env, store) as pid:
                        if otel_env is None or name in sent:
                            runs[name].append(_serve(url, pid, seconds))
                            continue
                        _latencies(url, 30)
                        before = _settled_accepted(spec)
                        runs[name].append(_serve(url, pid, seconds))
                        after = _settled_accepted(spec)
                        requests_sent = runs[name][-1]["requests"] + 30
                        sent[name] = {f"{signal}_per_request": (after[signal] - before[signal])
                                      / requests_sent for signal in before}
            results[endpoint] = {name: _median_run(figures) for name, figures in runs.items()}
            for name, counts in sent.items():
                results[endpoint][name].update(counts)
        if with_signals and "research" in endpoints and OURS in setups:
            for name, turned_down in WITHOUT_ONE_SIGNAL.items():
                say(f"  GET {ENDPOINTS['research']}, ours with {name} ({seconds:.0f} s)")
                with app({**(setups[OURS] or {}), **turned_down}, "bench-research.db") as pid:
                    results["research"][name] = _serve(f"http://127.0.0.1:{port}{ENDPOINTS['research']}",
                                                       pid, seconds)
    return results


def _wait_http(url: str, timeout: float = 20) -> None:
    def answers() -> bool:
        try:
            urllib.request.urlopen(url, timeout=1).read()  # noqa: S310 (loopback)
            return True
        except OSError:
            return False

    wait_until(answers, timeout, every=0.2, what=f"{url} did not answer within {timeout:.0f}s")


SPAN_EXPORT_SCRIPT = """
import sys, time
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

class Counting(OTLPSpanExporter):
    exported = 0
    def export(self, spans):
        result = super().export(spans)
        if result is SpanExportResult.SUCCESS:
            Counting.exported += len(spans)
        return result

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(Counting(endpoint=sys.argv[1]), max_queue_size=65536,
                                               max_export_batch_size=2048, schedule_delay_millis=200))
tracer = provider.get_tracer("bench")
start, seconds = time.perf_counter(), float(sys.argv[2])
while time.perf_counter() - start < seconds:
    with tracer.start_as_current_span("op", attributes={"k": "v"}):
        pass
provider.shutdown()
print(Counting.exported / (time.perf_counter() - start))
"""


def spans_per_second(spec: Spec, seconds: float = 5.0) -> float:
    """Spans one process creates and gets accepted by the collector per second."""
    endpoint = f"http://127.0.0.1:{spec.data['ports']['otlp_http']}/v1/traces"
    out = subprocess.run([sys.executable, "-c", SPAN_EXPORT_SCRIPT, endpoint, str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 60, check=True)
    return float(out.stdout.strip().splitlines()[-1])


FLASK_REQUESTS_SCRIPT = """
import sys, time, flask
app = flask.Flask("bench")
app.add_url_rule("/", "index", lambda: "ok")
client = app.test_client()
for _ in range(300):
    client.get("/")
start, calls = time.process_time(), int(sys.argv[1])
for _ in range(calls):
    client.get("/")
print((time.process_time() - start) / calls * 1e6)
"""


def instrumentation_metrics_cost(calls: int = 3000, rounds: int = 3) -> dict[str, float]:
    """CPU µs per in-process Flask request under ``opentelemetry-instrument``, with the Flask
    instrumentation's own metrics off (our default) and on (``THEODORE_INSTRUMENTATION_METRICS``);
    alternating runs, medians. Spans are recorded but not exported, logs at ERROR, and metrics
    go to an SDK meter provider that exports once at exit."""
    instrument = str(Path(sys.executable).parent / "opentelemetry-instrument")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "THEODORE_"))}
    env.update({"OTEL_SERVICE_NAME": "bench", "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
                "OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": "600000",
                "THEODORE_LOG_LEVEL": "ERROR"})
    samples: dict[str, list[float]] = {"off (default)": [], "on": []}
    for _ in range(rounds):
        for name, switch in (("off (default)", "false"), ("on", "true")):
            out = subprocess.run([instrument, sys.executable, "-c", FLASK_REQUESTS_SCRIPT, str(calls)],
                                 capture_output=True, text=True, timeout=300, check=True,
                                 env={**env, "THEODORE_INSTRUMENTATION_METRICS": switch})
            samples[name].append(float(out.stdout.strip().splitlines()[0]))
    return {name: statistics.median(values) for name, values in samples.items()}


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def alert_latency(runs: int = 1, port_offset: int = 0,
                  env: str = "local") -> list[tuple[DrillResult, DrillResult]]:
    """Per run on a fresh native stack: the alert drill (the demo's faults), then the probe
    app's faults (``probe_faults``); fault start → PagerDuty notification, split into phases."""
    results = []
    for _ in range(runs):
        with Receivers() as receivers, tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
            raw = yaml.safe_load((repo_root() / "stack.yaml").read_text())
            spec_file = Path(tmp) / "stack.yaml"
            spec_file.write_text(yaml.safe_dump(drill_spec(raw, receivers, port_offset)))
            spec, state = load_spec(env, spec_file), native.State(Path(tmp) / "state")
            with _environ(drill_env(receivers)):
                native.up(spec, state, say=lambda *_: None)
            try:
                drill = run_drill(spec.data, receivers, say=lambda *_: None)
                probe = run_probe(spec.data, receivers)
                prometheus = f"http://127.0.0.1:{spec.data['ports']['prometheus']}"
                drill.read_phases(prometheus, EXPECTED)
                probe.read_phases(prometheus, PROBE_EXPECTED)
                results.append((drill, probe))
            finally:
                native.down(state, say=lambda *_: None)
    return results


def _latency_line(alertname: str, results: list[DrillResult]) -> str:
    seconds = [r.latency(alertname) for r in results]
    phases = [r.phases[alertname] for r in results if alertname in r.phases]
    split = ""
    if phases:
        middle = sorted(phases, key=lambda p: p.paged)[len(phases) // 2]
        split = f"; median run: {middle.describe()}"
    return (f"  {alertname:<26} {statistics.median(seconds):5.1f} s  "
            f"({', '.join(f'{s:.1f}' for s in seconds)}){split}")


def report_alert_latency(runs: int = 1, port_offset: int = 0) -> str:
    results = alert_latency(runs, port_offset)
    drills, probes = [d for d, _ in results], [p for _, p in results]
    lines = [f"alert latency, fault start → PagerDuty notification at a local receiver "
             f"(local profile, {runs} run(s), median):"]
    lines += [_latency_line(alertname, drills) for alertname in EXPECTED]
    lines += [_latency_line(alertname, probes) for alertname in PROBE_EXPECTED]
    recovery = [r.recovery for r in drills]
    lines.append(f"  resolve of {RESOLVES}, after the faults were cleared: "
                 f"{statistics.median(recovery):5.1f} s ({', '.join(f'{s:.1f}' for s in recovery)})")
    return "\n".join(lines)


def _ratio(part: float, whole: float) -> str:
    """``part / whole`` as ``0.70x``; n/a when ``whole`` is not above zero (a run in the noise)."""
    return f"{part / whole:.2f}x" if whole > 0 else "n/a"


def _ratios(figures: dict[str, float], base: dict[str, float]) -> str:
    return (f"CPU {figures['cpu_ms'] / base['cpu_ms']:.2f}x, p50 {figures['p50_ms'] / base['p50_ms']:.2f}x, "
            f"p99 {figures['p99_ms'] / base['p99_ms']:.2f}x, throughput {figures['rps'] / base['rps']:.2f}x")


def _ratio_lines(runs: dict[str, dict[str, float]]) -> list[str]:
    """Each instrumented setup against bare, ours against the stock distro, and both against
    what the stock distro's spans alone add (``SPANS_ONLY``), as ratios."""
    bare, lines = runs[BARE], []
    for name in (n for n in runs if n in (STOCK, SPANS_ONLY, OURS)):
        lines.append(f"    {name} / bare: {_ratios(runs[name], bare)}")
    added = {name: runs[name]["cpu_ms"] - bare["cpu_ms"] for name in (STOCK, SPANS_ONLY, OURS)
             if name in runs}
    if STOCK in runs and OURS in runs:
        added_p50 = {name: runs[name]["p50_ms"] - bare["p50_ms"] for name in (STOCK, OURS)}
        lines.append(f"    ours / stock distro: added CPU {_ratio(added[OURS], added[STOCK])}, added p50 "
                     f"{_ratio(added_p50[OURS], added_p50[STOCK])}; {_ratios(runs[OURS], runs[STOCK])}")
    if SPANS_ONLY in runs and STOCK in runs and OURS in runs:
        lines.append(f"    the stock distro's spans alone add {added[SPANS_ONLY] * 1000:.0f} µs of CPU, "
                     f"{_ratio(added[SPANS_ONLY], added[STOCK])} of all it adds; ours adds "
                     f"{_ratio(added[OURS], added[SPANS_ONLY])} what those spans alone cost")
    return lines


def report_request_overhead(overhead: dict[str, dict[str, dict[str, float]]],
                            rounds: int = ROUNDS) -> list[str]:
    window = next(iter(overhead.values()))[BARE]["seconds"]
    lines = [f"demo request, sequential on loopback, {window:.0f} s per run after 30 warm-up, the "
             f"app alone on one core; server CPU from /proc (every thread):"]

    def row(name: str, figures: dict[str, float]) -> str:
        return (f"    {name:<60} p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms  "
                f"{figures['rps']:6.1f} req/s  CPU {figures['cpu_ms']:5.2f} ms/req")

    for endpoint, runs in overhead.items():
        setups = [name for name in runs if name not in WITHOUT_ONE_SIGNAL]
        lines.append(f"  GET {ENDPOINTS[endpoint]}, median of {rounds} alternating runs; per request, "
                     + "; ".join(f"{name} sends {runs[name]['spans_per_request']:.1f} spans and "
                                 f"{runs[name]['log_records_per_request']:.1f} log lines"
                                 for name in setups if "spans_per_request" in runs[name]) + ":")
        lines += [row(name, runs[name]) for name in setups]
        bare = runs[BARE]
        for name in setups[1:]:
            added = (runs[name]["p50_ms"] - bare["p50_ms"]) * 1000
            cpu = (runs[name]["cpu_ms"] - bare["cpu_ms"]) * 1000
            lines.append(f"    {name} adds {added:.0f} µs at p50 and {cpu:.0f} µs of server CPU per "
                         f"request; throughput {1 - runs[name]['rps'] / bare['rps']:.0%} lower")
        lines += _ratio_lines(runs)
        turned_down = [name for name in runs if name in WITHOUT_ONE_SIGNAL]
        if turned_down:
            lines.append("    ours, one run each, with:")
            lines += [row("  " + name, runs[name]) for name in turned_down]
    return lines


def compare_settings(variants: dict[str, dict[str, str]], endpoint: str = "research",
                     rounds: int = ROUNDS) -> str:
    """The instrumented demo under each variant's extra environment, the variants alternating
    ``rounds`` times (medians): settings compared on the same stretch of a drifting VM."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    with _bench_stack() as (spec, state), _demo_core(state) as cpus:
        port = _bench_port(spec)
        url, store = f"http://127.0.0.1:{port}{ENDPOINTS[endpoint]}", f"bench-{endpoint}.db"
        for _ in range(rounds):
            for name, env in variants.items():
                with _demo_app(spec, state, port, env, store, cpus=cpus, app_path=None) as pid:
                    runs[name].append(_serve(url, pid))
    lines = [f"instrumented GET {ENDPOINTS[endpoint]}, median of {rounds} alternating "
             f"{WINDOW_SECONDS:.0f} s runs:"]
    for name, figures in runs.items():
        median = _median_run(figures)
        lines.append(f"  {name:<40} p50 {median['p50_ms']:6.2f} ms  p99 {median['p99_ms']:6.2f} ms  "
                     f"{median['rps']:6.1f} req/s  CPU {median['cpu_ms']:5.2f} ms/req")
    return "\n".join(lines)


def report_requests(endpoints: Sequence[str] = tuple(ENDPOINTS), app_path: str | None = None) -> str:
    """The request figures alone, on a native stack of their own; ``app_path`` measures the demo
    and telemetry of another checkout (``git worktree add /tmp/old <commit>`` →
    ``/tmp/old/glue/src``)."""
    with _bench_stack() as (spec, state):
        return "\n".join(report_request_overhead(request_overhead(spec, state, endpoints=endpoints,
                                                                   app_path=app_path)))


def report_all(runs: int) -> str:
    lines = [report_up(runs), "", "log call, median µs (20,000 calls, inside a span):"]
    costs = log_call_costs()
    for name, micros in costs.items():
        lines.append(f"  {name:<52} {micros:6.2f} µs")
    lines.append(f"  ours / bare structlog = {costs[OUR_LOG_CALL] / costs[BARE_STRUCTLOG]:.2f}x")
    lines += ["", "telemetry unit costs, CPU µs (a server span with 13 attributes):"]
    unit_costs = telemetry_unit_costs()
    for name, micros in unit_costs.items():
        lines.append(f"  {name:<52} {micros:6.1f} µs")
    lines.append(f"  the least a demo request must record (3 spans, 2 log lines, 2 metric points) costs its "
                 f"thread {least_telemetry_us(unit_costs, costs):.0f} µs at these unit costs")
    flask = instrumentation_metrics_cost()
    lines.append(f"  a Flask request in process, the instrumentation's own metrics off (default) / on: "
                 f"{flask['off (default)']:.0f} / {flask['on']:.0f} µs CPU")
    from .distros import compare_distros  # noqa: PLC0415 (it imports this module)
    with _bench_stack() as (spec, state):
        compared = compare_distros(spec, state, say=lambda line: print(line, flush=True))
        lines += ["", *report_request_overhead(compared)]
        lines += ["", f"spans exported by one process: {spans_per_second(spec):,.0f} spans/s"]
    from .logstore import report_log_store  # noqa: PLC0415 (it reuses _bench_stack)
    lines += ["", *report_log_store()]
    lines += ["", report_alert_latency()]
    return "\n".join(lines)


__all__ = ["alert_latency", "compare_settings", "instrumentation_metrics_cost", "least_telemetry_us",
           "log_call_costs", "report_alert_latency", "report_all", "report_request_overhead",
           "report_requests", "request_overhead", "spans_per_second", "telemetry_unit_costs"]
