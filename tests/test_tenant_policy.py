"""Tenants, the audit trail and log sampling as the spec states them and the collector reads them:
what the loader refuses, and the rendered gateway config that `otelcol validate` accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_obs.log_sampling import log_sampling_context
from theodore_obs.render import native_runtime, render_files
from theodore_obs.spec import SpecError, load_spec
from theodore_obs.tenants import tenants
from theodore_obs.validate import run_check

from .conftest import load_stack

TEAM_A = {"account_id": 1, "token_file": "team_a_token", "ports": {"otlp_grpc": 4327, "otlp_http": 4328}}


def _spec(tmp_path: Path, edit: Any) -> Path:
    data = load_stack()
    edit(data)
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _two_tenants(data: dict[str, Any]) -> None:
    data["tenants"]["team-a"] = dict(TEAM_A)
    data["tenants"]["theodore"]["token_file"] = "theodore_token"
    data["sampling"]["logs"] = {"keep_percent": 10, "services": {"checkout": 50, "payments": 100}}


@pytest.mark.parametrize(("edit", "field", "message"), [
    (lambda d: d["tenants"].update({"team-a": {"account_id": 1, "token_file": "t"}}),
     "tenants.team-a.ports", "required"),
    (lambda d: d["tenants"].update({"team-a": {"account_id": 1, "ports": TEAM_A["ports"]}}),
     "tenants.team-a.token_file", "required"),
    (lambda d: d["tenants"].update({"team-a": {**TEAM_A, "ports": {"otlp_grpc": 9090, "otlp_http": 4328}}}),
     "tenants.team-a.ports.otlp_grpc", "port 9090 is ports.prometheus too"),
    (lambda d: d["tenants"].update({"team-a": {**TEAM_A, "account_id": 0}}),
     "tenants.team-a.account_id", "is tenant theodore's too"),
    (lambda d: d["tenants"].update({"team-a": {**TEAM_A, "token_file": "audit_reader_token"}}),
     "tenants.team-a.token_file", "is audit.reader_token_file too"),
    (lambda d: d["tenants"]["theodore"].update({"ports": TEAM_A["ports"]}),
     "tenants.theodore.ports", "writes to the main OTLP ports"),
    (lambda d: d["tenants"].update({"team-a": {**TEAM_A, "token_file": "../../etc/passwd"}}),
     "tenants.team-a.token_file", ""),
    (lambda d: d["audit"].update({"categories": ['audit" or true or "']}), "audit.categories.0", ""),
    (lambda d: d["tenants"].update({"t" * 36: TEAM_A}), "tenants", ""),
    (lambda d: d["audit"].update({"copy_to_app_logs": ["security", "billing"]}), "audit.copy_to_app_logs",
     "billing: not in audit.categories"),
    (lambda d: d["tenants"].update({"team-a": {**TEAM_A, "token_file": "team-a-token"}}),
     "tenants.team-a.token_file", ""),
])
def test_a_tenant_mistake_names_its_field(tmp_path: Path, edit: Any, field: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec("local", _spec(tmp_path, edit))
    assert caught.value.path == field, str(caught.value)
    assert message in str(caught.value)


def test_the_log_store_tenant_comes_first_and_writes_to_the_main_ports(tmp_path: Path) -> None:
    spec = load_spec("local", _spec(tmp_path, _two_tenants))
    main, team_a = tenants(spec.data)
    assert (main.name, main.main, main.suffix, main.otlp_http) == ("theodore", True, "", spec.data["ports"]["otlp_http"])
    assert (team_a.name, team_a.suffix, team_a.otlp_grpc, team_a.account_id) == ("team-a", "/team-a", 4327, 1)


def test_nothing_is_sampled_unless_a_percent_is_below_100() -> None:
    keep_all = {"sampling": {"logs": {"keep_percent": 100, "services": {"a": 100}}}}
    assert log_sampling_context(keep_all) is None
    some = log_sampling_context({"sampling": {"logs": {"keep_percent": 100, "services": {"a": 12.5}}}})
    assert some is not None and some["services"] == {"a": 12.5} and some["keep_percent"] == 100


def _collector(tmp_path: Path) -> dict[str, Any]:
    spec = load_spec("local", _spec(tmp_path, _two_tenants))
    text = render_files(spec, native_runtime(tmp_path / "state"))["otel-collector/config.yaml"]
    (tmp_path / "config.yaml").write_text(text)
    return yaml.safe_load(text)


def test_each_tenant_writes_through_its_own_authenticated_receivers(tmp_path: Path) -> None:
    config = _collector(tmp_path)
    secrets = tmp_path / "state" / "secrets"
    assert config["extensions"]["bearertokenauth/team-a"] == {"filename": str(secrets / "team_a_token")}
    assert config["extensions"]["bearertokenauth/theodore"] == {"filename": str(secrets / "theodore_token")}
    http = config["receivers"]["otlp/team-a"]["protocols"]["http"]
    assert http == {"endpoint": "127.0.0.1:4328", "auth": {"authenticator": "bearertokenauth/team-a"}}
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["auth"] == {"authenticator": "bearertokenauth/theodore"}
    pipelines = config["service"]["pipelines"]
    for signal in ("traces", "metrics", "logs", "traces/spanmetrics"):
        assert pipelines[f"{signal}/team-a"]["receivers"][0] == "otlp/team-a"
        assert pipelines[f"{signal}/team-a"]["processors"][:2] == ["memory_limiter", "transform/tenant-team-a"]
    tenant = config["processors"]["transform/tenant-team-a"]
    for signal in ("trace", "metric", "log"):
        assert tenant[f"{signal}_statements"] == ['set(resource.attributes["theodore.tenant"], "team-a")']
    headers = config["exporters"]["otlphttp/victorialogs/team-a"]["headers"]
    assert (headers["AccountID"], headers["ProjectID"]) == ("1", "0")
    assert pipelines["logs/store/team-a"]["exporters"] == ["otlphttp/victorialogs/team-a"]
    assert pipelines["logs/audit"]["receivers"] == ["routing/audit", "routing/audit/team-a"]
    assert set(config["service"]["extensions"]) >= {"bearertokenauth/team-a", "bearertokenauth/theodore"}


def test_audit_events_leave_before_sampling_and_the_sampler_keeps_warnings(tmp_path: Path) -> None:
    config = _collector(tmp_path)
    route = config["connectors"]["routing/audit/team-a"]
    assert route["default_pipelines"] == ["logs/store/team-a"]
    assert route["table"] == [
        {"context": "log", "pipelines": ["logs/audit"], "condition": 'attributes["category"] == "audit"'},
        {"context": "log", "pipelines": ["logs/audit", "logs/store/team-a"],
         "condition": 'attributes["category"] == "security"'}]
    assert config["service"]["pipelines"]["logs/audit"].get("processors") is None
    store = config["service"]["pipelines"]["logs/store"]["processors"]
    assert store == ["transform/log-sampling-priority", "probabilistic_sampler/logs",
                     "transform/log-sampling-cleanup"]
    statements = config["processors"]["transform/log-sampling-priority"]["log_statements"][0]["statements"]
    assert statements[0].endswith("where severity_number >= SEVERITY_NUMBER_WARN")
    assert any('resource.attributes["service.name"] == "checkout"' in s and ", 50)" in s for s in statements)
    assert config["processors"]["probabilistic_sampler/logs"]["sampling_percentage"] == 10


def test_the_collector_accepts_the_tenants_config(tmp_path: Path) -> None:
    _collector(tmp_path)
    secrets = tmp_path / "state" / "secrets"
    secrets.mkdir(parents=True)
    for name in ("team_a_token", "theodore_token"):
        (secrets / name).write_text("t0ken\n")
    config = tmp_path / "config.yaml"
    finding = run_check("otelcol validate", ["otelcol-theodore", "validate", f"--config={config}"], config)
    assert finding.ok, finding.line()
