"""The stack end to end, driven through the components' HTTP APIs: the native runtime (real
binaries on 127.0.0.1) and, where a Docker engine answers, the rendered compose stack through
testcontainers, under the same assertions. The tests of ``up``, ``status`` and ``down``
themselves are the native runtime's alone.

The native stack runs on the spec's ports shifted by PORT_OFFSET, in a temporary state
directory, so a developer's own `make up` stack is left alone. The compose stack publishes the
spec's own ports (``docker compose`` of a developer's stack would collide with it: stop that
one first).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from theodore_catalogue import catalogue
from theodore_obs.components import component as registered
from theodore_obs.native import _alive, process_info, supervisord_pid

from .conftest import RUNTIMES, run_cli, runtime_stack
from .support.victorialogs import json_lines, logsql_string, query_logs

PORT_OFFSET = 11000


@pytest.fixture(scope="module", params=RUNTIMES)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running stack of each runtime: its spec and runtime name (native: also its state, CLI
    environment and `up` result); stopped after the module's tests."""
    yield from runtime_stack(request.param, tmp_path_factory, "native", PORT_OFFSET)


def native_only(stack: dict[str, Any]) -> None:
    """Skip a test of the native runtime's own commands (up, status, down) on another runtime."""
    if stack["runtime"] != "native":
        pytest.skip(f"tests the native runtime's own commands; the {stack['runtime']} stack is "
                    "started and stopped by its own tool")


def internal_host(stack: dict[str, Any], name: str) -> str:
    """The host the stack's own components reach ``name`` at (what blackbox probes): loopback
    in the native runtime, the compose service of that name in compose."""
    return "127.0.0.1" if stack["runtime"] == "native" else name


def url(stack: dict[str, Any], port: str, path: str) -> str:
    return f"http://127.0.0.1:{stack['spec']['ports'][port]}{path}"


