"""Correlation IDs with zero code: an unmodified Flask app under `opentelemetry-instrument`.

tests/fixtures/correlation_flask_app.py has no middleware and no code of ours; the distro's
Flask hooks alone read (or create) the ID, echo it, put it on the JSON log lines VictoriaLogs
stores and on the spans Jaeger stores, and carry it downstream in baggage. The app serves its
requests one after another on one thread, so an ID left bound would show in the next request.
The native stack runs on the spec's ports shifted by PORT_OFFSET; where a Docker engine
answers, the same tests run on the compose stack too (``conftest.runtime_stack``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import RUNTIMES, runtime_stack
from .support.victorialogs import json_lines, logsql_string, query_logs
from .test_native import eventually, get_json, url

PORT_OFFSET = 900
HEADER = "X-Correlation-ID"


@pytest.fixture(scope="module", params=RUNTIMES)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield from runtime_stack(request.param, tmp_path_factory, "zero-code", PORT_OFFSET)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _when_listening(call: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except urllib.error.URLError as error:
            if not isinstance(error.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _get(port: int, marker: str, headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/work?marker={marker}", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        echoed = response.headers.get_all(HEADER)
        assert len(echoed) == 1, echoed
        return echoed[0], json.loads(response.read())


def _get_raw(port: int, marker: str, header_lines: bytes) -> tuple[str, dict[str, Any]]:
    """A request whose header bytes urllib would refuse to send (CR/LF in a value)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET /work?marker={marker} HTTP/1.0\r\nHost: 127.0.0.1\r\n".encode()
                     + header_lines + b"\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].split()[1] == "200", lines[0]
    echoed = [line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith(HEADER.lower() + ":")]
    assert len(echoed) == 1, lines
    return echoed[0], json.loads(body)


def _is_uuid4(text: str) -> bool:
    try:
        return uuid.UUID(text).version == 4 and str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


def test_an_unmodified_flask_app_gets_correlation_ids_from_the_distro_alone(stack: dict[str, Any]) -> None:
    service, run = f"zero-code-{secrets.token_hex(3)}", secrets.token_hex(4)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "THEODORE_"))}
    env.update({"OTEL_SERVICE_NAME": service, "OTEL_EXPORTER_OTLP_ENDPOINT": url(stack, "otlp_http", ""),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    app = Path(__file__).parent / "fixtures" / "correlation_flask_app.py"
    given, again = f"zc-{run}-given", f"zc-{run}-again"
    calls: list[tuple[str, Callable[[int, str], tuple[str, dict[str, Any]]]]] = [
        ("given", lambda p, m: _get(p, m, {HEADER: given})),
        ("absent", lambda p, m: _get(p, m, {})),
        ("crlf", lambda p, m: _get_raw(p, m, f"{HEADER}: {given}\r\n  Set-Cookie: x=1\r\n".encode())),
        ("long", lambda p, m: _get(p, m, {HEADER: "a" * 300})),
        ("again", lambda p, m: _get(p, m, {HEADER: again})),
        ("absent2", lambda p, m: _get(p, m, {})),
    ]
    argv = ["opentelemetry-instrument", sys.executable, str(app), str(port), str(len(calls))]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            # The first call waits for the app to listen (refused until then); the rest queue behind.
            results = {calls[0][0]: _when_listening(lambda: calls[0][1](port, f"{run}-{calls[0][0]}"))}
            results |= {name: call(port, f"{run}-{name}") for name, call in calls[1:]}
            stdout, stderr = process.communicate(timeout=60)
        except BaseException:
            process.kill()  # the with block then waits for it
            raise
    assert process.returncode == 0, stderr

    ids = {name: echoed for name, (echoed, _) in results.items()}
    assert ids["given"] == given and ids["again"] == again
    for name in ("absent", "crlf", "long", "absent2"):
        assert _is_uuid4(ids[name]), (name, ids[name])
    assert len(set(ids.values())) == len(ids)  # nothing left over from the request before
    # One server thread served them all, and each downstream call carried its own request's ID.
    assert len({body["thread"] for _, body in results.values()}) == 1
    for name, (echoed, body) in results.items():
        assert body["downstream_baggage"] == f"correlation_id={echoed}", name

    # stdout: the app's JSON lines; the ones between requests carry no ID.
    printed = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    between = [line for line in printed if line.get("message") == "between requests"]
    assert len(between) == len(calls)
    assert not [line for line in between if "correlation_id" in line]

    def stored() -> list[tuple[dict[str, str], dict[str, Any]]]:
        rows = query_logs(url(stack, "victorialogs", ""), f"service.name:={logsql_string(service)} "
                                                          f"{logsql_string(run)}")
        lines = list(zip(rows, json_lines(rows), strict=True))
        return lines if len(lines) >= 2 * len(calls) else []

    lines = eventually(stored, timeout=60)
    trace_ids = {}
    for name, echoed in ids.items():
        mine = [(fields, line) for fields, line in lines if f"work {run}-{name} " in line["message"]]
        assert len(mine) == 2, (name, mine)
        assert {line["correlation_id"] for _, line in mine} == {echoed}, name
        assert {fields.get("correlation_id") for fields, _ in mine} == {echoed}, name
        (trace_ids[name],) = {line["trace_id"] for _, line in mine}

    for name in ("given", "absent"):
        (found,) = eventually(
            lambda name=name: get_json(url(stack, "jaeger_query", f"/api/traces/{trace_ids[name]}"))["data"],
            timeout=60)
        spans = found["spans"]
        (server,) = [s for s in spans if _tags(s).get("span.kind") == "server"]
        assert _tags(server)["theodore.correlation_id"] == ids[name]
        (client,) = [s for s in spans if _tags(s).get("span.kind") == "client"]
        assert _tags(client)["theodore.correlation_id"] == ids[name]
