"""The Helm chart (helm/theodore-observability) checked the way CI checks it.

``helm lint --strict`` with the environment selected, then every manifest ``helm template``
renders validated strictly against the pinned Kubernetes API schemas (see ``kubeschema``).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .kubeschema import KUBERNETES_SCHEMAS, validator_for
from .paths import repo_root
from .tools import ToolError, binary_path

CHART_NAME = "theodore-observability"


def chart_dir() -> Path:
    return repo_root() / "helm" / CHART_NAME


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="helm-") as home:
        env = {"HOME": home, "HELM_CONFIG_HOME": home, "HELM_CACHE_HOME": home, "HELM_DATA_HOME": home,
               "PATH": "/usr/bin:/bin"}
        return subprocess.run([str(binary_path("helm")), *args], capture_output=True, text=True,
                              timeout=120, check=False, env=env)


def chart_problems(environment: str) -> list[str]:
    """What is wrong with the chart for one rendered environment ([] when nothing is)."""
    values = ["--set", f"environment={environment}"]
    try:
        lint = _helm("lint", "--strict", str(chart_dir()), *values)
    except ToolError as exc:
        return [str(exc)]
    if lint.returncode != 0:
        return [f"helm lint --strict: {lint.stdout}{lint.stderr}"]
    rendered = _helm("template", CHART_NAME, str(chart_dir()), *values)
    if rendered.returncode != 0:
        return [f"helm template: {rendered.stderr}"]
    manifests: list[dict[str, Any]] = [m for m in yaml.safe_load_all(rendered.stdout) if m]
    try:
        validators = {version: validator_for(version) for version in KUBERNETES_SCHEMAS}
    except ToolError as exc:
        return [f"Kubernetes API schemas: {exc}"]
    return [f"kubernetes {version.split('-')[-1]}: {error}" for version, validator in validators.items()
            for manifest in manifests for error in validator.errors(manifest)]
