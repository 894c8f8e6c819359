"""The collector's integrations (``integrations:`` in stack.yaml) end to end, on one native stack.

Every integration is turned on, pointed at a local service that checks what the real one
checks (path, credential header, content type, payload shape: ``testing/integration_receivers``)
and fed by the demo service's own traffic. Where VictoriaLogs speaks the protocol it is the
real end: Elasticsearch's bulk API, Splunk's HEC and OTLP (what Loki takes at /otlp) are
forwarded to it, each into a tenant of its own, and read back with LogsQL. New Relic and
Datadog (OTLP with their key headers) are checked and recorded locally. Zipkin's end is a real
Zipkin server (the exec jar `make tools` fetches, run with java); Zipkin spans sent to the collector's Zipkin
receiver are read back from it and from Jaeger. A revoked key fires IntegrationExportFailing in
Prometheus; a missing secret or credential stops render, validate and `up` with the field's
name."""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_obs.maven_tools import MavenError, artifact_path
from theodore_obs.render import native_runtime, render_files, write_tree
from theodore_obs.spec import Spec, load_spec
from theodore_obs.testing.integration_receivers import (
    IntegrationReceivers,
    Received,
    Route,
    bulk_problems,
    hec_events,
    hec_problems,
    otlp_problems,
    otlp_request,
)
from theodore_obs.timing import wait_until
from theodore_obs.tools import binary_path

from .conftest import run_cli, shifted_stack
from .support.victorialogs import query_logs

PORT_OFFSET = 1400
ZIPKIN_PORT = 9411 + PORT_OFFSET
"""The collector's Zipkin receiver."""
ZIPKIN_SERVER_PORT = ZIPKIN_PORT + 1
"""A real Zipkin server (the exec jar `make tools` fetches from Maven Central, run with java)."""

#: The environment variables the native runtime fills each integration's secret file from.
KEYS = {
    "ELASTICSEARCH_API_KEY": base64.b64encode(f"{uuid.uuid4().hex[:20]}:{secrets.token_hex(11)}".encode()).decode(),
    "SPLUNK_HEC_TOKEN": str(uuid.uuid4()),
    "NEW_RELIC_LICENSE_KEY": secrets.token_hex(18) + "NRAL",
    "DD_API_KEY": secrets.token_hex(16),
}

#: VictoriaLogs tenants (AccountID) the forwarded copies land in, apart from the stack's own.
TENANTS = {"elk": "41", "splunk": "42", "loki": "43"}

OTLP_PATHS = ("/v1/traces", "/v1/metrics", "/v1/logs")
PROTOBUF_OK = (200, "application/x-protobuf", b"")
DEMO = "theodore-demo"


def _routes(victorialogs: str) -> list[Route]:
    """What each integration's service accepts; the three VictoriaLogs speaks go on to it."""
    def tenant(name: str) -> dict[str, str]:
        return {"AccountID": TENANTS[name], "ProjectID": "0"}

    return [
        Route("elk", "Authorization", f"ApiKey {KEYS['ELASTICSEARCH_API_KEY']}", ("/_bulk",), bulk_problems,
              content_types=("application/json", "application/x-ndjson"), upstream=victorialogs,
              upstream_path="/insert/elasticsearch/_bulk",
              upstream_headers={**tenant("elk"), "VL-Msg-Field": "body.text"}),
        Route("splunk", "Authorization", f"Splunk {KEYS['SPLUNK_HEC_TOKEN']}", ("/services/collector/event",),
              hec_problems, upstream=victorialogs, upstream_path="/insert/splunk/services/collector/event",
              upstream_headers=tenant("splunk")),
        Route("newrelic", "api-key", KEYS["NEW_RELIC_LICENSE_KEY"], OTLP_PATHS, otlp_problems,
              content_types=("application/x-protobuf",), answer=PROTOBUF_OK),
        Route("datadog", "dd-api-key", KEYS["DD_API_KEY"], ("/v1/traces", "/v1/logs"), otlp_problems,
              content_types=("application/x-protobuf",), answer=PROTOBUF_OK,
              required_headers={"dd-protocol": "otlp"}),
        Route("loki", "X-Scope-OrgID", "team-a", ("/otlp/v1/logs",), otlp_problems,
              content_types=("application/x-protobuf",), upstream=victorialogs,
              upstream_path="/insert/opentelemetry/v1/logs", upstream_headers=tenant("loki")),
    ]


