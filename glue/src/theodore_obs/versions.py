"""The pin file ``versions.yaml``: one version per component for tools, compose and Helm."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .paths import repo_root


@dataclass(frozen=True)
class Component:
    """One pinned component: its release, its container image and how to build it natively."""

    name: str
    version: str
    image: str | None = None
    module: str | None = None
    module_version: str | None = None
    binaries: dict[str, str] = field(default_factory=dict)
    version_var: str | None = None
    build_tags: str | None = None
    embed_placeholders: list[str] = field(default_factory=list)
    builder_manifest: str | None = None

    @property
    def image_tag(self) -> str | None:
        return self.image.rsplit(":", 1)[1] if self.image else None


def load_versions(path: Path | None = None) -> dict[str, Component]:
    path = path or repo_root() / "versions.yaml"
    raw = yaml.safe_load(path.read_text())
    return {name: Component(name=name, **{k: str(v) if k == "version" else v for k, v in spec.items()})
            for name, spec in raw["components"].items()}


def grafana_plugins(path: Path | None = None) -> list[str]:
    """The Grafana plugins to install, as ``id@version`` (Grafana's preinstall syntax)."""
    path = path or repo_root() / "versions.yaml"
    raw = yaml.safe_load(path.read_text())
    return [f"{plugin}@{version}" for plugin, version in (raw.get("grafana_plugins") or {}).items()]
