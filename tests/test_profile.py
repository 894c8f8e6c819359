"""`theodore-obs profile`: py-spy against a real Python process the test starts, the files it
writes, --compare, and the errors (gone, not Python, not permitted, bad files)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from theodore_obs import profiling

from .conftest import run_cli

BUSY = """
import sys, time
from pathlib import Path

def spin_a():
    total = 0
    for i in range(20000):
        total += i * i
    return total

def spin_b():
    total = 0
    for i in range(20000):
        total += i * i
    return total

flag = Path(sys.argv[1])
while True:
    spin_b() if flag.exists() else spin_a()
"""
"""A busy loop in spin_a, or in spin_b once the flag file exists."""


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    script, flag = tmp_path / "busy.py", tmp_path / "switch"
    script.write_text(BUSY)
    proc = subprocess.Popen([sys.executable, str(script), str(flag)])
    time.sleep(0.5)
    try:
        yield proc.pid, flag
    finally:
        proc.kill()
        proc.wait()


def profile(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("profile", *args, "--format", "json", timeout=120)


def test_a_busy_process_gives_a_flame_graph_a_speedscope_file_and_its_hotspot(
        busy: tuple[int, Path], tmp_path: Path) -> None:
    pid, _ = busy
    result = profile("--pid", str(pid), "--seconds", "2", "--out", str(tmp_path / "one"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["samples"] >= 100
    assert report["top"][0]["function"].startswith("spin_a ")
    assert sum(row["self_share"] for row in report["top"]) == pytest.approx(1.0)
    svg = (tmp_path / "one.svg").read_text()
    assert svg.startswith("<?xml") and "spin_a" in svg and "<title>" in svg
    written = profiling.read_profile(tmp_path / "one.speedscope.json")
    assert written.samples == report["samples"]
    speedscope = json.loads((tmp_path / "one.speedscope.json").read_text())
    assert speedscope["profiles"][0]["type"] == "sampled"


def test_compare_shows_the_function_that_grew(busy: tuple[int, Path], tmp_path: Path) -> None:
    pid, flag = busy
    assert profile("--pid", str(pid), "--seconds", "2", "--out", str(tmp_path / "old")).returncode == 0
    flag.touch()
    result = profile("--pid", str(pid), "--seconds", "2", "--out", str(tmp_path / "new"),
                     "--compare", str(tmp_path / "old.speedscope.json"))
    assert result.returncode == 0, result.stderr
    grown = json.loads(result.stdout)["grown"]
    assert grown[0]["function"].startswith("spin_b ")
    assert grown[0]["old_share"] < 0.05 and grown[0]["new_share"] > 0.5
    assert not any(g["function"].startswith("spin_a ") for g in grown)


def test_the_text_report_names_the_hotspot_and_the_files(busy: tuple[int, Path], tmp_path: Path) -> None:
    pid, _ = busy
    result = run_cli("profile", "--pid", str(pid), "--seconds", "1", "--out", str(tmp_path / "t"))
    assert result.returncode == 0, result.stderr
    assert "spin_a" in result.stdout and f"{tmp_path / 't'}.svg" in result.stdout


def one_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr


def test_a_process_that_is_gone_is_one_line_exit_1(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    one_error(profile("--pid", str(proc.pid), "--seconds", "1", "--out", str(tmp_path / "x")), 1,
              "is not running")


def test_a_process_that_is_not_python_is_one_line_exit_1(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        one_error(profile("--pid", str(proc.pid), "--seconds", "1", "--out", str(tmp_path / "x")), 1,
                  "is not a Python process")
    finally:
        proc.kill()
        proc.wait()


def test_a_process_that_ends_while_sampled_keeps_what_was_sampled(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 4: pass"])
    started = time.monotonic()
    result = profile("--pid", str(proc.pid), "--seconds", "20", "--out", str(tmp_path / "x"))
    proc.wait()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["samples"] > 0
    assert time.monotonic() - started < 15


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process another user may not trace")
def test_a_process_that_may_not_be_traced_is_one_line_exit_1(busy: tuple[int, Path], tmp_path: Path) -> None:
    pid, _ = busy
    out = Path(tempfile.mkdtemp(prefix="theodore-profile-test-"))
    out.chmod(0o777)
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             sys.executable, "-m", "theodore_obs", "profile", "--pid", str(pid),
                             "--seconds", "1", "--out", str(out / "x")], cwd=out,
                            capture_output=True, text=True, timeout=60, check=False)
    shutil.rmtree(out)
    one_error(result, 1, "not permitted to trace")


def test_compare_with_a_file_that_is_not_a_profile_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"profiles": 5}')
    one_error(profile("--pid", "1", "--compare", str(tmp_path / "bad.json")), 2, "not a speedscope profile")
    one_error(profile("--pid", "1", "--compare", str(tmp_path / "missing.json")), 2, "cannot read")


def test_collapsed_stacks_round_trip_through_speedscope(tmp_path: Path) -> None:
    """py-spy's raw lines → Profile → speedscope file → the same Profile."""
    original = profiling.parse_collapsed("<module> (a.py:1);f (a.py:3);g (b.py:9) 7\n<module> (a.py:1);f (a.py:3) 3\n")
    (tmp_path / "p.json").write_text(json.dumps(profiling.to_speedscope(original)))
    assert profiling.read_profile(tmp_path / "p.json").stacks == original.stacks
    assert profiling.top_functions(original)[0] == {"function": "g (b.py:9)", "self_samples": 7,
                                                   "self_share": 0.7, "total_share": 0.7}


def test_the_flame_graph_escapes_function_names() -> None:
    svg = profiling.flame_graph_svg(profiling.parse_collapsed('<lambda> (x.py:1);a"&<b> (y.py:2) 5\n'), "t<")
    assert "<lambda>" not in svg and "&lt;lambda&gt;" in svg and "t&lt;" in svg
