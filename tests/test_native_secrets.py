"""The native runtime's secret files: confined to the state's secrets directory, never written
through a symlink, always mode 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from theodore_obs.native import NativeError, State, write_secrets


def _spec(*names: str) -> dict:
    """A spec fragment whose one receiver reads the secret files ``names``."""
    return {"alerting": {"receivers": {"team": {f"key{i}_file": n for i, n in enumerate(names)}}}}


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> State:
    """A state directory, with SLACK_API_URL set to a known secret."""
    monkeypatch.setenv("SLACK_API_URL", "https://hooks.example/secret")
    return State(tmp_path / "state")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_secret_is_written_private_in_a_private_directory(state: State) -> None:
    assert write_secrets(_spec("slack_api_url"), state) == []
    secret = state.root / "secrets" / "slack_api_url"
    assert secret.read_text() == "https://hooks.example/secret"
    assert _mode(secret) == 0o600 and _mode(secret.parent) == 0o700


def test_an_existing_world_readable_secret_becomes_0600_and_is_replaced(state: State) -> None:
    secret = state.root / "secrets" / "slack_api_url"
    secret.parent.mkdir(parents=True)
    secret.write_text("an older and much longer value than the new one")
    secret.chmod(0o644)
    write_secrets(_spec("slack_api_url"), state)
    assert _mode(secret) == 0o600
    assert secret.read_text() == "https://hooks.example/secret"


def test_a_symlink_in_place_of_the_secret_is_refused_and_its_target_untouched(state: State,
                                                                              tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours")
    target.chmod(0o644)
    (state.root / "secrets").mkdir(parents=True)
    (state.root / "secrets" / "slack_api_url").symlink_to(target)
    with pytest.raises(NativeError, match="refusing to write the secret"):
        write_secrets(_spec("slack_api_url"), state)
    assert target.read_text() == "not yours" and _mode(target) == 0o644


def test_a_dangling_symlink_does_not_create_its_target(state: State, tmp_path: Path) -> None:
    target = tmp_path / "created-through-the-link"
    (state.root / "secrets").mkdir(parents=True)
    (state.root / "secrets" / "slack_api_url").symlink_to(target)
    with pytest.raises(NativeError, match="symlink"):
        write_secrets(_spec("slack_api_url"), state)
    assert not target.exists()


def test_a_symlinked_secrets_directory_is_refused(state: State, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state.root.mkdir(parents=True)
    (state.root / "secrets").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(NativeError, match="secrets directory"):
        write_secrets(_spec("slack_api_url"), state)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("name", ["../escape", "sub/name", "..", ".hidden", "a..b", ""])
def test_a_name_that_could_leave_the_directory_is_refused_before_anything_is_written(
        state: State, name: str) -> None:
    with pytest.raises(NativeError, match="expected a plain file name"):
        write_secrets(_spec("slack_api_url", name), state)
    assert not (state.root / "secrets").exists()
    assert not (state.root / "escape").exists()


def test_a_fifo_in_place_of_the_secret_is_refused_without_blocking(state: State) -> None:
    (state.root / "secrets").mkdir(parents=True)
    os.mkfifo(state.root / "secrets" / "slack_api_url")
    with pytest.raises(NativeError, match="refusing to write the secret"):
        write_secrets(_spec("slack_api_url"), state)


def test_an_unset_variable_removes_the_stale_file_and_is_reported(state: State,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    write_secrets(_spec("slack_api_url"), state)
    monkeypatch.delenv("SLACK_API_URL")
    assert write_secrets(_spec("slack_api_url"), state) == ["SLACK_API_URL"]
    assert not (state.root / "secrets" / "slack_api_url").exists()
