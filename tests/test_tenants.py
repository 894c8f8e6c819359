"""Tenants kept apart and the audit trail, end to end on one native stack.

The spec gets two tenants, team-a and team-b, each with its own OTLP ports and token (the native
runtime generates the tokens into the state's secrets directory). Each tenant's writer posts
uniquely numbered lines over OTLP/HTTP with its token; then every read path we ship is asked
as tenant A: the CLI (`logs --tenant team-a`), vmauth with A's token, the log store's API with
A's AccountID header, and the Grafana datasource as rendered (its URL, header and token file).
A reads all of its own lines and none of B's. A write with A's token that claims team-b lands in
A, and B's metrics and spans carry team-b whatever tenant they claim; a wrong or missing token is
refused by the collector and by vmauth. An audit event (the seed
logger's `audit()`, sent with A's token) arrives in the audit store and not in the app store,
and `logs --audit` reads it; A's token cannot write, delete or read the audit trail through
vmauth. The stack's ports are shifted by PORT_OFFSET.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import native_stack, run_cli
from .support.victorialogs import logsql_string, query_logs
from .test_native import eventually

PORT_OFFSET = 9700
"""Ports no other native-stack test module uses (test_port_offsets checks the spec's)."""

TENANTS = {
    "team-a": {"account_id": 11, "project_id": 0, "token_file": "team_a_token",
               "ports": {"otlp_grpc": 4327 + PORT_OFFSET, "otlp_http": 4328 + PORT_OFFSET}},
    "team-b": {"account_id": 12, "project_id": 5, "token_file": "team_b_token",
               "ports": {"otlp_grpc": 4337 + PORT_OFFSET, "otlp_http": 4338 + PORT_OFFSET}},
}
LINES = 5
"""Planted lines per tenant, each numbered."""
MARK = uuid.uuid4().hex
"""What every planted line of this run carries (its ``probe`` attribute and its text)."""
WARN = 13
"""Severity of the planted lines: WARN is never sampled."""


def _edit(spec: dict[str, Any]) -> None:
    spec["tenants"].update(json.loads(json.dumps(TENANTS)))
    spec["demo"]["enabled"] = False


def _request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
             method: str | None = None) -> tuple[int, bytes]:
    """(status, body) of a request; an HTTP error status is an answer too."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _otlp_logs(service: str, lines: list[str], resource: dict[str, str] | None = None,
               attributes: dict[str, str] | None = None) -> bytes:
    """An OTLP/HTTP JSON export request of ``lines`` (WARN), each with the run's ``probe``."""
    def kv(items: dict[str, str]) -> list[dict[str, Any]]:
        return [{"key": k, "value": {"stringValue": v}} for k, v in items.items()]

    now = time.time_ns()
    records = [{"timeUnixNano": str(now + i), "severityNumber": WARN, "severityText": "WARN",
                "body": {"stringValue": line}, "attributes": kv({"probe": MARK, **(attributes or {})})}
               for i, line in enumerate(lines)]
    return json.dumps({"resourceLogs": [{
        "resource": {"attributes": kv({"service.name": service, **(resource or {})})},
        "scopeLogs": [{"scope": {"name": "tenant-probe"}, "logRecords": records}]}]}).encode()


def _write(stack: dict[str, Any], tenant: str, body: bytes, token: str | None,
           headers: dict[str, str] | None = None) -> int:
    port = TENANTS[tenant]["ports"]["otlp_http"]
    auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
    status, _ = _request(f"http://127.0.0.1:{port}/v1/logs", body,
                         {"Content-Type": "application/json", **auth, **(headers or {})})
    return status


def planted(tenant: str) -> set[str]:
    return {f"{tenant} line {i} {MARK}" for i in range(LINES)}


CLAIM = f"team-a claims team-b {MARK}"
AUDIT_ACTION = f"export-{MARK}"


