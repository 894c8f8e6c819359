"""Build a real Kubernetes control plane for the chart's install tests.

``versions.yaml``'s ``kubernetes:`` block pins etcd, the control plane (kube-apiserver,
kube-controller-manager, kube-scheduler from ``k8s.io/kubernetes``) and kwok (fake nodes).
``tools.py`` builds them beside the other tools and caches them the same way; this module only
knows what is special about them:

- ``k8s.io/kubernetes`` points its ``k8s.io/*`` staging modules at ``./staging/src``, which its
  module zip leaves out: the writable copy drops those replaces and requires the published
  staging modules at the matching ``v0.<minor>.<patch>`` instead. The version goes in through
  ``-X`` linker flags (``/version`` answers it; Helm checks charts' ``kubeVersion`` against it).
- etcd's server module has no ``main`` package of its own: a two-line one calls
  ``etcdmain.Main``.
- kwok builds like any other tool.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import yaml

from . import tools
from .paths import repo_root
from .versions import Component

CONTROL_PLANE = "kubernetes"
ETCD = "etcd"
VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
"""The packages whose ``gitVersion``/``gitMajor``/``gitMinor`` the Kubernetes build stamps."""


def components(path: Path | None = None) -> list[Component]:
    """The ``kubernetes:`` block of versions.yaml as components (none if the block is absent)."""
    raw = yaml.safe_load((path or repo_root() / "versions.yaml").read_text())
    block = raw.get("kubernetes") or {}
    return [Component(name=name, **{k: str(v) if k == "version" else v for k, v in spec.items()})
            for name, spec in block.items()]


def builds(component: Component) -> bool:
    """True for the components this module builds itself (kwok goes the usual way)."""
    return component.name in (CONTROL_PLANE, ETCD) and component in components()


def staging_version(component: Component) -> str:
    """``1.34.2`` → ``v0.34.2``: the tag of the published ``k8s.io/*`` staging modules."""
    _major, minor, patch = component.version.split(".")
    return f"v0.{minor}.{patch}"


def version_ldflags(component: Component) -> str:
    """``-X`` flags that make the binaries report their release (``kubectl version``, Helm)."""
    major, minor, _patch = component.version.split(".")
    values = {"gitVersion": f"v{component.version}", "gitMajor": major, "gitMinor": minor,
              "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z"}
    return " ".join(f"-X {package}.{key}={value}"
                    for package in VERSION_PACKAGES for key, value in values.items())


def build(component: Component, dest: Path, beat: tools._Heartbeat,
          log: Path) -> None:
    """Build ``component`` (the control plane or etcd) into ``dest``."""
    if component.name == ETCD:
        _build_etcd(component, dest, beat, log)
    else:
        _build_control_plane(component, dest, beat, log)


def _build_control_plane(component: Component, dest: Path, beat: tools._Heartbeat,
          log: Path) -> None:
    env = tools._go_env()
    with tempfile.TemporaryDirectory(prefix="build-kubernetes-") as tmp:
        src = tools._module_source(component, Path(tmp), env)
        _require_published_staging(src, staging_version(component), env, beat, log)
        flags = ["-trimpath", "-ldflags", f"-s -w {version_ldflags(component)}"]
        tools._run_go(["go", "build", "-v", "-mod=mod", *flags, "-o", f"{dest}/",
                       *component.binaries.values()], src, env, beat, log)


def _require_published_staging(src: Path, version: str, env: dict[str, str],
                               beat: tools._Heartbeat, log: Path) -> None:
    mod = json.loads(subprocess.run(["go", "mod", "edit", "-json"], cwd=src, env=env,
                                    capture_output=True, text=True, check=True).stdout)
    staged = [req["Path"] for req in mod.get("Require") or []
              if req["Path"].startswith("k8s.io/") and req["Version"] == "v0.0.0"]
    edits = [f"-require={path}@{version}" for path in staged]
    edits += [f"-dropreplace={rep['Old']['Path']}" for rep in mod.get("Replace") or []
              if rep["New"]["Path"].startswith("./staging/")]
    tools._run_go(["go", "mod", "edit", *edits], src, env, beat, log)


def _build_etcd(component: Component, dest: Path, beat: tools._Heartbeat,
          log: Path) -> None:
    env = tools._go_env()
    ((binary, package),) = component.binaries.items()
    with tempfile.TemporaryDirectory(prefix="build-etcd-") as tmp:
        src = Path(tmp)
        (src / "go.mod").write_text("module theodore-obs/etcd\n\ngo 1.26\n")
        (src / "main.go").write_text(
            "// The etcd server: etcd's own entry point, built from its server module.\n"
            f'package main\n\nimport (\n\t"os"\n\n\t"{package}"\n)\n\n'
            "func main() { etcdmain.Main(os.Args) }\n")
        tools._run_go(["go", "get", f"{component.module}@{component.module_version}"],
                      src, env, beat, log)
        tools._run_go(["go", "build", "-v", "-mod=mod", "-trimpath", "-ldflags", "-s -w",
                       "-o", str(dest / binary), "."], src, env, beat, log)


__all__ = ["CONTROL_PLANE", "ETCD", "build", "builds", "components", "staging_version",
           "version_ldflags"]
