"""An existing Loki as an extra destination (``integrations.loki``), checked by the collector
and proven against a local receiver.

Loki itself is AGPL and never built or run here; what the collector sends it is OTLP/HTTP, so
a receiver on 127.0.0.1 checks what Loki would get: the path of its OTLP endpoint, the tenant
header, protobuf content and the log record itself. VictoriaLogs stays the store the stack
reads, and the option is off by default.
"""

from __future__ import annotations

import copy
import gzip
import json
import secrets
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from theodore_obs.render import native_runtime, render_files, write_tree
from theodore_obs.spec import Spec, load_spec
from theodore_obs.tools import binary_path

PORT_OFFSET = 2000


Received = list[tuple[str, dict[str, str], bytes]]


class _Recorder(BaseHTTPRequestHandler):
    requests: ClassVar[Received]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        type(self).requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loki_receiver() -> Iterator[tuple[str, Received]]:
    recorder = type("Recorder", (_Recorder,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorder.requests
    finally:
        server.shutdown()


def _spec_with_loki(endpoint: str, org_id: str) -> Spec:
    spec = load_spec("local")
    data = copy.deepcopy(spec.data)
    data["ports"] = {name: port + PORT_OFFSET for name, port in data["ports"].items()}
    data["integrations"]["loki"] = {"enabled": True, "endpoint": endpoint, "org_id": org_id}
    return Spec(environment=spec.environment, data=data, source=spec.source)


def _collector_config(spec: Spec, state: Path) -> Path:
    write_tree(render_files(spec, native_runtime(state)), state / "config")
    return state / "config" / "otel-collector" / "config.yaml"


def test_loki_is_off_by_default_and_a_second_logs_exporter_when_on(tmp_path: Path) -> None:
    default = yaml.safe_load((Path(__file__).parents[1] / "rendered/local/otel-collector/config.yaml").read_text())
    assert "otlphttp/loki" not in default["exporters"]
    config = yaml.safe_load(_collector_config(_spec_with_loki("https://loki.example:3100", "team-a"),
                                              tmp_path).read_text())
    assert config["exporters"]["otlphttp/loki"]["logs_endpoint"] == "https://loki.example:3100/otlp/v1/logs"
    assert config["exporters"]["otlphttp/loki"]["headers"] == {"X-Scope-OrgID": "team-a"}
    assert config["service"]["pipelines"]["logs/store"]["exporters"] == ["otlphttp/victorialogs", "otlphttp/loki"]


def test_the_collector_accepts_the_config_with_loki(tmp_path: Path) -> None:
    config = _collector_config(_spec_with_loki("https://loki.example:3100", "team-a"), tmp_path)
    check = subprocess.run([str(binary_path("otelcol-theodore")), "validate", f"--config={config}"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"nothing listens on {port}")


def test_log_records_reach_loki_with_its_tenant(tmp_path: Path, loki_receiver) -> None:
    endpoint, received = loki_receiver
    spec = _spec_with_loki(endpoint, "team-a")
    config = _collector_config(spec, tmp_path)
    (tmp_path / "data" / "otel-collector").mkdir(parents=True, exist_ok=True)
    collector = subprocess.Popen([str(binary_path("otelcol-theodore")), f"--config={config}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        port = spec.data["ports"]["otlp_http"]
        _wait_port(port)
        marker = secrets.token_hex(8)
        record = {"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "loki-dest"}}]},
            "scopeLogs": [{"logRecords": [{"timeUnixNano": str(time.time_ns()), "severityText": "INFO",
                                           "body": {"stringValue": f"to loki {marker}"}}]}]}]}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/logs", data=json.dumps(record).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        collector.terminate()
        collector.wait(timeout=30)
    assert received, "the collector sent nothing to Loki"
    path, headers, body = received[0]
    assert path == "/otlp/v1/logs"
    assert headers["x-scope-orgid"] == "team-a"
    assert headers["content-type"] == "application/x-protobuf"
    export = ExportLogsServiceRequest.FromString(body)
    (resource_logs,) = export.resource_logs
    attributes = {a.key: a.value.string_value for a in resource_logs.resource.attributes}
    assert attributes["service.name"] == "loki-dest"
    bodies = [r.body.string_value for s in resource_logs.scope_logs for r in s.log_records]
    assert bodies == [f"to loki {marker}"]
