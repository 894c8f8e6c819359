"""Overload for the collector: telemetrygen at a set rate, a probe that records how the
collector answers, and the collector's own receiver counters.

:class:`Generator` runs ``telemetrygen traces`` and ``telemetrygen logs`` (OTLP/gRPC, the
OpenTelemetry Go SDK's exporters: they retry what is refused, with backoff; spans that do not
fit the SDK's queue meanwhile are dropped in the generator) for a fixed time.
:class:`RefusalProbe` sends one small numbered request per signal and transport every
``every`` seconds, OTLP/HTTP and OTLP/gRPC, never retried, and keeps each answer: the HTTP
status or gRPC code and the message the collector gave. :func:`receiver_items` reads the
collector's ``otelcol_receiver_accepted_*`` and ``otelcol_receiver_refused_*`` counters.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import grpc
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import (
    logs_service_pb2,
    logs_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from prometheus_client.parser import text_string_to_metric_families
from theodore_bench import numbered
from theodore_obs.tools import binary_path

SPANS_PER_TRACE = 10
"""telemetrygen makes each trace a root span and SPANS_PER_TRACE - 1 children."""
BATCH = 1000
"""Items per export request (telemetrygen's --batch-size)."""
WORKER_RATE = 2000
"""Items/s per telemetrygen worker: its rate limiter waits once per item with a burst of one, and
falls far short above a few thousand a second (4 workers at 12,500/s each reached 4,000/s)."""
TRACE_PROCESSES = 5
"""telemetrygen processes sending spans: each has one batch span processor, which exports one
request at a time, so one process is held to what the collector answers serially."""


@dataclass
class Generator:
    """telemetrygen sending ``spans_per_s`` spans and ``logs_per_s`` log records a second to
    ``otlp_grpc`` (host:port) for ``seconds``; its output goes to ``logs``-NAME.log."""

    otlp_grpc: str
    spans_per_s: int
    logs_per_s: int
    seconds: float
    logs: Path = Path("telemetrygen")
    generated: dict[str, int] = field(default_factory=dict)

    def _command(self, signal: str, per_s: float) -> list[str]:
        workers = max(1, round(per_s / WORKER_RATE))
        command = [str(binary_path("telemetrygen")), signal, "--otlp-endpoint", self.otlp_grpc, "--otlp-insecure",
                   "--workers", str(workers), "--rate", f"{per_s / workers:g}", "--duration", f"{self.seconds:g}s",
                   "--batch-size", str(BATCH), "--service", "drill-overload", "--allow-export-failures"]
        return command + (["--child-spans", str(SPANS_PER_TRACE - 1)] if signal == "traces" else [])

    def __enter__(self) -> Self:
        self.started = time.monotonic()
        commands = {f"traces-{n}": self._command("traces", self.spans_per_s / TRACE_PROCESSES)
                    for n in range(TRACE_PROCESSES)}
        commands["logs"] = self._command("logs", self.logs_per_s)
        self._processes = {}
        for name, command in commands.items():
            out = open(f"{self.logs}-{name}.log", "w")  # closed in wait()
            self._processes[name] = (subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT), out)
        return self

    def wait(self, grace: float = 15.0) -> None:
        """Until every generator ends; one still flushing ``grace`` s after its time is stopped."""
        for process, out in self._processes.values():
            try:
                process.wait(max(0.0, self.started + self.seconds + grace - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            out.close()
        self.generated = {"spans": 0, "logs": 0}
        for name in self._processes:
            # Each worker's last line: `traces generated {"worker": 0, "traces": 1234}`.
            signal = name.split("-")[0]
            key, per_item = f'"{signal}": ', SPANS_PER_TRACE if signal == "traces" else 1
            text = Path(f"{self.logs}-{name}.log").read_text()
            self.generated["spans" if signal == "traces" else "logs"] += per_item * sum(
                int(line.split(key, 1)[1].rstrip("}").split(",")[0])
                for line in text.splitlines() if f"{signal} generated" in line and key in line)

    def __exit__(self, *_: object) -> None:
        if not self.generated:
            self.wait()


def _http_answer(url: str, body: bytes) -> tuple[str, str]:
    """POST one OTLP/HTTP protobuf request: the status and the collector's message."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
            return str(response.status), ""
    except urllib.error.HTTPError as exc:
        status = status_pb2.Status()
        try:
            status.ParseFromString(exc.read())
        except Exception:  # noqa: BLE001 (a body that is not a google.rpc.Status: keep the code)
            status.message = ""
        return str(exc.code), status.message
    except OSError as exc:
        return type(getattr(exc, "reason", exc)).__name__, str(exc)


@dataclass(frozen=True)
class Answer:
    at: float
    transport: str
    signal: str
    status: str
    message: str

    @property
    def accepted(self) -> bool:
        return self.status in {"200", "OK"}


class RefusalProbe:
    """Small numbered spans and log requests every ``every`` s over both transports, in a thread."""

    def __init__(self, otlp_http: str, otlp_grpc: str, every: float = 0.25) -> None:
        self.otlp_http, self.every = otlp_http, every
        self.answers: list[Answer] = []
        self.run = os.urandom(8).hex()
        self._channel = grpc.insecure_channel(otlp_grpc)
        self._stubs = {"spans": trace_service_pb2_grpc.TraceServiceStub(self._channel),
                       "logs": logs_service_pb2_grpc.LogsServiceStub(self._channel)}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _grpc_answer(self, signal: str, body: bytes) -> tuple[str, str]:
        request = (trace_service_pb2.ExportTraceServiceRequest if signal == "spans"
                   else logs_service_pb2.ExportLogsServiceRequest).FromString(body)
        try:
            self._stubs[signal].Export(request, timeout=5)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details() or ""
        return "OK", ""

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            started = time.monotonic()
            for signal in ("spans", "logs"):
                body = numbered.BUILDERS[signal](self.run, n, range(n, n + 1))
                status, message = _http_answer(self.otlp_http + numbered.PATHS[signal], body)
                self.answers.append(Answer(time.monotonic(), "http", signal, status, message))
                status, message = self._grpc_answer(signal, body)
                self.answers.append(Answer(time.monotonic(), "grpc", signal, status, message))
            n += 1
            self._stop.wait(max(0.0, self.every - (time.monotonic() - started)))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._channel.close()

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter[tuple[str, str]]:
        """(transport, status) → answers between ``since`` and ``until`` (``time.monotonic()``)."""
        return Counter((a.transport, a.status) for a in list(self.answers) if since <= a.at < until)

    def refusals(self) -> list[Answer]:
        return [a for a in list(self.answers) if not a.accepted]

    def accepted_since(self, moment: float) -> bool:
        """Every transport and signal has had an answer after ``moment`` and all of those were accepted."""
        recent = [a for a in list(self.answers) if a.at >= moment]
        kinds = {(a.transport, a.signal) for a in recent}
        return len(kinds) == 4 and all(a.accepted for a in recent)


RECEIVER_COUNTERS = {"spans": "otelcol_receiver_{}_spans", "logs": "otelcol_receiver_{}_log_records"}


def _families(telemetry_url: str) -> Iterator[Any]:
    with urllib.request.urlopen(telemetry_url + "/metrics", timeout=10) as response:
        return text_string_to_metric_families(response.read().decode())


def collector_gauge(telemetry_url: str, name: str) -> float:
    """The value of one of the collector's own gauges (summed over its series)."""
    return sum(s.value for f in _families(telemetry_url) for s in f.samples if s.name == name)


def receiver_items(telemetry_url: str) -> dict[tuple[str, str, str], float]:
    """(signal, accepted|refused, transport) → items the collector's OTLP receiver counted so far."""
    names = {template.format(kind): (signal, kind) for signal, template in RECEIVER_COUNTERS.items()
             for kind in ("accepted", "refused")}
    found: dict[tuple[str, str, str], float] = Counter()
    for family in _families(telemetry_url):
        if family.name not in names:
            continue
        signal, kind = names[family.name]
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("receiver") == "otlp":
                found[signal, kind, sample.labels.get("transport", "")] += sample.value
    return found
