"""The compose stack on a Docker engine: skipped, with the reason, where none answers.

The native-runtime tests (test_native.py) make the same assertions against the same
rendered configs, so nothing here is covered only by a skipped test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request

import pytest

from .conftest import ROOT


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20,
                             check=False)
    return info.returncode == 0 and compose.returncode == 0


pytestmark = pytest.mark.skipif(not _engine_answers(),
                                reason="no Docker engine with the compose plugin answers here")


@pytest.fixture(scope="module")
def compose_stack():
    compose = ["docker", "compose", "-f", str(ROOT / "rendered/local/compose.yaml")]
    env = {**os.environ, "GF_SECURITY_ADMIN_PASSWORD": "test-only-password",
           "AUDIT_READER_TOKEN": "test-only-audit-reader-token"}
    up = subprocess.run([*compose, "up", "-d", "--wait"], env=env, capture_output=True, text=True,
                        timeout=600, check=False)
    try:
        yield up
    finally:
        subprocess.run([*compose, "down", "-v"], env=env, capture_output=True, timeout=300, check=False)


def test_compose_stack_becomes_healthy(compose_stack) -> None:
    assert compose_stack.returncode == 0, compose_stack.stderr


@pytest.mark.parametrize(("port", "path"), [(9090, "/-/ready"), (9093, "/-/ready"), (9428, "/health"),
                                            (16686, "/api/services"), (13133, "/"), (9115, "/-/healthy"),
                                            (3000, "/api/health"), (8000, "/readyz"),
                                            (9429, "/health"), (8427, "/health")])
def test_compose_component_answers(compose_stack, port: int, path: str) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.status == 200
        if path == "/api/health":
            assert json.loads(response.read())["database"] == "ok"
