"""Numbered telemetry for the drills: send, note what was acknowledged, count it in the backends.

:class:`NumberedStream` sends, from a thread, OTLP/HTTP protobuf requests to the collector:
per tick one request of spans, one of log lines and one of metric samples, every item carrying
its own number (``drill.seq``) and the stream's ``drill.run``. A request that is not
acknowledged (connection refused, HTTP 429/503, a timeout) is sent again, unchanged, until it
is, as the OpenTelemetry SDKs do; so the stream's ``acked`` sets are exactly what the collector
acknowledged, and a resent request the collector had already taken shows up as a duplicate.

The counting functions read every number back through the backends' own query APIs:
Jaeger's trace API (one trace per request, its id made from the run and the request number),
VictoriaLogs' LogsQL and Prometheus' PromQL (one series per sample, label ``seq``).
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Self

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SIGNALS = ("spans", "logs", "samples")
PATHS = {"spans": "/v1/traces", "logs": "/v1/logs", "samples": "/v1/metrics"}
RETRYABLE = frozenset({429, 502, 503, 504})
"""HTTP statuses OTLP/HTTP clients retry (the OTLP specification's list)."""


def _kv(key: str, value: str | int) -> KeyValue:
    any_value = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    return KeyValue(key=key, value=any_value)


def trace_id(run: str, request: int) -> bytes:
    """The trace of one spans request: the run's 8 bytes, then the request number."""
    return bytes.fromhex(run) + struct.pack(">Q", request)


def _resource(run: str) -> Resource:
    return Resource(attributes=[_kv("service.name", f"drill-{run}"), _kv("drill.run", run)])


def spans_request(run: str, request: int, seqs: range) -> bytes:
    now = time.time_ns()
    spans = [Span(trace_id=trace_id(run, request), span_id=struct.pack(">Q", seq + 1),
                  name="drill", kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=now - 1_000_000,
                  end_time_unix_nano=now, attributes=[_kv("drill.seq", seq)]) for seq in seqs]
    body = ExportTraceServiceRequest()
    scope = body.resource_spans.add(resource=_resource(run)).scope_spans.add()
    scope.spans.extend(spans)
    return body.SerializeToString()


def logs_request(run: str, request: int, seqs: range) -> bytes:
    now = time.time_ns()
    records = [LogRecord(time_unix_nano=now, observed_time_unix_nano=now, severity_text="INFO",
                         body=AnyValue(string_value=f"drill {run} line {seq}"),
                         attributes=[_kv("drill.seq", seq)]) for seq in seqs]
    body = ExportLogsServiceRequest()
    body.resource_logs.add(resource=_resource(run)).scope_logs.add().log_records.extend(records)
    return body.SerializeToString()


def samples_request(run: str, request: int, seqs: range) -> bytes:
    now = time.time_ns()
    points = [NumberDataPoint(time_unix_nano=now, as_int=seq,
                              attributes=[_kv("run", run), _kv("seq", str(seq))]) for seq in seqs]
    body = ExportMetricsServiceRequest()
    scope = body.resource_metrics.add(resource=_resource(run)).scope_metrics.add()
    scope.metrics.append(Metric(name="drill_sample", gauge=Gauge(data_points=points)))
    return body.SerializeToString()


BUILDERS = {"spans": spans_request, "logs": logs_request, "samples": samples_request}


@dataclass
class NumberedStream:
    """Numbered spans, log lines and samples at ``per_tick[signal]`` items every ``tick`` s.

    Use as a context manager; ``stop()`` ends sending (a request still unacknowledged is
    retried until ``drain_timeout``)."""

    otlp_http: str
    per_tick: dict[str, int] = field(default_factory=lambda: {"spans": 50, "logs": 50, "samples": 10})
    tick: float = 0.25
    max_seconds: float = 300.0
    drain_timeout: float = 60.0
    run: str = field(default_factory=lambda: os.urandom(8).hex())
    acked: dict[str, dict[int, float]] = field(default_factory=lambda: {s: {} for s in SIGNALS})
    statuses: Counter[str] = field(default_factory=Counter)
    retries: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = dict.fromkeys(SIGNALS, 0)
        self._threads = [threading.Thread(target=self._send_loop, args=(s,), daemon=True)
                         for s in SIGNALS if self.per_tick.get(s)]

    def __enter__(self) -> Self:
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self._stop.is_set():
            self._seconds = time.monotonic() - self._started
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.drain_timeout + 10)

    @property
    def seconds(self) -> float:
        """How long the stream sent (until ``stop()``)."""
        return getattr(self, "_seconds", 0.0) or time.monotonic() - self._started

    def sent(self, signal: str) -> int:
        return self._next[signal]

    def acked_before(self, signal: str, moment: float) -> set[int]:
        """The numbers acknowledged before ``moment`` (``time.monotonic()``)."""
        with self._lock:
            return {seq for seq, at in self.acked[signal].items() if at < moment}

    def _send_loop(self, signal: str) -> None:
        deadline = time.monotonic() + self.max_seconds
        request = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            first, size = self._next[signal], self.per_tick[signal]
            self._next[signal] = first + size
            seqs = range(first, first + size)
            body = BUILDERS[signal](self.run, request, seqs)
            if self._deliver(signal, body):
                now = time.monotonic()
                with self._lock:
                    self.acked[signal].update(dict.fromkeys(seqs, now))
            request += 1
            self._stop.wait(max(0.0, self.tick - (time.monotonic() - started)))

    def _deliver(self, signal: str, body: bytes) -> bool:
        """Send until acknowledged (or the drain time after ``stop()`` is over)."""
        give_up: float | None = None
        while True:
            status = post(self.otlp_http + PATHS[signal], body)
            with self._lock:
                self.statuses[status] += 1
            if status == "200":
                return True
            if self._stop.is_set():
                give_up = give_up or time.monotonic() + self.drain_timeout
                if time.monotonic() > give_up:
                    return False
            with self._lock:
                self.retries += 1
            time.sleep(0.2)


