"""The tool cache: one directory per pinned version, clear errors for what is missing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from theodore_obs.tools import ToolError, binary_path, buildable, is_built, tool_dir
from theodore_obs.versions import load_versions


def test_every_native_component_is_pinned_with_a_module_and_an_image() -> None:
    components = load_versions()
    for name in ["prometheus", "alertmanager", "victorialogs", "vmalert", "jaeger", "otelcol",
                 "blackbox_exporter"]:
        component = components[name]
        assert component.module and component.module_version and component.binaries, name
        assert component.image and component.image_tag, name
    assert components["helm"].module == "helm.sh/helm/v4"


def test_cache_dir_is_keyed_by_version_and_recipe(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THEODORE_OBS_CACHE", str(tmp_path))
    prometheus = load_versions()["prometheus"]
    assert tool_dir(prometheus).parent == tmp_path / "tools"
    assert tool_dir(prometheus).name.startswith("prometheus-3.16.0-")
    retagged = dataclasses.replace(prometheus, build_tags="remove_all_sd")
    assert tool_dir(retagged) != tool_dir(prometheus)
    assert tool_dir(dataclasses.replace(prometheus, image="other:tag")) == tool_dir(prometheus)


def test_missing_binary_names_the_fix(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THEODORE_OBS_CACHE", str(tmp_path))
    with pytest.raises(ToolError, match=r"promtool 3\.16\.0 is not built yet: run `make tools`"):
        binary_path("promtool")
    with pytest.raises(ToolError, match="no component in versions.yaml provides a binary named 'kubectl'"):
        binary_path("kubectl")


def test_a_build_without_its_marker_does_not_count(monkeypatch, tmp_path: Path) -> None:
    """An interrupted build (binaries but no completion marker) is rebuilt, not trusted."""
    monkeypatch.setenv("THEODORE_OBS_CACHE", str(tmp_path))
    blackbox = load_versions()["blackbox_exporter"]
    tool_dir(blackbox).mkdir(parents=True)
    (tool_dir(blackbox) / "blackbox_exporter").write_text("partial")
    assert not is_built(blackbox)


def test_all_pinned_tools_are_built() -> None:
    """`make tools` ran: every buildable component is complete in the cache."""
    missing = [c.name for c in buildable(load_versions()) if not is_built(c)]
    assert not missing, f"run `make tools` (missing: {missing})"