def get_json(address: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(address, timeout=timeout) as response:
        return json.loads(response.read())


def post_json(address: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(address, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def eventually(check: Callable[[], Any], timeout: float = 60, every: float = 1.0) -> Any:
    """Return check()'s first truthy result within ``timeout`` seconds, else fail with the last."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(every)
    pytest.fail(f"not true after {timeout}s; last result: {last!r}")


def test_up_reports_every_component_ready(stack: dict[str, Any]) -> None:
    native_only(stack)
    result = stack["up"]
    assert result.returncode == 0, result.stdout + result.stderr
    for component in ["prometheus", "alertmanager", "victorialogs", "vmalert", "jaeger",
                      "otel-collector", "blackbox", "theodore-demo"]:
        assert f"ready  {component}" in result.stdout
    assert "all components ready" in result.stdout


PUBLISHED = [("prometheus", "/-/ready"), ("alertmanager", "/-/ready"), ("victorialogs", "/health"),
             ("victorialogs_audit", "/health"), ("vmauth", "/health"), ("jaeger_query", "/api/services"),
             ("collector_health", "/"), ("blackbox", "/-/healthy"), ("grafana", "/api/health")]
"""Each compose service's published port (a key of the spec's ``ports``) and readiness path,
Grafana's (not run natively) too; the demo's is its service port."""


def test_every_compose_service_answers_on_its_published_port(stack: dict[str, Any]) -> None:
    if stack["runtime"] != "compose":
        pytest.skip("the compose stack's published ports; `up` checks the native stack's readiness")
    demo = f"http://127.0.0.1:{stack['spec']['services']['theodore-demo']['port']}/readyz"
    for address in [*(url(stack, port, path) for port, path in PUBLISHED), demo]:
        with urllib.request.urlopen(address, timeout=10) as response:
            assert response.status == 200, address
            if address.endswith("/api/health"):
                assert json.loads(response.read())["database"] == "ok"


def test_status_json_is_healthy_with_versions(stack: dict[str, Any]) -> None:
    native_only(stack)
    result = run_cli("status", "--spec", str(stack["spec_file"]), "--format", "json", env=stack["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    versions = {c["component"]: c["version"] for c in report["components"]}
    assert versions["prometheus"] == "3.16.0"
    assert versions["alertmanager"] == "0.34.2"
    assert versions["victorialogs"] == "1.52.1"
    assert versions["vmalert"] == "1.151.0"


def test_prometheus_scrapes_every_stack_component(stack: dict[str, Any]) -> None:
    jobs = {"prometheus", "alertmanager", "victorialogs", "vmalert", "jaeger", "blackbox",
            "otel-collector"}

    def healthy_jobs() -> set[str] | None:
        targets = get_json(url(stack, "prometheus", "/api/v1/targets"))["data"]["activeTargets"]
        up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        return up if jobs <= up else None

    assert jobs <= eventually(healthy_jobs, timeout=60)


def test_blackbox_probes_the_stack_health_endpoints(stack: dict[str, Any]) -> None:
    ports, demo = stack["spec"]["ports"], "theodore-demo"
    probed = [registered(name) for name in ("otel-collector", "victorialogs", "vmalert")]
    expected = [c.health_url(ports, internal_host(stack, c.host)) for c in probed]
    expected.append(f"http://{internal_host(stack, demo)}:{stack['spec']['services'][demo]['port']}/healthz")

    def probes() -> dict[str, str] | None:
        """Each probe target is scraped at its own offset in the interval: wait for all of them."""
        query = urllib.parse.quote('probe_success{job="blackbox-health"}')
        result = get_json(url(stack, "prometheus", f"/api/v1/query?query={query}"))["data"]["result"]
        values = {r["metric"]["instance"]: r["value"][1] for r in result}
        return values if all(target in values for target in expected) else None

    values = eventually(probes, timeout=60)
    assert {target: values[target] for target in expected} == dict.fromkeys(expected, "1")


def test_watchdog_reaches_alertmanager(stack: dict[str, Any]) -> None:
    """Prometheus evaluates the rules and delivers to Alertmanager."""

    def watchdog() -> list[Any]:
        alerts = get_json(url(stack, "alertmanager", "/api/v2/alerts"))
        return [a for a in alerts if a["labels"]["alertname"] == "Watchdog"]

    (alert,) = eventually(watchdog, timeout=60)
    assert alert["labels"]["environment"] == "local"


def _otlp_span(trace_id: str, span_id: str, service: str) -> dict[str, Any]:
    now = time.time_ns()
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": span_id, "name": "GET /research", "kind": 2,
            "startTimeUnixNano": str(now - 25_000_000), "endTimeUnixNano": str(now),
            "status": {"code": 2},
            "attributes": [{"key": "http.request.method", "value": {"stringValue": "GET"}}],
        }]}],
    }]}


def _otlp_log(trace_id: str, span_id: str, service: str, marker: str) -> dict[str, Any]:
    return {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": str(time.time_ns()), "severityText": "ERROR", "severityNumber": 17,
            "body": {"stringValue": f"research failed {marker}"},
            "traceId": trace_id, "spanId": span_id,
        }]}],
    }]}


def test_collector_delivers_traces_logs_and_span_metrics(stack: dict[str, Any]) -> None:
    """One span and one log through OTLP/HTTP reach Jaeger, VictoriaLogs and (as RED metrics)
    Prometheus."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    service, marker = f"obs-test-{secrets.token_hex(3)}", secrets.token_hex(6)
    assert post_json(url(stack, "otlp_http", "/v1/traces"), _otlp_span(trace_id, span_id, service)) == 200
    assert post_json(url(stack, "otlp_http", "/v1/logs"), _otlp_log(trace_id, span_id, service, marker)) == 200

    def trace() -> Any:
        try:
            return get_json(url(stack, "jaeger_query", f"/api/traces/{trace_id}"))["data"]
        except urllib.error.HTTPError:
            return None

    (found,) = eventually(trace, timeout=60)
    (process,) = found["processes"].values()
    assert process["serviceName"] == service

    def log_lines() -> list[Any]:
        return query_logs(url(stack, "victorialogs", ""), f"service.name:={logsql_string(service)}")

    (line,) = eventually(log_lines, timeout=60)
    assert marker in line["_msg"]
    assert line["trace_id"] == trace_id and line["span_id"] == span_id
    assert line["severity_text"] == "ERROR"
    # One stream per service and environment: never per instance (log_store.stream_fields).
    assert line["_stream"] == f'{{service.name="{service}"}}'

    def red_metrics() -> list[Any]:
        query = urllib.parse.quote(f'traces_span_metrics_calls_total{{service_name="{service}"}}')
        return get_json(url(stack, "prometheus", f"/api/v1/query?query={query}"))["data"]["result"]

    (series,) = eventually(red_metrics, timeout=90, every=2)
    assert series["metric"]["status_code"] == "STATUS_CODE_ERROR"


def _instrumented(stack: dict[str, Any], app: str, service: str, *args: str) -> list[dict[str, Any]]:
    """Run tests/fixtures/APP under `opentelemetry-instrument`; return its JSON log lines."""
    env = {**os.environ, "OTEL_SERVICE_NAME": service,
           "OTEL_EXPORTER_OTLP_ENDPOINT": url(stack, "otlp_http", ""),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    path = Path(__file__).parent / "fixtures" / app
    run = subprocess.run(["opentelemetry-instrument", sys.executable, str(path), *args], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_unmodified_stdlib_app_gets_correlated_redacted_logs(stack: dict[str, Any]) -> None:
    """`opentelemetry-instrument python app.py`: JSON logs in VictoriaLogs with trace ids, no
    secrets."""
    service, marker = f"plain-app-{secrets.token_hex(3)}", secrets.token_hex(6)
    stdout = _instrumented(stack, "plain_app.py", service, marker)
    assert [r["level"] for r in stdout if marker in r["message"]] == ["info", "error"]

    def stored_lines() -> list[tuple[dict[str, str], dict[str, Any]]]:
        rows = query_logs(url(stack, "victorialogs", ""), f"service.name:={logsql_string(service)}")
        lines = list(zip(rows, json_lines(rows), strict=True))
        return lines if len(lines) >= 2 else []

    lines = eventually(stored_lines, timeout=60)
    raw = json.dumps(lines)
    for planted in ["hunter2-plain", "PLANTEDSECRET", "PLANTEDBEARER"]:
        assert planted not in raw
    trace_ids = {line["trace_id"] for _, line in lines}
    assert len(trace_ids) == 1
    assert {fields.get("trace_id") for fields, _ in lines} == trace_ids
    (trace_id,) = trace_ids
    found = eventually(lambda: get_json(url(stack, "jaeger_query", f"/api/traces/{trace_id}"))["data"],
                       timeout=60)
    assert found[0]["spans"][0]["operationName"] == "research-request"


def prom_query(stack: dict[str, Any], promql: str) -> list[dict[str, Any]]:
    query = urllib.parse.quote(promql)
    return get_json(url(stack, "prometheus", f"/api/v1/query?query={query}"))["data"]["result"]


def test_catalogue_metrics_reach_prometheus_under_their_names_with_exemplars(stack: dict[str, Any]) -> None:
    """Every catalogue name is what Prometheus stores; histograms carry the trace as exemplar."""
    service = f"metrics-app-{secrets.token_hex(3)}"
    (log,) = [r for r in _instrumented(stack, "metrics_app.py", service) if r["logger"] == "metrics_app"]
    expected = {spec.name + ("_bucket" if spec.type == "histogram" else "") for spec in catalogue().values()}

    def names() -> set[str] | None:
        found = {r["metric"]["__name__"] for r in prom_query(stack, f'{{job="{service}"}}')}
        return found if expected <= found else None

    assert expected <= eventually(names, timeout=60, every=2)
    (requests,) = prom_query(stack, f'theodore_requests_total{{job="{service}",endpoint="/research"}}')
    assert requests["metric"]["status_code"] == "200" and requests["value"][1] == "1"
    query = urllib.parse.urlencode({"query": f'theodore_request_duration_seconds_bucket{{job="{service}"}}',
                                    "start": time.time() - 600, "end": time.time() + 60})
    exemplars = get_json(url(stack, "prometheus", f"/api/v1/query_exemplars?{query}"))["data"]
    trace_ids = {e["labels"].get("trace_id") for series in exemplars for e in series["exemplars"]}
    assert log["trace_id"] in trace_ids


def test_demo_request_is_traced_logged_and_measured_end_to_end(stack: dict[str, Any]) -> None:
    """One request with a known X-Correlation-ID, followed through Jaeger, VictoriaLogs and
    Prometheus."""
    demo = f"http://127.0.0.1:{stack['spec']['services']['theodore-demo']['port']}"
    cid = f"e2e-{secrets.token_hex(6)}"
    planted = {"api_key": "sk-proj-E2EPLANTED0123456789ab", "note": "password=e2e-hunter2"}
    query = urllib.parse.urlencode({"company": "acme", **planted})
    request = urllib.request.Request(f"{demo}/research?{query}", headers={"X-Correlation-ID": cid})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["X-Correlation-ID"] == cid
    recent = get_json(f"{demo}/companies")["companies"]
    assert "acme" in {row["company"] for row in recent}

    def logs() -> list[dict[str, Any]]:
        rows = query_logs(url(stack, "victorialogs", ""),
                          f"service.name:=theodore-demo correlation_id:={logsql_string(cid)}")
        lines = json_lines(rows)
        done = any(line["message"] == "research done" for line in lines)
        access = any(line["logger"] == "werkzeug" for line in lines)  # holds the raw query string
        return lines if done and access else []

    lines = eventually(logs, timeout=60)
    assert {line["correlation_id"] for line in lines} == {cid}
    # The server's access line is written as the body goes out, after the request's span ended:
    # it carries the correlation ID only. Every line logged inside the request has the trace.
    in_request = [line for line in lines if line["logger"] != "werkzeug"]
    assert in_request and all("trace_id" in line for line in in_request)
    (trace_id,) = {line["trace_id"] for line in in_request}
    raw = json.dumps(lines)
    assert "E2EPLANTED" not in raw and "e2e-hunter2" not in raw

    def jaeger_trace(trace_id: str) -> list[Any]:
        """The trace once Jaeger has it: spans reach it after the SDK's batch delay and the
        collector's tail-sampling wait, so later than the metrics that name the trace."""
        try:
            return get_json(url(stack, "jaeger_query", f"/api/traces/{trace_id}"))["data"]
        except urllib.error.HTTPError:
            return []

    (found,) = eventually(lambda: jaeger_trace(trace_id), timeout=60)
    by_name = {s["operationName"]: s for s in found["spans"]}
    kinds = {name: {t["key"]: t["value"] for t in s["tags"]}.get("span.kind") for name, s in by_name.items()}
    assert kinds["GET /research"] == "server" and kinds["GET"] == "client"
    assert kinds["chat gpt-4o-mini"] == "client"
    assert {p["serviceName"] for p in found["processes"].values()} == {"theodore-demo"}
    server_tags = {t["key"]: t["value"] for t in by_name["GET /research"]["tags"]}
    assert server_tags["theodore.correlation_id"] == cid

    for promql in ['theodore_requests_total{job="theodore-demo",endpoint="/research"}',
                   'theodore_companies_researched_total{job="theodore-demo"}',
                   'traces_span_metrics_calls_total{service_name="theodore-demo"}',
                   'theodore_ai_cost_total{job="theodore-demo",model="gpt-4o-mini"}']:
        assert eventually(lambda q=promql: prom_query(stack, q), timeout=60, every=2), promql

    def cost_exemplars() -> set[str]:
        params = urllib.parse.urlencode({"query": 'theodore_ai_operation_duration_seconds_bucket{job="theodore-demo"}',
                                         "start": time.time() - 600, "end": time.time() + 60})
        series = get_json(url(stack, "prometheus", f"/api/v1/query_exemplars?{params}"))["data"]
        return {e["labels"]["trace_id"] for s in series for e in s["exemplars"] if "trace_id" in e["labels"]}

    # The load generator keeps calling too, so the newest exemplar per bucket may be another
    # request's: each one must lead to a trace whose AI span it measured.
    exemplar_trace = min(eventually(cost_exemplars, timeout=60, every=2))
    (linked,) = eventually(lambda: jaeger_trace(exemplar_trace), timeout=60)
    assert any(s["operationName"].startswith("chat ") for s in linked["spans"])
    # ... and from that trace to its logs, by the query Grafana's trace-to-logs link runs.
    trace_logs = eventually(lambda: query_logs(url(stack, "victorialogs", ""),
                                               f"trace_id:={logsql_string(exemplar_trace)}"), timeout=60)
    assert {row["service.name"] for row in trace_logs} == {"theodore-demo"}


def test_up_twice_is_safe(stack: dict[str, Any]) -> None:
    native_only(stack)
    pid = supervisord_pid(stack["state"])
    result = run_cli("up", "--spec", str(stack["spec_file"]), env=stack["env"])
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout
    assert supervisord_pid(stack["state"]) == pid


def test_down_leaves_nothing_running(stack: dict[str, Any]) -> None:
    native_only(stack)
    state = stack["state"]
    pids = [supervisord_pid(state), *(p["pid"] for p in process_info(state))]
    assert len(pids) == 13 and all(pids)  # supervisord, 9 components, demo, its upstreams, load
    result = run_cli("down", env=stack["env"])
    assert result.returncode == 0, result.stderr
    assert not [p for p in pids if _alive(p)]
    demo_ports = [stack["spec"]["services"]["theodore-demo"]["port"], stack["spec"]["demo"]["upstream_port"]]
    for port in [*stack["spec"]["ports"].values(), *demo_ports]:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
    assert "not running" in run_cli("down", env=stack["env"]).stdout
    assert not os.path.exists(state.pidfile)
