"""Nothing we build, run or ship links code under the AGPL (or SSPL/BUSL).

The pins in versions.yaml and the collector's builder manifest name no such module, and the
module list Go embeds in every built binary (``go version -m``) holds none either: a pinned
component cannot pull one in as a dependency unnoticed.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml
from theodore_obs.tools import buildable, tool_dir
from theodore_obs.versions import load_versions

from .conftest import ROOT

NOT_TO_USE = (
    "github.com/grafana/loki",
    "github.com/grafana/tempo",
    "github.com/grafana/mimir",
    "github.com/grafana/pyroscope",
    "github.com/grafana/grafana",
    "github.com/grafana/k6",
    "go.k6.io/k6",
)
"""Go modules under the AGPL: Loki, Tempo, Mimir, Pyroscope, Grafana's server, k6."""


def denied(module: str) -> bool:
    return any(module == root or module.startswith(root + "/") for root in NOT_TO_USE)


def test_the_deny_list_matches_major_versions_and_nothing_beside() -> None:
    assert denied("github.com/grafana/loki/v3") and denied("github.com/grafana/grafana")
    assert not denied("github.com/grafana/grafana-plugin-sdk-go")
    assert not denied("github.com/grafana/regexp")


def test_no_pin_names_an_agpl_module() -> None:
    pins = yaml.safe_load((ROOT / "versions.yaml").read_text())
    modules = [c.get("module") for c in pins["components"].values()]
    modules += [s["module"] for s in pins["schemas"].values()]
    assert [m for m in modules if m and denied(m)] == []
    manifest = yaml.safe_load((ROOT / "otel-collector" / "builder-config.yaml.j2").read_text()
                              .replace("{{", "").replace("}}", ""))
    gomods = [entry["gomod"].split()[0] for kind in ("receivers", "processors", "exporters",
                                                     "extensions", "connectors", "providers")
              for entry in manifest.get(kind) or []]
    assert gomods and [m for m in gomods if denied(m)] == []


@pytest.mark.parametrize("component", [c.name for c in buildable(load_versions())])
def test_no_built_binary_embeds_an_agpl_module(component: str) -> None:
    target = {t.name: t for t in buildable(load_versions())}[component]
    for binary in target.binaries:
        path = tool_dir(target) / binary
        assert path.is_file(), f"run `make tools` ({path} missing)"
        info = subprocess.run(["go", "version", "-m", str(path)], capture_output=True, text=True,
                              check=True).stdout
        modules = [line.split("\t")[2] for line in info.splitlines()
                   if line.startswith(("\tdep\t", "\tmod\t", "\t=>\t"))]
        assert modules, f"{path}: go version -m listed no modules"
        assert [m for m in modules if denied(m)] == [], path
