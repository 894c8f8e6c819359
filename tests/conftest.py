"""Shared fixtures: the repository, the CLI as a subprocess, specs written for a test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from theodore_obs.native import State

from .support.compose_stack import SKIPPED_WITHOUT_ENGINE, compose_stack, engine_answers

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
            timeout: float = 300, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run ``python -m theodore_obs ARGS`` the way a user runs ``theodore-obs`` (``unset``: names
    taken out of the environment)."""
    environ = {key: value for key, value in os.environ.items() if key not in unset}
    return subprocess.run([sys.executable, "-m", "theodore_obs", *args], cwd=cwd,
                          env={**environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def load_stack() -> dict:
    return yaml.safe_load((ROOT / "stack.yaml").read_text())


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write a spec (a dict, or raw YAML text) to a temporary stack.yaml and return its path."""

    def write(spec: dict | str, name: str = "stack.yaml") -> Path:
        path = tmp_path / name
        path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
        return path

    return write


def shifted_stack(root: Path, offset: int,
                  edit: Callable[[dict], None] | None = None) -> tuple[dict, Path]:
    """stack.yaml with every port (the demo's too) shifted by ``offset``, then changed by ``edit``,
    written to ROOT/stack.yaml."""
    spec = load_stack()
    spec["ports"] = {name: port + offset for name, port in spec["ports"].items()}
    spec["services"]["theodore-demo"]["port"] += offset
    spec["demo"]["upstream_port"] += offset
    if edit is not None:
        edit(spec)
    spec_file = root / "stack.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    return spec, spec_file


def native_stack(root: Path, port_offset: int,
                 edit: Callable[[dict], None] | None = None) -> Iterator[dict]:
    """Run `theodore-obs up` on the spec's ports shifted by ``port_offset`` (and changed by
    ``edit``), state under ``root``; yield its spec, spec file, CLI environment, state and `up`
    result, then stop it."""
    spec, spec_file = shifted_stack(root, port_offset, edit)
    env = {"THEODORE_OBS_STATE": str(root / "state"), "SLACK_API_URL": "http://127.0.0.1:9/slack"}
    started = time.monotonic()
    result = run_cli("up", "--spec", str(spec_file), "--timeout", "120", env=env)
    info = {"spec": spec, "spec_file": spec_file, "env": env, "state": State(root / "state"),
            "up": result, "up_seconds": time.monotonic() - started}
    try:
        yield info
    finally:
        run_cli("down", env=env)


RUNTIMES = ["native", "compose"]
"""What the end-to-end modules' ``stack`` fixtures are parametrized over (``runtime_stack``)."""


def runtime_stack(runtime: str, tmp_path_factory: pytest.TempPathFactory, name: str,
                  port_offset: int) -> Iterator[dict]:
    """A running stack of ``runtime`` for a test module: ``native_stack`` on the spec's ports
    shifted by ``port_offset``, or the rendered compose stack through testcontainers (skipped,
    with the reason, where no Docker engine answers). Yields at least ``runtime`` and ``spec``."""
    if runtime == "native":
        for info in native_stack(tmp_path_factory.mktemp(name), port_offset):
            yield {**info, "runtime": "native"}
        return
    if not engine_answers():
        pytest.skip(SKIPPED_WITHOUT_ENGINE)
    with compose_stack(tmp_path_factory.mktemp(f"{name}-compose")) as info:
        yield info