def _turn_on(spec: dict[str, Any], receivers: IntegrationReceivers, zipkin: str) -> None:
    """Every integration on, each pointed at its local service (the Zipkin server at ``zipkin``)."""
    spec["integrations"] = {
        "elk": {"enabled": True, "endpoint": receivers.url("elk"), "api_key_file": "elasticsearch_api_key",
                "signals": ["logs"]},
        "splunk": {"enabled": True, "endpoint": receivers.url("splunk", "/services/collector/event"),
                   "token_file": "splunk_hec_token", "sourcetype": "theodore", "signals": ["logs"]},
        "newrelic": {"enabled": True, "endpoint": receivers.url("newrelic"),
                     "license_key_file": "new_relic_license_key", "signals": ["traces", "metrics", "logs"]},
        "datadog": {"enabled": True, "endpoint": receivers.url("datadog"), "api_key_file": "dd_api_key",
                    "signals": ["traces", "logs"]},
        "loki": {"enabled": True, "endpoint": receivers.url("loki"), "org_id": "team-a"},
        "zipkin": {"receiver": {"enabled": True, "port": ZIPKIN_PORT},
                   "exporter": {"enabled": True,
                                "endpoint": f"{zipkin}/api/v2/spans"}},
    }


@contextmanager
def _zipkin_server(root: Path) -> Iterator[str]:
    """A real Zipkin server on 127.0.0.1 (in-memory storage)."""
    try:
        jar = artifact_path("zipkin-server")
    except MavenError as exc:
        pytest.fail(str(exc))
    log = (root / "zipkin.log").open("w")
    process = subprocess.Popen(
        ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-jar", str(jar),
         "--armeria.ports[0].ip=127.0.0.1", f"--armeria.ports[0].port={ZIPKIN_SERVER_PORT}",
         "--armeria.ports[0].protocols=http"],
        env={**os.environ, "STORAGE_TYPE": "mem"}, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{ZIPKIN_SERVER_PORT}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The native stack with every integration on, and the services it sends to."""
    root = tmp_path_factory.mktemp("integrations")
    spec, spec_file = shifted_stack(root, PORT_OFFSET)
    ports = spec["ports"]
    with (IntegrationReceivers(_routes(f"http://127.0.0.1:{ports['victorialogs']}")) as receivers,
          _zipkin_server(root) as zipkin):
        _turn_on(spec, receivers, zipkin)
        spec_file.write_text(yaml.safe_dump(spec))
        env = {"THEODORE_OBS_STATE": str(root / "state"), **KEYS}
        result = run_cli("up", "--spec", str(spec_file), "--timeout", "120", env=env)
        try:
            assert result.returncode == 0, result.stdout + result.stderr
            assert wait_until(lambda: _answers(f"{zipkin}/health"), 60, every=0.5), \
                (root / "zipkin.log").read_text()[-2000:]
            yield {"receivers": receivers, "ports": ports, "state": root / "state", "zipkin": zipkin}
        finally:
            run_cli("down", env=env)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _url(stack: dict[str, Any], port: str, path: str) -> str:
    return f"http://127.0.0.1:{stack['ports'][port]}{path}"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _send_failures(stack: dict[str, Any], exporter: str) -> float:
    """Items ``exporter`` failed to send so far, from the collector's own metrics."""
    with urllib.request.urlopen(_url(stack, "collector_telemetry", "/metrics"), timeout=10) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines
               if line.startswith("otelcol_exporter_send_failed_") and f'exporter="{exporter}"' in line)


