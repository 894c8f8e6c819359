"""Running the pinned Helm over the chart, and reading what its pods would see."""

from __future__ import annotations

import os
import posixpath
import subprocess
from pathlib import Path
from typing import Any

import yaml
from theodore_obs.tools import binary_path

from .conftest import ROOT

CHART = ROOT / "helm" / "theodore-observability"
PROFILES = ["default", *sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))]

#: APIs a cluster with the Prometheus and OpenTelemetry operators serves (CI's `--api-versions`).
OPERATOR_APIS = ["monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PodMonitor",
                 "opentelemetry.io/v1alpha1/Instrumentation"]

#: Each chart workload and the compose service whose mounts and command it takes.
WORKLOADS = {
    ("StatefulSet", "otel-collector-gateway"): "otel-collector",
    ("StatefulSet", "prometheus"): "prometheus",
    ("StatefulSet", "alertmanager"): "alertmanager",
    ("StatefulSet", "victorialogs"): "victorialogs",
    ("StatefulSet", "victorialogs-audit"): "victorialogs-audit",
    ("Deployment", "vmauth"): "vmauth",
    ("Deployment", "vmalert"): "vmalert",
    ("StatefulSet", "jaeger"): "jaeger",
    ("Deployment", "grafana"): "grafana",
    ("Deployment", "blackbox"): "blackbox",
}

#: Files only the chart mounts (compose and the native runtime have no use for them).
KUBERNETES_ONLY = {("DaemonSet", "otel-collector-agent"): {"otel-collector/agent.yaml": "/etc/otelcol/agent.yaml"},
                   ("StatefulSet", "prometheus"): {"prometheus/kubernetes": "/etc/prometheus/kubernetes"}}


def helm(*args: str, tmp: Path, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The pinned helm, with its config and cache kept in ``tmp`` (and a cluster's kubeconfig)."""
    env = {**os.environ, "HELM_CONFIG_HOME": str(tmp / "config"), "HELM_CACHE_HOME": str(tmp / "cache"),
           "HELM_DATA_HOME": str(tmp / "data")}
    if kubeconfig:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run([str(binary_path("helm")), *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def profile_args(profile: str) -> list[str]:
    return [] if profile == "default" else ["-f", str(CHART / "ci" / f"{profile}-values.yaml")]


def template(tmp: Path, *args: str, chart: Path = CHART, apis: bool = True) -> list[dict[str, Any]]:
    """The manifests ``helm template`` renders (release ``obs`` in namespace ``observability``)."""
    extra = [a for api in OPERATOR_APIS for a in ("--api-versions", api)] if apis else []
    result = helm("template", "obs", str(chart), "--namespace", "observability", *extra, *args, tmp=tmp)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def mounted_files(manifests: list[dict[str, Any]], workload: tuple[str, str]) -> dict[str, str]:
    """Container path → content of every ConfigMap file the workload's first container sees."""
    maps = {m["metadata"]["name"]: m.get("data", {}) for m in manifests if m["kind"] == "ConfigMap"}
    spec = pod_spec(by_kind(manifests)[workload])
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    files: dict[str, str] = {}
    for mount in spec["containers"][0].get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})  # absent: a StatefulSet's volumeClaimTemplate
        if "configMap" not in volume:
            continue
        data = maps[volume["configMap"]["name"]]
        items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            if "subPath" in mount:
                if item["path"] == mount["subPath"]:
                    files[mount["mountPath"]] = data[item["key"]]
            else:
                files[posixpath.join(mount["mountPath"], item["path"])] = data[item["key"]]
    return files


def compose_bind_mounts(env: str, service: str) -> list[tuple[str, str]]:
    """(source relative to rendered/<env>/, container target) of a compose service's bind mounts."""
    compose = yaml.safe_load((ROOT / "rendered" / env / "compose.yaml").read_text())
    mounts = []
    for volume in compose["services"][service].get("volumes", []):
        if volume.startswith("./"):
            source, target = volume.split(":")[:2]
            mounts.append((source.removeprefix("./"), target))
    return mounts


def expected_files(env: str, mounts: list[tuple[str, str]]) -> dict[str, str]:
    """Container path → rendered file content for bind mounts ``(source, target)``."""
    base = ROOT / "rendered" / env
    files = {}
    for source, target in mounts:
        path = base / source
        if path.is_file():
            files[target] = path.read_text()
        else:
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                files[posixpath.join(target, file.relative_to(path).as_posix())] = file.read_text()
    return files