def _seed_logger_audit(stack: dict[str, Any], token: str) -> subprocess.CompletedProcess[str]:
    """The seed logger's ``audit()`` in an app under the distro, exporting to team-a's port."""
    code = ("from theodore_telemetry.logger import get_logger\n"
            f"get_logger('billing').audit({AUDIT_ACTION!r}, user_id='u-1', resource='invoice-7')\n")
    env = {**os.environ, "OTEL_SERVICE_NAME": "tenant-audit-probe",
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{TENANTS['team-a']['ports']['otlp_http']}",
           "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{token}",
           "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    return subprocess.run([str(instrument), sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The native stack with team-a and team-b, their tokens, and this run's lines written."""
    for info in native_stack(tmp_path_factory.mktemp("tenants"), PORT_OFFSET, _edit):
        assert info["up"].returncode == 0, info["up"].stdout + info["up"].stderr
        secrets = info["state"].root / "secrets"
        info["tokens"] = {name: (secrets / file).read_text() for name, file in
                          [("team-a", "team_a_token"), ("team-b", "team_b_token"),
                           ("audit", "audit_reader_token")]}
        for tenant in TENANTS:
            lines = sorted(planted(tenant))
            assert _write(info, tenant, _otlp_logs(f"{tenant}-app", lines), info["tokens"][tenant]) == 200
        claim = _otlp_logs("team-a-app", [CLAIM], resource={"theodore.tenant": "team-b"})
        info["claim_status"] = _write(info, "team-a", claim, info["tokens"]["team-a"],
                                      {"AccountID": "12", "ProjectID": "5"})
        info["audit_run"] = _seed_logger_audit(info, info["tokens"]["team-a"])
        yield info


def _store(stack: dict[str, Any], port: str = "victorialogs") -> str:
    return f"http://127.0.0.1:{stack['spec']['ports'][port]}"


def _vmauth(stack: dict[str, Any]) -> str:
    return _store(stack, "vmauth")


def _messages(rows: list[dict[str, str]]) -> set[str]:
    return {row["_msg"] for row in rows}


def _query(base: str, headers: dict[str, str], logsql: str = f"probe:={logsql_string(MARK)}") -> list[dict[str, str]]:
    return query_logs(base, logsql, since_s=900, headers=headers)


def _space(tenant: str) -> dict[str, str]:
    return {"AccountID": str(TENANTS[tenant]["account_id"]), "ProjectID": str(TENANTS[tenant]["project_id"])}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _a_sees_all_its_own(rows: list[dict[str, str]]) -> bool:
    return planted("team-a") | {CLAIM} <= _messages(rows)


# Writers


def test_each_writer_is_authenticated_by_its_token(stack: dict[str, Any]) -> None:
    body = _otlp_logs("intruder", [f"intruder {MARK}"])
    assert _write(stack, "team-a", body, None) == 401, "no token"
    assert _write(stack, "team-a", body, "wrong-" + "x" * 30) == 401, "a wrong token"
    assert _write(stack, "team-a", body, stack["tokens"]["team-b"]) == 401, "team-b's token at team-a's port"
    time.sleep(3)
    for tenant in TENANTS:
        assert f"intruder {MARK}" not in _messages(_query(_store(stack), _space(tenant)))


def test_a_write_with_a_token_claiming_another_tenant_lands_in_its_own(stack: dict[str, Any]) -> None:
    assert stack["claim_status"] == 200
    rows = eventually(lambda: [r for r in _query(_store(stack), _space("team-a")) if r["_msg"] == CLAIM])
    assert {r["theodore.tenant"] for r in rows} == {"team-a"}, "the collector sets the tenant"
    assert CLAIM not in _messages(_query(_store(stack), _space("team-b")))


def _post(stack: dict[str, Any], tenant: str, signal: str, payload: dict[str, Any]) -> int:
    port = TENANTS[tenant]["ports"]["otlp_http"]
    status, _ = _request(f"http://127.0.0.1:{port}/v1/{signal}", json.dumps(payload).encode(),
                         {"Content-Type": "application/json", **_bearer(stack["tokens"][tenant])})
    return status


def _claiming_resource(service: str) -> dict[str, Any]:
    """A resource that claims team-a, as a writer of team-b might."""
    return {"attributes": [{"key": "service.name", "value": {"stringValue": service}},
                           {"key": "theodore.tenant", "value": {"stringValue": "team-a"}}]}


def test_metrics_written_by_b_carry_b_as_their_tenant_label(stack: dict[str, Any]) -> None:
    gauge = {"name": f"tenant_probe_{MARK[:8]}", "gauge": {"dataPoints": [
        {"timeUnixNano": str(time.time_ns()), "asDouble": 1.0}]}}
    assert _post(stack, "team-b", "metrics", {"resourceMetrics": [{
        "resource": _claiming_resource("team-b-app"),
        "scopeMetrics": [{"scope": {"name": "tenant-probe"}, "metrics": [gauge]}]}]}) == 200
    url = f"{_store(stack, 'prometheus')}/api/v1/query?" + urllib.parse.urlencode({"query": gauge["name"]})
    series = eventually(lambda: json.loads(_request(url)[1])["data"]["result"])
    assert {s["metric"].get("theodore_tenant") for s in series} == {"team-b"}


def test_spans_written_by_b_carry_b_as_their_tenant(stack: dict[str, Any]) -> None:
    trace_id, service = uuid.uuid4().hex, f"team-b-spans-{MARK[:8]}"
    now = time.time_ns()
    span = {"traceId": trace_id, "spanId": trace_id[:16], "name": "probe", "kind": 2,
            "startTimeUnixNano": str(now - 1_000_000), "endTimeUnixNano": str(now)}
    assert _post(stack, "team-b", "traces", {"resourceSpans": [{
        "resource": _claiming_resource(service),
        "scopeSpans": [{"scope": {"name": "tenant-probe"}, "spans": [span]}]}]}) == 200
    url = f"{_store(stack, 'jaeger_query')}/api/traces/{trace_id}"

    def tenants_of_trace() -> set[str]:
        status, body = _request(url)
        if status != 200:
            return set()
        processes = json.loads(body)["data"][0]["processes"].values()
        return {t["value"] for p in processes for t in p["tags"] if t["key"] == "theodore.tenant"}

    assert eventually(tenants_of_trace) == {"team-b"}


# Readers: A reads all of its own lines and none of B's, on every path


def test_the_store_api_with_a_header_holds_a_lines_only(stack: dict[str, Any]) -> None:
    rows = eventually(lambda: (found := _query(_store(stack), _space("team-a"))) and _a_sees_all_its_own(found)
                      and found)
    assert _messages(rows) == planted("team-a") | {CLAIM}
    b_rows = eventually(lambda: _query(_store(stack), _space("team-b")))
    assert _messages(b_rows) == planted("team-b")


def test_vmauth_with_a_token_gives_a_lines_whatever_headers_are_sent(stack: dict[str, Any]) -> None:
    a_token = _bearer(stack["tokens"]["team-a"])
    rows = eventually(lambda: (found := _query(_vmauth(stack), a_token)) and _a_sees_all_its_own(found) and found)
    assert _messages(rows) == planted("team-a") | {CLAIM}
    claiming_b = _query(_vmauth(stack), {**a_token, **_space("team-b")})
    assert _messages(claiming_b) == planted("team-a") | {CLAIM}, "vmauth sets A's space over the header"
    b_rows = _query(_vmauth(stack), _bearer(stack["tokens"]["team-b"]))
    assert _messages(b_rows) == planted("team-b")


def _cli_entries(stack: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    result = run_cli("logs", "--spec", str(stack["spec_file"]), "--search", MARK, "--since", "15m",
                     "--format", "json", *args, env=stack["env"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["entries"]


def test_the_cli_reads_a_tenant_through_vmauth_with_its_token(stack: dict[str, Any]) -> None:
    entries = eventually(lambda: (found := _cli_entries(stack, "--tenant", "team-a"))
                         and planted("team-a") <= {e["message"] for e in found} and found)
    assert {e["message"] for e in entries} == planted("team-a") | {CLAIM}
    assert {e["message"] for e in _cli_entries(stack, "--tenant", "team-b")} == planted("team-b")
    default = _cli_entries(stack)
    assert not {e["message"] for e in default} & (planted("team-a") | planted("team-b")), \
        "without --tenant: the log store's own tenant, as before"


def test_the_cli_follows_a_tenant_through_vmauth(stack: dict[str, Any]) -> None:
    eventually(lambda: _a_sees_all_its_own(_query(_vmauth(stack), _bearer(stack["tokens"]["team-a"]))))
    result = run_cli("logs", "--spec", str(stack["spec_file"]), "--tenant", "team-a", "--search", MARK,
                     "--since", "15m", "--follow", "--format", "json", "--max-lines", str(LINES + 1),
                     "--max-seconds", "30", env=stack["env"])
    assert result.returncode == 0, result.stderr
    assert {json.loads(line)["message"] for line in result.stdout.splitlines()} == planted("team-a") | {CLAIM}


def test_the_cli_names_a_refused_token_without_showing_it(stack: dict[str, Any], tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-a-token-of-this-stack-" + "z" * 10)
    result = run_cli("logs", "--spec", str(stack["spec_file"]), "--tenant", "team-a", "--token-file", str(wrong),
                     env=stack["env"])
    assert result.returncode == 1
    assert re.fullmatch(rf"error: vmauth at http://127\.0\.0\.1:\d+ answered HTTP 401: the token from "
                        rf"{re.escape(str(wrong))} was refused \(.*\): not a current token of this stack\n",
                        result.stderr), result.stderr
    assert "z" * 10 not in result.stderr and "Traceback" not in result.stdout + result.stderr


def test_the_grafana_datasource_as_rendered_reads_a_lines_only(stack: dict[str, Any]) -> None:
    provisioning = stack["state"].config / "grafana/provisioning/datasources/datasources.yaml"
    sources = {ds["uid"]: ds for ds in yaml.safe_load(provisioning.read_text())["datasources"]}

    def rows(uid: str) -> list[dict[str, str]]:
        source = sources[uid]
        value = re.fullmatch(r"Bearer \$__file\{(.+)\}", source["secureJsonData"]["httpHeaderValue1"])
        assert value is not None, source
        header = {source["jsonData"]["httpHeaderName1"]: f"Bearer {Path(value.group(1)).read_text().strip()}"}
        return _query(source["url"], header)

    found = eventually(lambda: (r := rows("logs-team-a")) and _a_sees_all_its_own(r) and r)
    assert _messages(found) == planted("team-a") | {CLAIM}
    assert _messages(rows("logs-team-b")) == planted("team-b")
    assert sources["victorialogs"]["url"] == _store(stack), "the default Logs datasource stays"


# The audit trail


AUDIT_QUERY = f"*{logsql_string(AUDIT_ACTION)}*"
"""The audit event's line: its action is in the JSON text, not a field of its own."""


def _audit_rows(stack: dict[str, Any]) -> list[dict[str, str]]:
    return query_logs(_store(stack, "victorialogs_audit"), AUDIT_QUERY, since_s=900)


def test_an_audit_event_lands_in_the_audit_store_and_not_in_the_app_store(stack: dict[str, Any]) -> None:
    run = stack["audit_run"]
    assert run.returncode == 0, run.stdout + run.stderr
    rows = eventually(lambda: _audit_rows(stack))
    assert [(r["category"], r["theodore.tenant"], r["_msg"].startswith("{")) for r in rows] == \
        [("audit", "team-a", True)]
    for space in [_space("team-a"), _space("team-b"), {"AccountID": "0", "ProjectID": "0"}]:
        assert _query(_store(stack), space, AUDIT_QUERY) == [], space


def test_logs_audit_reads_the_audit_trail(stack: dict[str, Any]) -> None:
    eventually(lambda: _audit_rows(stack))
    entries = _cli_entries(stack, "--audit")
    assert [e["message"] for e in entries] == [f"AUDIT: {AUDIT_ACTION}"]
    result = run_cli("logs", "--spec", str(stack["spec_file"]), "--audit", "--search", MARK, "--format", "json",
                     env=stack["env"])
    document = json.loads(result.stdout)
    assert (document["tenant"], document["audit"]) == (None, True)


def test_an_app_token_cannot_read_write_or_delete_the_audit_trail_through_vmauth(stack: dict[str, Any]) -> None:
    eventually(lambda: _audit_rows(stack))
    a_token = _bearer(stack["tokens"]["team-a"])
    assert _query(_vmauth(stack), a_token, AUDIT_QUERY) == []
    line = json.dumps({"_msg": f"forged {MARK}", "category": "audit", "probe": MARK}).encode()
    refused = {
        "insert": _request(f"{_vmauth(stack)}/insert/jsonline", line, a_token, "POST"),
        "otlp insert": _request(f"{_vmauth(stack)}/insert/opentelemetry/v1/logs", _otlp_logs("x", ["forged"]),
                                {**a_token, "Content-Type": "application/json"}, "POST"),
        "delete": _request(f"{_vmauth(stack)}/delete/run_task?filter=*", b"", a_token, "POST"),
        "every tenant's ids": _request(f"{_vmauth(stack)}/select/tenant_ids", None, a_token),
        "a path climbing out": _request(f"{_vmauth(stack)}/select/logsql/../../insert/jsonline", line, a_token,
                                        "POST"),
    }
    assert all(status == 400 and b"missing route" in body for status, body in refused.values()), refused
    auditors = _bearer(stack["tokens"]["audit"])
    assert _request(f"{_vmauth(stack)}/insert/jsonline", line, auditors, "POST")[0] == 400
    time.sleep(3)
    forged = f"forged {MARK}"
    assert forged not in _messages(query_logs(_store(stack, "victorialogs_audit"), "*", since_s=900))
    assert all(forged not in _messages(_query(_store(stack), _space(t), "*")) for t in TENANTS)


def test_vmauth_refuses_a_missing_or_wrong_token(stack: dict[str, Any]) -> None:
    query = "/select/logsql/query?" + urllib.parse.urlencode({"query": "*", "limit": 1})
    assert _request(_vmauth(stack) + query)[0] == 401
    assert _request(_vmauth(stack) + query, headers=_bearer("wrong-" + "y" * 30))[0] == 401
