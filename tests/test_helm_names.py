"""Every name the chart renders meets the rule of the field it lands in, for every profile.

The Kubernetes API server enforces these (the offline schemas cannot): object names are DNS-1123
subdomains, Services DNS-1035 labels, volume and container names DNS-1123 labels, port names
IANA service names (at most 15 characters, a letter among them), label values at most 63
characters. A volume cannot simply take its ConfigMap's name (`config-otel-collector-agent.yaml`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helm_support import PROFILES, profile_args, template

SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
PORT_NAME = re.compile(r"(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _pod_spec(manifest: dict[str, Any]) -> dict[str, Any] | None:
    spec = manifest.get("spec", {})
    if manifest["kind"] == "Pod":
        return spec
    return spec.get("template", {}).get("spec") if isinstance(spec, dict) else None


def _names(manifest: dict[str, Any]) -> Iterator[tuple[str, str, re.Pattern[str], int]]:
    """(where, name, rule, max length) of every name in ``manifest`` that the API checks."""
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    rule, longest = {"Service": (DNS1035, 63), "Namespace": (LABEL, 63),
                     # its pods' controller-revision-hash label is the name plus 11 characters
                     "StatefulSet": (LABEL, 52)}.get(kind, (SUBDOMAIN, 253))
    yield f"{kind}/{name}", name, rule, longest
    for claim in (manifest.get("spec") or {}).get("volumeClaimTemplates", []) if kind == "StatefulSet" else []:
        # the claim of pod <name>-<ordinal> is <claim>-<name>-<ordinal>, an object name
        yield f"{kind}/{name} claim", f"{claim['metadata']['name']}-{name}-99", SUBDOMAIN, 253
    for key, value in (manifest["metadata"].get("labels") or {}).items():
        yield f"{kind}/{name} label {key}", str(value), LABEL_VALUE, 63
    pod = _pod_spec(manifest)
    if pod:
        for volume in pod.get("volumes", []):
            yield f"{kind}/{name} volume", volume["name"], LABEL, 63
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            yield f"{kind}/{name} container", container["name"], LABEL, 63
            for mount in container.get("volumeMounts", []):
                yield f"{kind}/{name} volumeMount", mount["name"], LABEL, 63
            for port in container.get("ports", []):
                if "name" in port:
                    yield f"{kind}/{name} port", port["name"], PORT_NAME, 15
    if kind == "Service":
        for port in manifest["spec"].get("ports", []):
            if "name" in port:
                yield f"{kind}/{name} port", port["name"], PORT_NAME, 15


#: The agent in a namespace of its own (a Namespace object, Services and ConfigMaps there).
AGENT_NAMESPACE = ["--set", "collector.agent.namespace.name=otel-agent", "--set", "collector.agent.namespace.create=true"]


@pytest.mark.parametrize("profile", [*PROFILES, "agent-namespace"])
def test_every_rendered_name_meets_the_rule_of_its_field(profile: str, tmp_path: Path) -> None:
    args = AGENT_NAMESPACE if profile == "agent-namespace" else profile_args(profile)
    broken = [(where, name) for manifest in template(tmp_path, *args)
              for where, name, rule, longest in _names(manifest)
              if len(name) > longest or not rule.fullmatch(name)]
    assert broken == []


@pytest.mark.parametrize("profile", PROFILES)
def test_every_volume_mount_names_a_volume_of_its_pod(profile: str, tmp_path: Path) -> None:
    for manifest in template(tmp_path, *profile_args(profile)):
        pod = _pod_spec(manifest)
        if not pod:
            continue
        volumes = {v["name"] for v in pod.get("volumes", [])}
        mounts = {m["name"] for c in pod.get("containers", []) for m in c.get("volumeMounts", [])}
        claims = {t["metadata"]["name"] for t in manifest["spec"].get("volumeClaimTemplates", [])}
        assert mounts <= volumes | claims, (manifest["metadata"]["name"], mounts - volumes - claims)