def _resource_services(request: Any) -> set[str]:
    """service.name of every resource in a decoded OTLP export request."""
    resources = [*getattr(request, "resource_spans", []), *getattr(request, "resource_metrics", []),
                 *getattr(request, "resource_logs", [])]
    return {a.value.string_value for r in resources for a in r.resource.attributes if a.key == "service.name"}


def _from_demo(received: Received) -> bool:
    return DEMO in _resource_services(otlp_request(received.path, received.body))


def _tenant_rows(stack: dict[str, Any], name: str) -> list[dict[str, str]]:
    return query_logs(_url(stack, "victorialogs", ""), "*", since_s=300, limit=200,
                      headers={"AccountID": TENANTS[name], "ProjectID": "0"})


def _demo_rows(stack: dict[str, Any], name: str, field_suffix: str) -> list[dict[str, str]]:
    """Rows of an integration's tenant whose service name field (``...<field_suffix>``) is the demo."""
    found = wait_until(lambda: [row for row in _tenant_rows(stack, name)
                                if any(k.endswith(field_suffix) and v == DEMO for k, v in row.items())],
                       45, every=1.0)
    return found or []


def test_demo_logs_reach_elasticsearch_bulk_api(stack: dict[str, Any]) -> None:
    """The demo's logs go out as Elasticsearch bulk items with the API key and land in the
    bulk endpoint's store, one document per log record with its resource and body."""
    request = stack["receivers"].wait_for("elk", lambda r: DEMO.encode() in r.body, 45)
    assert request.headers["authorization"] == f"APIKey {KEYS['ELASTICSEARCH_API_KEY']}"
    rows = _demo_rows(stack, "elk", "resource.attributes.service.name")
    assert rows, f"no demo document in VictoriaLogs' tenant {TENANTS['elk']}: {_tenant_rows(stack, 'elk')[:2]}"
    assert all(row.get("_msg") and not row["_msg"].startswith("missing _msg field") for row in rows), rows[:2]
    assert _send_failures(stack, "elasticsearch/elk") == 0


def test_demo_logs_reach_splunk_hec(stack: dict[str, Any]) -> None:
    """The demo's logs go out as HEC events with the token, source type and the log's fields."""
    request = stack["receivers"].wait_for("splunk", lambda r: DEMO.encode() in r.body, 45)
    assert request.headers["authorization"] == f"Splunk {KEYS['SPLUNK_HEC_TOKEN']}"
    events = hec_events(request.body)
    assert {e.get("sourcetype") for e in events} == {"theodore"}
    rows = _demo_rows(stack, "splunk", "service.name")
    assert rows, f"no demo event in VictoriaLogs' tenant {TENANTS['splunk']}: {_tenant_rows(stack, 'splunk')[:2]}"
    assert all(row.get("sourcetype") == "theodore" for row in rows)
    assert _send_failures(stack, "splunk_hec/splunk") == 0


def test_new_relic_gets_every_signal_with_its_license_key(stack: dict[str, Any]) -> None:
    """Traces, metrics and logs of the demo reach New Relic's OTLP paths with the api-key header."""
    receivers = stack["receivers"]
    for path in OTLP_PATHS:
        request = receivers.wait_for("newrelic", lambda r, p=path: r.path == p and _from_demo(r), 45)
        assert request.headers["api-key"] == KEYS["NEW_RELIC_LICENSE_KEY"]
        assert request.headers["content-type"] == "application/x-protobuf"
    assert not receivers.refusals("newrelic")
    assert _send_failures(stack, "otlphttp/newrelic") == 0


def test_datadog_gets_traces_and_logs_over_otlp(stack: dict[str, Any]) -> None:
    """The demo's traces and logs reach Datadog's OTLP intake with dd-api-key; metrics do not
    (not among its signals)."""
    receivers = stack["receivers"]
    for path in ("/v1/traces", "/v1/logs"):
        request = receivers.wait_for("datadog", lambda r, p=path: r.path == p and _from_demo(r), 45)
        assert request.headers["dd-api-key"] == KEYS["DD_API_KEY"]
    assert not receivers.of("datadog", lambda r: r.path == "/v1/metrics")
    assert not receivers.refusals("datadog")
    assert _send_failures(stack, "otlphttp/datadog") == 0


