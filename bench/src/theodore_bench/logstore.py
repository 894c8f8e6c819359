"""Log store figures (part of ``make bench``; alone: ``python -m theodore_bench.logstore``).

On a native stack of its own (fresh state, default ports, the demo's load off):
- idle RSS of VictoriaLogs and of every stack component, once all are ready;
- log lines per second ingested through the collector (OTLP/HTTP in, VictoriaLogs out), every
  line numbered and counted back, so a lost line shows; beside it, the same lines posted
  straight to VictoriaLogs' own OTLP endpoint in the same run (the collector's share of the cost);
- a correlation-id lookup (``correlation_id:="…"``) over 1 M stored lines, p50 and p95.
"""

from __future__ import annotations

import json
import random
import statistics
import time
import urllib.parse
import urllib.request
from typing import Any

from theodore_obs import native
from theodore_obs.components import native_components
from theodore_obs.spec import log_tenant
from theodore_obs.timing import wait_until

from .bench import _bench_stack

STACK = tuple(c.name for c in native_components())
"""Every component the native runtime runs (the registry's), whose RSS the idle figure sums."""


def rss_mib(pid: int) -> float:
    """Resident memory of one process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for row in status:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return 0.0


def idle_rss(state: native.State, settle_s: float = 10.0) -> dict[str, float]:
    """MiB per stack component after ``settle_s`` idle seconds, plus their total."""
    time.sleep(settle_s)
    pids = {p["name"]: p["pid"] for p in native.process_info(state)}
    found = {name: rss_mib(pids[name]) for name in STACK if pids.get(name)}
    return {**found, "total": sum(found.values())}


def _headers(spec: dict[str, Any]) -> dict[str, str]:
    account, project = log_tenant(spec)
    return {"AccountID": str(account), "ProjectID": str(project)}


def _logsql(spec: dict[str, Any], query: str, timeout: float = 60) -> list[dict[str, str]]:
    url = f"http://127.0.0.1:{spec['ports']['victorialogs']}/select/logsql/query"
    request = urllib.request.Request(url, data=urllib.parse.urlencode({"query": query}).encode(),
                                     headers=_headers(spec), method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback)
        return [json.loads(row) for row in response.read().splitlines() if row.strip()]


def _count(spec: dict[str, Any], query: str) -> int:
    rows = _logsql(spec, f"{query} | stats count() as n")
    return int(rows[0]["n"]) if rows else 0


def _otlp_batch(service: str, run: str, first: int, size: int) -> bytes:
    now = time.time_ns()
    records = [{"timeUnixNano": str(now + i), "severityText": "INFO", "severityNumber": 9,
                "body": {"stringValue": f"bench line {first + i}"},
                "attributes": [{"key": "bench_run", "value": {"stringValue": run}},
                               {"key": "seq", "value": {"intValue": str(first + i)}}]}
               for i in range(size)]
    return json.dumps({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeLogs": [{"logRecords": records}]}]}).encode()


def _protobuf(batch_json: bytes) -> bytes:
    from google.protobuf import json_format  # noqa: PLC0415 (bench only)
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: PLC0415
        ExportLogsServiceRequest,
    )
    return json_format.Parse(batch_json, ExportLogsServiceRequest()).SerializeToString()


def ingest_rate(spec: dict[str, Any], lines: int = 100_000, batch: int = 1000,
                timeout_s: float = 120, *, direct: bool = False) -> dict[str, float]:
    """Lines/s from the first OTLP request until VictoriaLogs holds all of them (``lost``
    counts what never arrived within ``timeout_s``): through the collector, or ``direct`` to
    VictoriaLogs' OTLP endpoint (protobuf, the stream fields and tenant the collector sends)."""
    run = f"run-{random.getrandbits(32):08x}"
    if direct:
        url = f"http://127.0.0.1:{spec['ports']['victorialogs']}/insert/opentelemetry/v1/logs"
        headers = {**_headers(spec), "Content-Type": "application/x-protobuf",
                   "VL-Stream-Fields": ",".join(spec["log_store"]["stream_fields"])}
    else:
        url = f"http://127.0.0.1:{spec['ports']['otlp_http']}/v1/logs"
        headers = {"Content-Type": "application/json"}
    bodies = [_otlp_batch("bench-logs", run, first, batch) for first in range(0, lines, batch)]
    if direct:
        bodies = [_protobuf(body) for body in bodies]  # encoded before the clock starts
    start = time.perf_counter()
    for body in bodies:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            response.read()
    sent_s = time.perf_counter() - start
    counts = [0]

    def all_stored() -> bool:
        counts.append(_count(spec, f"bench_run:={json.dumps(run)}"))
        return counts[-1] >= lines

    wait_until(all_stored, timeout_s, every=0.2)  # what is missing by then counts as lost
    stored, stored_s = counts[-1], time.perf_counter() - start
    distinct = _count(spec, f"bench_run:={json.dumps(run)} | uniq by (seq)")
    return {"lines": lines, "sent_s": sent_s, "stored_s": stored_s, "lines_per_s": stored / stored_s,
            "stored": stored, "lost": lines - distinct, "duplicates": stored - distinct}


