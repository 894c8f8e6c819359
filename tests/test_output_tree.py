"""Render writes only what it owns: the manifest in the output root says what that is."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from theodore_obs.output_tree import MANIFEST, OutputError, write_environments

from .conftest import ROOT, run_cli


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _checkout_like(root: Path) -> dict[str, str]:
    """A folder holding someone's work beside where render writes."""
    for relative, text in {"glue/app.py": "print(1)\n", "helm/values.yaml": "a: 1\n",
                           "tests/test_x.py": "x = 1\n", "notes.txt": "mine\n"}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return _tree(root)


def test_render_into_a_folder_of_other_work_leaves_that_work_alone(tmp_path) -> None:
    before = _checkout_like(tmp_path)
    result = run_cli("render", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    after = _tree(tmp_path)
    assert {k: after.get(k) for k in before} == before
    assert json.loads((tmp_path / MANIFEST).read_text())["environments"].keys() == {"local", "prod", "staging"}
    again = run_cli("render", "--out", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert {k: _tree(tmp_path).get(k) for k in before} == before


def test_a_spec_without_environments_is_an_error_not_a_wipe(tmp_path) -> None:
    out = tmp_path / "out"
    assert run_cli("render", "--out", str(out)).returncode == 0
    rendered = _tree(out)
    spec = (ROOT / "stack.yaml").read_text()
    for text in ("", spec[:spec.index("\nenvironments:")] + "\n"):
        (tmp_path / "stack.yaml").write_text(text)
        result = run_cli("render", "--spec", str(tmp_path / "stack.yaml"), "--out", str(out))
        assert result.returncode == 2, result.stderr
        assert _tree(out) == rendered


def test_a_folder_render_did_not_make_is_refused_before_anything_is_written(tmp_path) -> None:
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "compose.yaml").write_text("mine\n")
    result = run_cli("render", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "was not made by" in result.stderr and "Traceback" not in result.stderr
    assert _tree(tmp_path) == {"local/compose.yaml": "mine\n"}


def test_someone_elses_file_inside_an_environment_is_kept_and_never_overwritten(tmp_path) -> None:
    assert run_cli("render", "--out", str(tmp_path)).returncode == 0
    (tmp_path / "local" / "my-notes.md").write_text("keep me\n")
    assert run_cli("render", "--out", str(tmp_path)).returncode == 0
    assert (tmp_path / "local" / "my-notes.md").read_text() == "keep me\n"
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["environments"]["local"].remove("compose.yaml")
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    (tmp_path / "local" / "compose.yaml").write_text("now mine\n")
    result = run_cli("render", "--out", str(tmp_path))
    assert result.returncode == 2 and "compose.yaml was not made by render" in result.stderr
    assert (tmp_path / "local" / "compose.yaml").read_text() == "now mine\n"


def test_an_environment_dropped_from_the_spec_loses_only_its_rendered_files(tmp_path) -> None:
    write_environments({"old": {"a.yml": "1", "sub/b.yml": "2"}, "kept": {"c.yml": "3"}}, tmp_path, prune=True)
    (tmp_path / "old" / "sub" / "mine.txt").write_text("mine")
    done = write_environments({"kept": {"c.yml": "4"}}, tmp_path, prune=True)
    assert _tree(tmp_path / "old") == {"sub/mine.txt": "mine"}
    assert any("kept" in line and "old" in line for line in done)
    (tmp_path / "old" / "sub" / "mine.txt").unlink()
    write_environments({"old": {"a.yml": "1"}}, tmp_path, prune=False)
    write_environments({"kept": {"c.yml": "5"}}, tmp_path, prune=True)
    assert not (tmp_path / "old").exists()
    assert _tree(tmp_path / "kept") == {"c.yml": "5"}


def test_rendering_one_environment_keeps_the_others(tmp_path) -> None:
    write_environments({"a": {"x.yml": "1"}, "b": {"y.yml": "2"}}, tmp_path, prune=True)
    write_environments({"a": {"x.yml": "3"}}, tmp_path, prune=False)
    assert _tree(tmp_path / "b") == {"y.yml": "2"}


@pytest.mark.parametrize("attempt", [1, 2])
def test_a_symlinked_output_folder_is_refused_on_every_run(tmp_path, attempt) -> None:
    target = tmp_path / "real"
    target.mkdir()
    if attempt == 2:  # a folder render made earlier, later replaced by a link to it
        write_environments({"local": {"x.yml": "1"}}, target, prune=True)
    (tmp_path / "link").symlink_to(target)
    before = _tree(target)
    result = run_cli("render", "--out", str(tmp_path / "link"))
    assert result.returncode == 2 and "symbolic link" in result.stderr
    assert _tree(target) == before


def test_a_symlinked_environment_folder_is_refused(tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("p")
    out = tmp_path / "out"
    write_environments({"local": {"x.yml": "1"}}, out, prune=True)
    os.rename(out / "local", tmp_path / "moved")
    (out / "local").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="link"):
        write_environments({"local": {"x.yml": "2"}}, out, prune=True)
    assert _tree(elsewhere) == {"precious": "p"}


def test_an_output_that_is_a_file_or_cannot_be_created_exits_2(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    result = run_cli("render", "--out", str(tmp_path / "file"))
    assert result.returncode == 2 and "not a folder" in result.stderr
    result = run_cli("render", "--out", str(tmp_path / "file" / "out"))  # under a file: even root fails
    assert result.returncode == 2 and "cannot create" in result.stderr
    assert "Traceback" not in result.stderr and (tmp_path / "file").read_text() == "x"


def test_a_forged_manifest_is_refused(tmp_path) -> None:
    (tmp_path / MANIFEST).write_text('{"environments": {"glue": ["x"]}}')
    (tmp_path / "glue").mkdir()
    (tmp_path / "glue" / "app.py").write_text("print(1)\n")
    with pytest.raises(OutputError, match="not a manifest render wrote"):
        write_environments({"local": {"a.yml": "1"}}, tmp_path, prune=True)
    assert (tmp_path / "glue" / "app.py").exists()