def test_demo_logs_reach_loki_otlp_endpoint(stack: dict[str, Any]) -> None:
    """The demo's logs go to Loki's /otlp/v1/logs with the tenant header, as OTLP a real
    receiver stores."""
    stack["receivers"].wait_for("loki", _from_demo, 45)
    rows = _demo_rows(stack, "loki", "service.name")
    assert rows, f"no demo line in VictoriaLogs' tenant {TENANTS['loki']}"
    assert _send_failures(stack, "otlphttp/loki") == 0


def test_zipkin_spans_in_reach_jaeger_and_the_zipkin_server(stack: dict[str, Any]) -> None:
    """Zipkin v2 spans posted to the collector are stored in Jaeger and in the Zipkin server
    (with the demo's own traces), ids and names intact."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    span = {"traceId": trace_id, "id": span_id, "name": "get /zipkin-checkout", "kind": "SERVER",
            "timestamp": int(time.time() * 1e6), "duration": 1500,
            "localEndpoint": {"serviceName": "zipkin-shop"}, "tags": {"http.method": "GET"}}
    request = urllib.request.Request(f"http://127.0.0.1:{ZIPKIN_PORT}/api/v2/spans", method="POST",
                                     data=json.dumps([span]).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202
    found = wait_until(lambda: _zipkin_trace(stack["zipkin"], trace_id), 45, every=1.0)
    assert found, f"trace {trace_id} not in the Zipkin server"
    services = _get_json(f"{stack['zipkin']}/api/v2/services")
    assert DEMO in services, f"the demo's traces are not in Zipkin: {services}"
    [out] = found
    assert (out["id"], out["name"], out["localEndpoint"]["serviceName"]) == (span_id, span["name"], "zipkin-shop")
    assert _send_failures(stack, "zipkin/zipkin") == 0

    def stored() -> list[dict[str, Any]]:
        try:
            return _get_json(_url(stack, "jaeger_query", f"/api/traces/{trace_id}")).get("data") or []
        except OSError:
            return []

    traces = wait_until(stored, 30, every=1.0)
    assert traces, f"trace {trace_id} not in Jaeger"
    [stored_span] = traces[0]["spans"]
    assert stored_span["operationName"] == span["name"]
    assert traces[0]["processes"][stored_span["processID"]]["serviceName"] == "zipkin-shop"


def _zipkin_trace(base: str, trace_id: str) -> list[dict[str, Any]]:
    try:
        return _get_json(f"{base}/api/v2/trace/{trace_id}")
    except OSError:
        return []


def test_integrations_get_redacted_telemetry(stack: dict[str, Any]) -> None:
    """A secret in a log line is gone before any integration sees it (the collector's redaction)."""
    marker, token = uuid.uuid4().hex, "sk-" + secrets.token_hex(20)
    record = {"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "redaction-check"}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": str(time.time_ns()), "severityText": "INFO",
                                       "body": {"stringValue": f"{marker} calling with {token}"}}]}]}]}
    request = urllib.request.Request(_url(stack, "otlp_http", "/v1/logs"), method="POST",
                                     data=json.dumps(record).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass
    receivers = stack["receivers"]
    for name in ("newrelic", "datadog", "splunk", "elk", "loki"):
        got = receivers.wait_for(name, lambda r: marker.encode() in r.body, 30)
        assert token.encode() not in got.body, f"{name} received the secret"
        assert b"[REDACTED]" in got.body


def test_a_revoked_key_fires_integration_export_failing(stack: dict[str, Any]) -> None:
    """Datadog refusing the key (401) fires IntegrationExportFailing for datadog only: the
    refused batches are never dropped silently. Runs last: it breaks the Datadog route."""
    receivers = stack["receivers"]
    assert _send_failures(stack, "otlphttp/datadog") == 0
    receivers.routes["datadog"].auth_value = "revoked"
    assert wait_until(lambda: receivers.refusals("datadog"), 30, every=0.5), "the collector sent nothing more"

    def firing() -> list[dict[str, Any]]:
        alerts = _get_json(_url(stack, "prometheus", "/api/v1/alerts"))["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "IntegrationExportFailing"
                and a["state"] == "firing"]

    fired = wait_until(firing, 75, every=2.0)
    assert fired, "IntegrationExportFailing did not fire"
    assert {a["labels"]["integration"] for a in fired} == {"datadog"}
    assert {a["labels"]["exporter"] for a in fired} == {"otlphttp/datadog"}
    assert _send_failures(stack, "otlphttp/datadog") > 0


# Errors before anything runs: render, validate and `up` name the field or file.

def _spec_file(tmp_path: Path, **integrations: Any) -> Path:
    spec = yaml.safe_load((Path(__file__).parents[1] / "stack.yaml").read_text())
    for name, value in integrations.items():
        spec["integrations"][name] = value
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.parametrize(("entry", "field"), [
    ({"splunk": {"enabled": True, "endpoint": "https://splunk.example:8088/services/collector/event"}},
     "token_file"),
    ({"datadog": {"enabled": True, "endpoint": "https://otlp.datadoghq.com", "signals": ["traces"]}},
     "integrations.datadog.api_key_file"),
    ({"elk": {"enabled": True, "endpoint": "https://es.example:9200", "user": "elastic"}},
     "integrations.elk.user"),
    ({"newrelic": {"enabled": True, "endpoint": "https://otlp.nr-data.net", "license_key_file": "../etc/passwd"}},
     "integrations.newrelic.license_key_file"),
])
def test_render_names_a_missing_or_bad_credential(tmp_path: Path, entry: dict[str, Any], field: str) -> None:
    """An enabled integration without its credential, or with a secret path outside the
    secrets directory, stops the render with one line naming the field."""
    result = run_cli("render", "--spec", str(_spec_file(tmp_path, **entry)), "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert field in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "local").exists()


def test_up_refuses_a_missing_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`up` with an enabled integration whose secret is not set stops before starting anything,
    naming the field, the file and the variable."""
    monkeypatch.delenv("NEW_RELIC_LICENSE_KEY", raising=False)
    spec = _spec_file(tmp_path, newrelic={"enabled": True, "endpoint": "https://otlp.nr-data.net",
                                          "license_key_file": "new_relic_license_key"})
    result = run_cli("up", "--spec", str(spec), env={"THEODORE_OBS_STATE": str(tmp_path / "state")})
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "integrations.newrelic.license_key_file" in message and "$NEW_RELIC_LICENSE_KEY" in message
    assert "missing" in message and "Traceback" not in message
    assert not (tmp_path / "state" / "supervisord.pid").exists()


def test_the_collector_validates_every_integration_and_wants_its_secret_files(tmp_path: Path) -> None:
    """`otelcol validate` accepts the config with every integration on once the secret files
    exist, and names the missing file before."""
    spec = load_spec("local")
    data = copy.deepcopy(spec.data)
    with IntegrationReceivers([]) as receivers:
        _turn_on(data, receivers, zipkin="http://127.0.0.1:9")  # validated only, never sent to
    state = tmp_path / "state"
    write_tree(render_files(Spec(environment=spec.environment, data=data, source=spec.source),
                            native_runtime(state)), state / "config")
    validate = [str(binary_path("otelcol-theodore")), "validate",
                f"--config={state / 'config' / 'otel-collector' / 'config.yaml'}"]
    before = subprocess.run(validate, capture_output=True, text=True, timeout=60, check=False)
    assert before.returncode != 0
    assert str(state / "secrets") in before.stdout + before.stderr
    (state / "secrets").mkdir()
    for variable, value in KEYS.items():
        (state / "secrets" / variable.lower()).write_text(value + "\n")
    after = subprocess.run(validate, capture_output=True, text=True, timeout=60, check=False)
    assert after.returncode == 0, after.stdout + after.stderr