def _jsonline_ingest(spec: dict[str, Any], total: int, per_id: int, chunk: int = 50_000) -> list[str]:
    """``total`` lines written straight into VictoriaLogs, ``per_id`` per correlation id."""
    url = (f"http://127.0.0.1:{spec['ports']['victorialogs']}/insert/jsonline?"
           + urllib.parse.urlencode({"_stream_fields": "service.name", "_msg_field": "msg"}))
    ids = [f"cid-{i:07d}-{random.getrandbits(24):06x}" for i in range(total // per_id)]
    for first in range(0, total, chunk):
        body = "".join(json.dumps({"msg": f"research step {n}", "service.name": "bench-lookup",
                                   "correlation_id": ids[n // per_id], "level": "info"}) + "\n"
                       for n in range(first, min(first + chunk, total)))
        headers = {**_headers(spec), "Content-Type": "application/stream+json"}
        request = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers)
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (loopback)
            response.read()
    return ids


def correlation_lookup(spec: dict[str, Any], total: int = 1_000_000, per_id: int = 10,
                       queries: int = 30) -> dict[str, float]:
    """Milliseconds to find one correlation id's lines among ``total`` stored ones."""
    ids = _jsonline_ingest(spec, total, per_id)
    wait_until(lambda: _count(spec, "service.name:=bench-lookup") >= total, 120, every=0.5)
    samples = []
    for cid in random.sample(ids, queries):
        start = time.perf_counter()
        rows = _logsql(spec, f"correlation_id:={json.dumps(cid)}")
        samples.append((time.perf_counter() - start) * 1000)
        assert len(rows) == per_id, f"{cid}: {len(rows)} lines, expected {per_id}"
    samples.sort()
    return {"stored": total, "p50_ms": statistics.median(samples),
            "p95_ms": samples[int(0.95 * (len(samples) - 1))]}


def report_log_store() -> list[str]:
    with _bench_stack() as (spec, state):
        rss = idle_rss(state)
        rate = ingest_rate(spec.data)
        direct = ingest_rate(spec.data, direct=True)
        lookup = correlation_lookup(spec.data)
    components = ", ".join(f"{name} {mib:.0f}" for name, mib in rss.items() if name != "total")
    return [
        "log store (VictoriaLogs), on a native stack of its own:",
        f"  idle RSS: VictoriaLogs {rss['victorialogs']:.0f} MiB; the whole stack "
        f"{rss['total']:.0f} MiB ({components})",
        f"  {rate['lines']:,.0f} lines through the collector (OTLP/HTTP, batches of 1,000): "
        f"{rate['lines_per_s']:,.0f} lines/s sent to stored, lost {rate['lost']:.0f}, "
        f"duplicates {rate['duplicates']:.0f}; straight to VictoriaLogs' OTLP endpoint "
        f"{direct['lines_per_s']:,.0f} lines/s (lost {direct['lost']:.0f}): through the collector = "
        f"{rate['lines_per_s'] / direct['lines_per_s']:.2f}x direct",
        f"  correlation-id lookup over {lookup['stored']:,.0f} stored lines: p50 "
        f"{lookup['p50_ms']:.1f} ms, p95 {lookup['p95_ms']:.1f} ms",
    ]


if __name__ == "__main__":
    print("\n".join(report_log_store()))
