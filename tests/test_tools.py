"""The tool cache: one directory per pinned version, clear errors for what is missing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from theodore_obs import tools
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


def _script(path: Path, body: str) -> list[str]:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return [str(path)]


def test_a_checksum_lookup_answered_404_is_tried_again(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(tools.time, "sleep", lambda _s: None)
    counter, log = tmp_path / "tries", tmp_path / "build.log"
    lookup = ("go: example.com/m@v1.0.0: verifying go.mod: reading https://proxy.golang.org/sumdb/"
              "sum.golang.org/lookup/example.com/m@v1.0.0: 404 Not Found")
    cmd = _script(tmp_path / "go", f'echo x >> {counter}\n'
                  f'[ "$(wc -l < {counter})" -ge 3 ] && exit 0\necho "{lookup}"\nexit 1\n')
    with tools._Heartbeat("demo", every=3600) as beat:
        tools._run_go(cmd, tmp_path, {}, beat, log)
    assert counter.read_text().count("x") == 3
    assert "checksum database answered 404 for example.com/m@v1.0.0; trying again (3/6)" in capsys.readouterr().out


def test_any_other_go_failure_is_not_tried_again(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tools.time, "sleep", lambda _s: None)
    counter = tmp_path / "tries"
    cmd = _script(tmp_path / "go", f'echo x >> {counter}\necho "main.go:3: undefined: foo"\nexit 1\n')
    with tools._Heartbeat("demo", every=3600) as beat, pytest.raises(ToolError, match="undefined: foo"):
        tools._run_go(cmd, tmp_path, {}, beat, tmp_path / "build.log")
    assert counter.read_text().count("x") == 1
