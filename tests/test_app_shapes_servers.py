"""Pre-fork servers, FastAPI and Celery under `opentelemetry-instrument`, on the native stack.

Apps the project does not know (tests/apps/shapes_*.py, no observability code of ours) run as a
user runs them: gunicorn with sync and with gthread workers, uvicorn with several workers, a
Celery worker with its prefork pool, each as `opentelemetry-instrument <server> ...`. All of them
run at once against one stack; then they are stopped as an operator stops them (SIGTERM) and the
backends are asked what arrived:

- every worker exported its traces, logs and metrics under its own `service.instance.id`, each
  request exactly once (one server span, one log line, one count), nothing lost at exit;
- the FastAPI app: server and client spans in one trace, the correlation ID echoed, in baggage
  downstream, on spans and JSON log lines; a streamed body arrives chunk by chunk; a websocket
  round trip works;
- a Celery task queued from a request (kombu's filesystem transport: no broker server) carries
  the request's trace and correlation ID into the worker's spans and logs.

The native stack runs on the spec's ports shifted by PORT_OFFSET; where a Docker engine
answers, the same tests run on the compose stack too (``conftest.runtime_stack``).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect as websocket_connect

from .conftest import RUNTIMES, runtime_stack
from .support.victorialogs import json_lines, logsql_string, query_logs
from .test_native import eventually, get_json, prom_query, url

PORT_OFFSET = 700
WORKERS = 2
HEADER = "X-Correlation-ID"
APPS = Path(__file__).parent / "apps"
INSTANCE = "service.instance.id"


@dataclass
class Server:
    """One server (or the Celery worker) as started, and what the test sent it."""

    name: str
    service: str
    port: int
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    served: dict[str, int] = field(default_factory=dict)
    """marker → pid of the worker that answered."""
    extra: dict[str, Any] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _servers(run: str) -> dict[str, Server]:
    def gunicorn(worker_class: str, *more: str) -> list[str]:
        return ["gunicorn", "--workers", str(WORKERS), "--worker-class", worker_class, *more,
                "--graceful-timeout", "20", "shapes_wsgi:app"]

    servers = {
        "sync": Server("sync", f"shapes-sync-{run}", _free_port(), gunicorn("sync")),
        "gthread": Server("gthread", f"shapes-gthread-{run}", _free_port(), gunicorn("gthread", "--threads", "4")),
        "uvicorn": Server("uvicorn", f"shapes-uvicorn-{run}", _free_port(),
                          ["uvicorn", "--workers", str(WORKERS), "--timeout-worker-healthcheck", "60",
                           "shapes_asgi:app"]),
        "celery": Server("celery", f"shapes-celery-{run}", 0,
                         ["celery", "-A", "shapes_tasks", "worker", "--concurrency", "1", "--without-gossip",
                          "--without-mingle", "--without-heartbeat", "--hostname", f"shapes-{run}@localhost"]),
    }
    for server in servers.values():
        if server.name in ("sync", "gthread"):
            server.argv += ["--bind", f"127.0.0.1:{server.port}"]
        elif server.name == "uvicorn":
            server.argv += ["--host", "127.0.0.1", "--port", str(server.port)]
    return servers


def _get(port: int, path: str, headers: dict[str, str] | None = None,
         method: str = "GET") -> tuple[dict[str, Any], Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {}, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return {k.lower(): v for k, v in response.headers.items()}, json.loads(response.read())


def _when_listening(server: Server, run: str, timeout: float = 60) -> None:
    """Wait for the server's first answer (a /work request, counted like the others)."""
    deadline, marker = time.monotonic() + timeout, f"{run}-{server.name}-first"
    while True:
        try:
            server.served[marker] = _get(server.port, f"/work?marker={marker}")[1]["pid"]
            return
        except (urllib.error.URLError, ConnectionError) as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"{server.name} not answering after {timeout}s") from error
        time.sleep(0.3)


def _spread(server: Server, run: str, timeout: float = 30) -> None:
    """Concurrent /work requests, 4 at a time, until every worker has answered one (the last
    worker may still be starting when the first answers); at most 200 rounds or ``timeout``."""
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(4) as pool:
        for round_ in range(200):
            if time.monotonic() > deadline:
                return
            if round_ >= 2:
                time.sleep(0.1)  # a worker still importing gets the CPU
            markers = [f"{run}-{server.name}-{round_}-{n}" for n in range(4)]
            pids = pool.map(lambda m: _get(server.port, f"/work?marker={m}")[1]["pid"], markers)
            server.served.update(zip(markers, pids, strict=True))
            if len(set(server.served.values())) >= WORKERS and round_ >= 1:
                return


