"""The rendered compose stack (``rendered/<env>/compose.yaml``, official images) through
testcontainers' ``DockerCompose``, for the end-to-end tests that also run on the native stack.

Where no Docker engine with the compose plugin answers, ``engine_answers`` is False and the
tests skip with ``SKIPPED_WITHOUT_ENGINE``. The compose stack publishes the spec's own ports on
127.0.0.1, so the tests reach it at the same addresses as a native stack on unshifted ports;
inside it, components reach each other by their service names (``Component.host``). One
compose stack runs at a time: a test module holds ``LOCK`` while its stack is up, and another
worker's module waits for it.
"""

from __future__ import annotations

import fcntl
import functools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from theodore_obs.paths import repo_root

SKIPPED_WITHOUT_ENGINE = "no Docker engine with the compose plugin answers here"

REQUIRED_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*):\?")
"""``${NAME:?message}``: a variable ``docker compose`` refuses to start without."""


LOCK = Path(tempfile.gettempdir()) / "theodore-obs-compose-tests.lock"
"""Held (``flock``) while a test module's compose stack is up: they share the published ports."""


def placeholder_environment(compose_file: Path) -> dict[str, str]:
    """A test-only value for every variable the compose file requires and every secret it reads
    from the environment (URLs point at a closed loopback port): never a real secret."""
    text = compose_file.read_text()
    names = set(REQUIRED_VARIABLE.findall(text))
    names |= {secret["environment"] for secret in (yaml.safe_load(text).get("secrets") or {}).values()
              if "environment" in secret}
    return {name: f"http://127.0.0.1:9/{name.lower()}" if name.endswith("_URL") else f"test-only-{name.lower()}"
            for name in sorted(names)}


@functools.cache
def engine_answers() -> bool:
    """A Docker engine answers ``docker info`` and its compose plugin ``docker compose version``
    (asked once per test process)."""
    if shutil.which("docker") is None:
        return False
    checks = (["docker", "info"], ["docker", "compose", "version"])
    return all(subprocess.run(command, capture_output=True, timeout=20, check=False).returncode == 0
               for command in checks)


@contextmanager
def compose_stack(workdir: Path, environment: str = "local") -> Iterator[dict[str, Any]]:
    """``docker compose up --wait`` on the rendered file, through testcontainers; yields the spec
    the file was rendered from and the runtime's name, then ``down --volumes``."""
    from testcontainers.compose import DockerCompose  # only where an engine answers

    root = repo_root()
    rendered = root / "rendered" / environment
    env_file = workdir / "compose.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{name}={value}\n"
                                for name, value in placeholder_environment(rendered / "compose.yaml").items()))
    compose = DockerCompose(context=str(rendered), compose_file_name="compose.yaml", wait=True,
                            env_file=str(env_file))
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with compose:
            yield {"runtime": "compose", "spec": yaml.safe_load((root / "stack.yaml").read_text()),
                   "compose": compose}
