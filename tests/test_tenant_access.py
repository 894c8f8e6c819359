"""Reading per tenant without a running stack: the vmauth config and Grafana datasources as
rendered (vmauth itself checks its config), the native runtime's tokens and vmauth copy, and the
`logs --tenant/--audit` errors that need no backend."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from theodore_obs.cli import main
from theodore_obs.native import NativeError, State, write_secrets, write_vmauth_config
from theodore_obs.render import COMPOSE, native_runtime, render_files
from theodore_obs.spec import load_spec
from theodore_obs.tenant_access import TokenError, filled_config, token_env
from theodore_obs.tools import binary_path

from .conftest import load_stack

TOKENS = {"TEAM_A_TOKEN": "a" * 20 + "-team-a", "TEAM_B_TOKEN": "b" * 20 + "_team-b",
          "AUDIT_READER_TOKEN": "c" * 24}


def two_tenants(data: dict[str, Any]) -> None:
    """team-a (AccountID 1) and team-b (AccountID 2, ProjectID 3), each with a token."""
    data["tenants"]["team-a"] = {"account_id": 1, "token_file": "team_a_token",
                                 "ports": {"otlp_grpc": 4327, "otlp_http": 4328}}
    data["tenants"]["team-b"] = {"account_id": 2, "project_id": 3, "token_file": "team_b_token",
                                 "ports": {"otlp_grpc": 4337, "otlp_http": 4338}}


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    data = load_stack()
    two_tenants(data)
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    return TOKENS


def _rendered(spec_file: Path, runtime: Any = COMPOSE) -> dict[str, str]:
    return render_files(load_spec("local", spec_file), runtime)


# token_env


def test_every_token_vmauth_checks_has_its_variable(spec_file: Path) -> None:
    assert token_env(load_spec("local", spec_file).data) == {
        "TEAM_A_TOKEN": "team_a_token", "TEAM_B_TOKEN": "team_b_token",
        "AUDIT_READER_TOKEN": "audit_reader_token"}
    assert token_env({"alerting": {}}) == {}


# vmauth/auth.yml


def test_each_tenant_reads_only_its_own_space_on_the_read_api(spec_file: Path) -> None:
    text = _rendered(spec_file)["vmauth/auth.yml"]
    config = yaml.safe_load(text)
    assert set(config) == {"users"}, "no unauthorized_user: a request without a token reaches nothing"
    users = {u["name"]: u for u in config["users"]}
    assert set(users) == {"tenant-team-a", "tenant-team-b", "auditors"}
    assert {u["bearer_token"] for u in users.values()} == {f"%{{{v}}}" for v in token_env(
        load_spec("local", spec_file).data)}
    for user in users.values():
        assert set(user) == {"name", "bearer_token", "url_map"}
        (route,) = user["url_map"]
        assert route["src_paths"] == ["/select/logsql/.+", "/select/buildinfo"]
    assert users["tenant-team-b"]["url_map"][0]["headers"] == ["AccountID: 2", "ProjectID: 3"]
    assert users["tenant-team-a"]["url_map"][0]["url_prefix"] == "http://victorialogs:9428"
    assert users["auditors"]["url_map"][0]["url_prefix"] == "http://victorialogs-audit:9429"
    assert not any(value in text for value in TOKENS.values())


def test_vmauth_accepts_the_rendered_config(spec_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "auth.yml"
    config.write_text(_rendered(spec_file)["vmauth/auth.yml"])
    check = subprocess.run([str(binary_path("vmauth")), "-dryRun", f"-auth.config={config}"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_without_tenant_tokens_only_the_auditors_have_a_user() -> None:
    users = yaml.safe_load(render_files(load_spec("local"), COMPOSE)["vmauth/auth.yml"])["users"]
    assert [u["name"] for u in users] == ["auditors"]


# Grafana


def test_grafana_reads_each_tenant_and_the_audit_trail_through_vmauth(spec_file: Path) -> None:
    text = _rendered(spec_file)["grafana/provisioning/datasources/datasources.yaml"]
    sources = {ds["uid"]: ds for ds in yaml.safe_load(text)["datasources"]}
    assert sources["victorialogs"]["url"] == "http://victorialogs:9428", "the default Logs datasource stays"
    for uid, file in [("logs-team-a", "team_a_token"), ("logs-team-b", "team_b_token"),
                      ("audit-logs", "audit_reader_token")]:
        source = sources[uid]
        assert source["url"] == "http://vmauth:8427"
        assert source["type"] == "victoriametrics-logs-datasource"
        assert "multitenancyHeaders" not in source["jsonData"], "vmauth sets the tenant"
        assert source["jsonData"]["httpHeaderName1"] == "Authorization"
        assert source["secureJsonData"]["httpHeaderValue1"] == f"Bearer $__file{{/run/secrets/{file}}}"
    assert sources["audit-logs"]["name"] == "Audit logs"


# Native tokens


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_token_not_in_the_environment_is_generated_once_and_kept(spec_file: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TOKENS:
        monkeypatch.delenv(name, raising=False)
    spec, state = load_spec("local", spec_file).data, State(tmp_path / "state")
    write_secrets(spec, state)
    files = [state.root / "secrets" / f for f in token_env(spec).values()]
    first = [f.read_text() for f in files]
    assert all(len(t) >= 40 for t in first) and len(set(first)) == 3
    assert all(_mode(f) == 0o600 for f in files)
    write_secrets(spec, state)
    assert [f.read_text() for f in files] == first
    monkeypatch.setenv("TEAM_A_TOKEN", TOKENS["TEAM_A_TOKEN"])
    write_secrets(spec, state)
    assert files[0].read_text() == TOKENS["TEAM_A_TOKEN"], "the environment wins"
    assert [f.read_text() for f in files[1:]] == first[1:]


@pytest.mark.parametrize(("value", "message"), [
    ("short", "expected one token"), ("has a blank in it 1234", "expected one token"),
    ("", "empty"), ('quote"d-and-long-enough', "expected one token")])
def test_a_token_from_the_environment_that_is_not_one_token_is_refused(
        spec_file: Path, tmp_path: Path, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        value: str, message: str) -> None:
    monkeypatch.setenv("TEAM_B_TOKEN", value)
    with pytest.raises(NativeError, match=rf"\$TEAM_B_TOKEN: {message}") as caught:
        write_secrets(load_spec("local", spec_file).data, State(tmp_path / "state"))
    assert value not in str(caught.value) or not value


def test_two_readers_with_one_token_are_refused(spec_file: Path, tmp_path: Path, tokens: dict[str, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_B_TOKEN", tokens["TEAM_A_TOKEN"])
    with pytest.raises(NativeError, match="TEAM_A_TOKEN and TEAM_B_TOKEN hold the same token") as caught:
        write_secrets(load_spec("local", spec_file).data, State(tmp_path / "state"))
    assert tokens["TEAM_A_TOKEN"] not in str(caught.value)


def test_a_symlink_in_place_of_a_token_is_refused(spec_file: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEAM_A_TOKEN", raising=False)
    target = tmp_path / "elsewhere"
    target.write_text("x" * 30)
    (tmp_path / "state" / "secrets").mkdir(parents=True)
    (tmp_path / "state" / "secrets" / "team_a_token").symlink_to(target)
    with pytest.raises(NativeError, match="symlink"):
        write_secrets(load_spec("local", spec_file).data, State(tmp_path / "state"))
    assert target.read_text() == "x" * 30


def test_the_native_vmauth_reads_a_private_copy_with_the_tokens(spec_file: Path, tmp_path: Path,
                                                                tokens: dict[str, str]) -> None:
    spec, state = load_spec("local", spec_file), State(tmp_path / "state")
    write_secrets(spec.data, state)
    rendered = _rendered(spec_file, native_runtime(state.root))["vmauth/auth.yml"]
    (state.config / "vmauth").mkdir(parents=True)
    (state.config / "vmauth" / "auth.yml").write_text(rendered)
    write_vmauth_config(spec.data, state)
    path = state.vmauth_config
    assert path == state.root / "secrets" / "vmauth-auth.yml" and _mode(path) == 0o600
    users = {u["name"]: u for u in yaml.safe_load(path.read_text())["users"]}
    assert users["tenant-team-a"]["bearer_token"] == tokens["TEAM_A_TOKEN"]
    assert users["auditors"]["bearer_token"] == tokens["AUDIT_READER_TOKEN"]
    assert users["tenant-team-a"]["url_map"][0]["url_prefix"].startswith("http://127.0.0.1:")
    check = subprocess.run([str(binary_path("vmauth")), "-dryRun", f"-auth.config={path}"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_placeholder_without_its_token_stops_the_copy() -> None:
    rendered = 'users: [{name: x, bearer_token: "%{NOPE}"}]'
    with pytest.raises(TokenError, match="no token for '%{NOPE}'"):
        filled_config(rendered, {"OTHER": "t" * 20})


# logs --tenant / --audit, before any backend is asked


def _logs(spec_file: Path, tmp_path: Path, *args: str) -> Any:
    env = {"THEODORE_OBS_STATE": str(tmp_path / "nostate"), "THEODORE_OBS_VMAUTH_URL": "http://127.0.0.1:9"}
    return CliRunner().invoke(main, ["logs", "--spec", str(spec_file), *args], env=env)


def test_unknown_tenant_names_the_defined_ones(spec_file: Path, tmp_path: Path) -> None:
    result = _logs(spec_file, tmp_path, "--tenant", "team-c")
    assert result.exit_code == 2
    assert result.stderr == "error: --tenant: no tenant 'team-c' in the spec (known: team-a, team-b, theodore)\n"


def test_a_missing_default_token_file_says_where_it_was_looked_for(spec_file: Path, tmp_path: Path) -> None:
    result = _logs(spec_file, tmp_path, "--tenant", "team-a")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'nostate' / 'secrets' / 'team_a_token'}: missing")
    assert "theodore-obs up" in result.stderr and "Traceback" not in result.output
    audit = _logs(spec_file, tmp_path, "--audit")
    assert audit.exit_code == 2 and "audit_reader_token: missing" in audit.stderr


def test_an_unreadable_or_empty_token_file_is_bad_input(spec_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    result = _logs(spec_file, tmp_path, "--tenant", "team-a", "--token-file", str(empty))
    assert (result.exit_code, result.stderr) == (2, f"error: --token-file {empty}: empty\n")
    unreadable = tmp_path / "unreadable"
    unreadable.write_text("t" * 30)
    unreadable.chmod(0)
    if os.access(unreadable, os.R_OK):
        pytest.skip("running as root: every file is readable")
    result = _logs(spec_file, tmp_path, "--tenant", "team-a", "--token-file", str(unreadable))
    assert result.exit_code == 2 and "unreadable (Permission denied)" in result.stderr


def test_audit_and_tenant_together_or_a_token_for_an_open_tenant_are_refused(spec_file: Path,
                                                                             tmp_path: Path) -> None:
    both = _logs(spec_file, tmp_path, "--audit", "--tenant", "team-a")
    assert both.exit_code == 2 and "leave out --tenant" in both.stderr
    token = tmp_path / "token"
    token.write_text("t" * 30)
    open_tenant = _logs(spec_file, tmp_path, "--tenant", "theodore", "--token-file", str(token))
    assert open_tenant.exit_code == 2 and "tenant 'theodore' has no token_file" in open_tenant.stderr


def test_a_vmauth_that_does_not_answer_is_named(spec_file: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t" * 30)
    result = _logs(spec_file, tmp_path, "--tenant", "team-a", "--token-file", str(token))
    assert result.exit_code == 3
    assert result.stderr.startswith("error: vmauth at http://127.0.0.1:9 is not answering")
    assert "t" * 30 not in result.output