def _stream(port: int, marker: str, release: Path, cid: str) -> dict[str, Any]:
    """Read the first chunk, then let the app send the second: it says whether it was released."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request("GET", f"/stream?marker={marker}&release={release}", headers={HEADER: cid})
        response = connection.getresponse()
        first = response.readline()
        release.touch()
        return {"headers": {k.lower(): v for k, v in response.getheaders()}, "first": first, "rest": response.read()}
    finally:
        connection.close()


def _websocket(port: int, text: str, cid: str) -> str:
    with websocket_connect(f"ws://127.0.0.1:{port}/ws", additional_headers={HEADER: cid}, open_timeout=10) as ws:
        ws.send(text)
        return str(ws.recv(timeout=10))


def _fastapi_calls(server: Server, run: str, scratch: Path) -> None:
    extra = server.extra
    extra["given"], extra["task_cid"] = f"given-{run}", f"task-{run}"
    extra["downstream_given"] = _get(server.port, f"/downstream?marker={run}-down-given", {HEADER: extra["given"]})
    extra["downstream_absent"] = _get(server.port, f"/downstream?marker={run}-down-absent")
    extra["stream"] = _stream(server.port, f"{run}-stream", scratch / "release", f"stream-{run}")
    extra["ws"] = _websocket(server.port, f"{run}-ws", f"ws-{run}")
    extra["enqueue"] = _get(server.port, f"/enqueue?marker={run}-task", {HEADER: extra["task_cid"]}, "POST")


def _stop(servers: list[Server], timeout: float = 40) -> None:
    """SIGTERM to every server at once, as an operator stops them; then wait for each to exit."""
    for server in servers:
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for server in servers:
        assert server.process is not None
        server.process.wait(max(deadline - time.monotonic(), 0.1))


@pytest.fixture(scope="module", params=RUNTIMES)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield from runtime_stack(request.param, tmp_path_factory, "app-shapes-servers", PORT_OFFSET)


@pytest.fixture(scope="module")
def served(stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Every server started at once, driven, then stopped with SIGTERM; yields them, exit codes set."""
    scratch = tmp_path_factory.mktemp("shapes")
    run = secrets.token_hex(3)
    servers = _servers(run)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "THEODORE_"))}
    base.update({"OTEL_EXPORTER_OTLP_ENDPOINT": url(stack, "otlp_http", ""), "PYTHONPATH": str(APPS),
                 "SHAPES_QUEUE_DIR": str(scratch / "queue"),
                 "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    try:
        for server in servers.values():
            out = (scratch / f"{server.name}.log").open("wb")
            server.process = subprocess.Popen(["opentelemetry-instrument", *server.argv], cwd=APPS,
                                              env={**base, "OTEL_SERVICE_NAME": server.service},
                                              stdout=out, stderr=subprocess.STDOUT)
        web = [s for s in servers.values() if s.port]
        for server in web:
            _when_listening(server, run)
        for server in web:
            _spread(server, run)
        _fastapi_calls(servers["uvicorn"], run, scratch)
        worker_log = scratch / "celery.log"
        eventually(lambda: f"task {run}-task " in worker_log.read_text(errors="replace"), timeout=30, every=0.3)
        _stop(list(servers.values()))
        for server in servers.values():
            server.extra["output"] = (scratch / f"{server.name}.log").read_text(errors="replace")
        yield servers
    finally:
        for server in servers.values():
            if server.process is not None and server.process.poll() is None:
                server.process.kill()
                server.process.wait(10)


def _logs(stack: dict[str, Any], service: str, phrase: str, count: int) -> list[tuple[dict[str, str], dict]]:
    """(VictoriaLogs fields, the app's JSON line) of ``service``'s lines containing ``phrase``,
    once there are at least ``count``."""
    def stored() -> list[tuple[dict[str, str], dict[str, Any]]]:
        rows = query_logs(url(stack, "victorialogs", ""),
                          f"service.name:={logsql_string(service)} {logsql_string(phrase)}")
        return list(zip(rows, json_lines(rows), strict=True)) if len(rows) >= count else []

    return eventually(stored, timeout=45)


def _server_spans(stack: dict[str, Any], service: str, operation: str, count: int) -> list[dict[str, Any]]:
    """Jaeger's server spans named ``operation`` of ``service``, once there are at least ``count``."""
    def stored() -> list[dict[str, Any]]:
        found = get_json(url(stack, "jaeger_query", f"/api/traces?service={service}&limit=1000&lookback=1h"))
        spans = [span for trace in found["data"] or [] for span in _spans(trace)
                 if span["tag"].get("span.kind") == "server" and span["operationName"] == operation]
        return spans if len(spans) >= count else []

    return eventually(stored, timeout=45)


def _tags(item: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in item["tags"]}


def _spans(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace's spans, each with its tags and its process's tags (the resource) merged in."""
    processes = {pid: _tags(process) for pid, process in trace["processes"].items()}
    return [{**span, "tag": _tags(span), "resource": processes[span["processID"]]} for span in trace["spans"]]


def _is_uuid4(text: str) -> bool:
    try:
        return uuid.UUID(text).version == 4 and str(uuid.UUID(text)) == text
    except ValueError:
        return False


def test_every_server_stops_cleanly_on_sigterm(served: dict[str, Server]) -> None:
    for server in served.values():
        assert server.process is not None
        assert server.process.returncode == 0, (server.name, server.extra["output"][-3000:])
        assert "Traceback" not in server.extra["output"], (server.name, server.extra["output"][-3000:])


@pytest.mark.parametrize("name", ["sync", "gthread", "uvicorn"])
def test_every_worker_exports_each_request_once_under_its_own_instance_id(
        stack: dict[str, Any], served: dict[str, Server], name: str) -> None:
    server = served[name]
    assert len(set(server.served.values())) == WORKERS, server.served

    # Logs: each request's line exactly once, and each worker process under one instance id of its own.
    run = server.service.rsplit("-", 1)[1]
    lines = _logs(stack, server.service, f"{run}-{name}", len(server.served))
    logged = Counter(line["message"].split()[1] for _, line in lines)
    assert logged == Counter(list(server.served)), logged
    instance_of: dict[int, set[str]] = {}
    for fields, line in lines:
        pid = int(line["message"].rsplit("pid=", 1)[1])
        assert pid == server.served[line["message"].split()[1]]
        instance_of.setdefault(pid, set()).add(fields[INSTANCE])
    assert all(len(ids) == 1 for ids in instance_of.values()), instance_of
    instances = {pid: ids.pop() for pid, ids in instance_of.items()}
    assert len(set(instances.values())) == WORKERS, instances

    # Traces: one server span per request, exported by the worker that logged it.
    work_spans = _server_spans(stack, server.service, "GET /work", len(server.served))
    assert len(work_spans) == len(server.served), [s["operationName"] for s in work_spans]
    by_trace = {span["traceID"]: span for span in work_spans}
    for fields, line in lines:
        span = by_trace[line["trace_id"]]
        assert span["resource"][INSTANCE] == fields[INSTANCE]

    # Metrics: the app's prometheus_client counter, one series per worker, each its own count.
    per_instance = Counter(instances[pid] for pid in server.served.values())

    seen: list[dict[str, float]] = []

    def counted() -> bool:
        series = prom_query(stack, f'shapes_requests_total{{job="{server.service}"}}')
        seen.append({s["metric"]["instance"]: float(s["value"][1]) for s in series})
        return seen[-1] == per_instance

    try:
        eventually(counted, timeout=45, every=2)
    finally:
        print("expected", dict(per_instance), "stored", seen[-1:])  # shown when it fails


def test_fastapi_request_spans_correlation_id_and_logs_end_to_end(
        stack: dict[str, Any], served: dict[str, Server]) -> None:
    server = served["uvicorn"]
    given = server.extra["given"]
    headers, body = server.extra["downstream_given"]
    assert headers[HEADER.lower()] == given
    # The httpx call carried the trace and the ID downstream.
    assert body["downstream"]["baggage"] == f"correlation_id={given}"
    trace_id = body["downstream"]["traceparent"].split("-")[1]
    absent_headers, absent_body = server.extra["downstream_absent"]
    fresh = absent_headers[HEADER.lower()]
    assert _is_uuid4(fresh) and absent_body["downstream"]["baggage"] == f"correlation_id={fresh}"

    run = server.service.rsplit("-", 1)[1]
    ((_, line),) = _logs(stack, server.service, f"{run}-down-given", 1)
    assert line["trace_id"] == trace_id and line["correlation_id"] == given and line["span_id"]
    ((_, absent_line),) = _logs(stack, server.service, f"{run}-down-absent", 1)
    assert absent_line["correlation_id"] == fresh

    (trace,) = eventually(lambda: get_json(url(stack, "jaeger_query", f"/api/traces/{trace_id}"))["data"], timeout=45)
    spans = _spans(trace)
    servers = {s["operationName"]: s for s in spans if s["tag"].get("span.kind") == "server"}
    clients = [s for s in spans if s["tag"].get("span.kind") == "client"]
    assert {"GET /downstream", "GET /echo-headers"} <= set(servers), set(servers)
    assert len(clients) == 1, [s["operationName"] for s in clients]
    for span in [*servers.values(), *clients]:
        assert span["tag"]["theodore.correlation_id"] == given, span["operationName"]
    # The client span is a child of the request's server span; the downstream server span of it.
    assert clients[0]["references"][0]["spanID"] == servers["GET /downstream"]["spanID"]
    assert servers["GET /echo-headers"]["references"][0]["spanID"] == clients[0]["spanID"]


def test_a_streamed_response_passes_chunk_by_chunk(stack: dict[str, Any], served: dict[str, Server]) -> None:
    server = served["uvicorn"]
    streamed = server.extra["stream"]
    run = server.service.rsplit("-", 1)[1]
    # The first chunk reached the client before the app sent the second: nothing buffered it.
    assert streamed["first"] == b"first\n" and streamed["rest"] == b"second released\n", streamed
    assert streamed["headers"]["transfer-encoding"] == "chunked" and "content-length" not in streamed["headers"]
    assert streamed["headers"][HEADER.lower()] == f"stream-{run}"
    lines = _logs(stack, server.service, f"{run}-stream", 2)
    assert [line["message"].split()[1] for _, line in lines] == ["start", "end"]
    assert {line["correlation_id"] for _, line in lines} == {f"stream-{run}"}
    assert len({line["trace_id"] for _, line in lines}) == 1


def test_a_websocket_round_trip_is_traced_with_its_correlation_id(
        stack: dict[str, Any], served: dict[str, Server]) -> None:
    server = served["uvicorn"]
    run = server.service.rsplit("-", 1)[1]
    assert server.extra["ws"] == f"echo {run}-ws"
    ((_, line),) = _logs(stack, server.service, f"ws {run}-ws", 1)
    assert line["correlation_id"] == f"ws-{run}"
    (trace,) = eventually(lambda: get_json(url(stack, "jaeger_query", f"/api/traces/{line['trace_id']}"))["data"],
                          timeout=45)
    (span,) = [s for s in _spans(trace) if s["tag"].get("span.kind") == "server"]
    assert span["operationName"].endswith(" /ws") and span["tag"]["theodore.correlation_id"] == f"ws-{run}"


def test_a_celery_task_carries_the_request_trace_and_correlation_id(
        stack: dict[str, Any], served: dict[str, Server]) -> None:
    api, worker = served["uvicorn"], served["celery"]
    run, cid = api.service.rsplit("-", 1)[1], api.extra["task_cid"]
    assert api.extra["enqueue"][0][HEADER.lower()] == cid
    ((_, enqueued),) = _logs(stack, api.service, f"enqueued {run}-task", 1)
    ((fields, task),) = _logs(stack, worker.service, f"task {run}-task", 1)
    assert task["trace_id"] == enqueued["trace_id"] and task["correlation_id"] == cid
    assert fields["correlation_id"] == cid
    # The worker ran the task in its pool process, a fork of the worker with its own instance id.
    (main_fields, _), *_ = _logs(stack, worker.service, "ready", 1)
    assert fields[INSTANCE] != main_fields[INSTANCE]

    def both_sides() -> list[dict[str, Any]] | None:
        (trace,) = get_json(url(stack, "jaeger_query", f"/api/traces/{task['trace_id']}"))["data"]
        spans = _spans(trace)
        services = {trace["processes"][s["processID"]]["serviceName"] for s in spans}
        return spans if {api.service, worker.service} <= services else None

    spans = eventually(both_sides, timeout=45)
    (producer,) = [s for s in spans if s["tag"].get("span.kind") == "producer"]
    (consumer,) = [s for s in spans if s["tag"].get("span.kind") == "consumer"]
    assert producer["tag"]["theodore.correlation_id"] == cid and consumer["tag"]["theodore.correlation_id"] == cid
    assert consumer["references"][0]["spanID"] == producer["spanID"]