def post(url: str, body: bytes, timeout: float = 5.0) -> str:
    """POST one OTLP/HTTP protobuf request; the HTTP status, or the kind of failure."""
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 (the loopback collector)
                                     headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback)
            response.read()
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (OSError, urllib.error.URLError) as exc:
        return type(getattr(exc, "reason", exc)).__name__


def _fetch(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
           timeout: float = 30) -> bytes:
    """The body of a GET (or a POST with ``data``)."""
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310 (loopback)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback)
        raw = response.read()
    return raw


@dataclass(frozen=True)
class Count:
    """What one backend holds of a stream's numbers."""

    signal: str
    found: Counter[int]

    @property
    def unique(self) -> set[int]:
        return set(self.found)

    @property
    def duplicates(self) -> int:
        return sum(self.found.values()) - len(self.found)

    def lost(self, acked: set[int]) -> set[int]:
        return acked - self.unique


def jaeger_spans(query_url: str, stream: NumberedStream) -> Count:
    """Every span of the stream's traces, read trace by trace from Jaeger's query API."""
    found: Counter[int] = Counter()
    requests = -(-stream.sent("spans") // max(1, stream.per_tick.get("spans", 0)))
    for request in range(requests):
        url = f"{query_url}/api/traces/{trace_id(stream.run, request).hex()}"
        try:
            data = json.loads(_fetch(url))["data"]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                continue
            raise
        for trace in data:
            for span in trace["spans"]:
                found[int(span["spanID"], 16) - 1] += 1
    return Count("spans", found)


def victorialogs_lines(base: str, stream: NumberedStream, tenant: tuple[int, int] = (0, 0)) -> Count:
    """Every line of the stream, by its ``drill.seq`` field, from VictoriaLogs' LogsQL API."""
    query = f'drill.run:={json.dumps(stream.run)} | fields drill.seq'
    body = urllib.parse.urlencode({"query": query, "limit": "10000000"}).encode()
    headers = {"AccountID": str(tenant[0]), "ProjectID": str(tenant[1])}
    raw = _fetch(f"{base}/select/logsql/query", data=body, headers=headers)
    found: Counter[int] = Counter(int(json.loads(line)["drill.seq"])
                                  for line in raw.splitlines() if line.strip())
    return Count("logs", found)


def prometheus_samples(base: str, stream: NumberedStream, window: str = "1h") -> Count:
    """Every sample of the stream (one series per number), from Prometheus' query API."""
    query = f'count_over_time(drill_sample{{run="{stream.run}"}}[{window}])'
    body = urllib.parse.urlencode({"query": query}).encode()
    result = json.loads(_fetch(f"{base}/api/v1/query", data=body))["data"]["result"]
    found: Counter[int] = Counter({int(r["metric"]["seq"]): int(float(r["value"][1])) for r in result})
    return Count("samples", found)
