"""Where things live: the repository, the rendered output, the per-version tool cache."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "THEODORE_OBS_CACHE"
"""Overrides the cache root (default ``~/.cache/theodore-obs``); tools are kept per version."""

STATE_ENV = "THEODORE_OBS_STATE"
"""Overrides the native runtime's state directory (data, logs, pid files)."""


def repo_root() -> Path:
    """The checkout holding ``stack.yaml`` (the package is used from its source tree)."""
    env = os.environ.get("THEODORE_OBS_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "stack.yaml").is_file() and (parent / "versions.yaml").is_file():
            return parent
    return Path.cwd()


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "theodore-obs")


def state_root() -> Path:
    return Path(os.environ.get(STATE_ENV) or cache_root() / "state")


def rendered_root() -> Path:
    return repo_root() / "rendered"
