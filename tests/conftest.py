"""Shared fixtures: the repository, the CLI as a subprocess, specs written for a test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m theodore_obs ARGS`` the way a user runs ``theodore-obs``."""
    return subprocess.run([sys.executable, "-m", "theodore_obs", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
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


def shifted_stack(offset: int) -> dict:
    """The spec with every port (components, demo service, its upstreams) moved by ``offset``."""
    spec = load_stack()
    spec["ports"] = {name: port + offset for name, port in spec["ports"].items()}
    spec["services"]["theodore-demo"]["port"] += offset
    spec["demo"]["upstream_port"] += offset
    return spec
