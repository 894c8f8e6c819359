"""Sampling profiles of running Python processes (py-spy): flame graph, speedscope, hotspots.

py-spy reads a process's Python stacks from outside (ptrace and /proc memory reads), so the
profiled service needs no code, restart or flag. :func:`record` asks it for collapsed stacks
aggregated by function; everything else here is plain data: a :class:`Profile` maps each
stack (root first) to its sample count, is written as a speedscope file and an SVG flame graph,
read back from a speedscope file, and compared with another profile by self time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::(?P<line>[0-9]+))?\)$")
"""A py-spy frame: ``function (file.py:12)``."""


class ProfileError(RuntimeError):
    """A process could not be profiled; ``code`` is the CLI's exit code for it."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Profile:
    """Stacks (root first, one frame a string) and how many samples each got."""

    stacks: Counter[tuple[str, ...]] = field(default_factory=Counter)
    name: str = "profile"

    @property
    def samples(self) -> int:
        return sum(self.stacks.values())

    def self_samples(self) -> Counter[str]:
        """Samples in which each function was the one running (the leaf)."""
        found: Counter[str] = Counter()
        for stack, count in self.stacks.items():
            found[stack[-1]] += count
        return found

    def total_samples(self) -> Counter[str]:
        """Samples in which each function was on the stack (itself or its callees running)."""
        found: Counter[str] = Counter()
        for stack, count in self.stacks.items():
            for frame in set(stack):
                found[frame] += count
        return found


def parse_collapsed(text: str, name: str = "profile") -> Profile:
    """py-spy's raw output (Brendan Gregg's collapsed stacks): ``a;b;c 12`` per line."""
    profile = Profile(name=name)
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            profile.stacks[tuple(stack.split(";"))] += int(count)
    return profile


def py_spy() -> str:
    """The py-spy beside this Python (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise ProfileError("py-spy is not installed (pip install 'theodore-observability[profile]')")
    return found


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (no such process, or a zombie waiting for its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(") ")[2][:1] in ("Z", "X")
    except OSError:
        return True


def check_process(pid: int) -> str:
    """The process's command name, or :class:`ProfileError` when it is not running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise ProfileError(f"process {pid} is not running") from None
    except PermissionError:
        pass  # it exists; py-spy says whether it may be traced
    if _gone(pid):
        raise ProfileError(f"process {pid} is not running (it has ended)")
    return _command_name(pid)


def _failure(pid: int, command: str, output: str) -> ProfileError:
    """What a failed py-spy run means, in one line."""
    lowered = output.lower()
    if "permission denied" in lowered or "operation not permitted" in lowered:
        return ProfileError(f"not permitted to trace process {pid} ({command}): run as its user or as root, "
                            "or grant CAP_SYS_PTRACE (in a container: --cap-add SYS_PTRACE)")
    if _gone(pid) or "check that the process is running" in lowered:
        return ProfileError(f"process {pid} ({command}) is gone: it ended before a sample was taken")
    if "python" in lowered and ("find" in lowered or "version" in lowered or "interpreter" in lowered):
        return ProfileError(f"process {pid} ({command}) is not a Python process: py-spy reads Python "
                            "stacks only (the Go components serve pprof instead)")
    first = next((line for line in output.splitlines() if line.strip()), "no output")
    return ProfileError(f"py-spy could not profile process {pid} ({command}): {first.strip()}")


def record(pid: int, seconds: int, rate: int = 100, idle: bool = False) -> Profile:
    """Sample ``pid`` for ``seconds`` at ``rate`` Hz; a :class:`Profile` of its Python stacks."""
    command = check_process(pid)
    with tempfile.TemporaryDirectory(prefix="theodore-profile-") as tmp:
        out = Path(tmp) / "stacks.txt"
        argv = [py_spy(), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(rate),
                "--format", "raw", "--function", "--output", str(out)] + (["--idle"] if idle else [])
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
        text = out.read_text() if out.exists() else ""
    if proc.returncode != 0 and not text:
        raise _failure(pid, command, proc.stderr + proc.stdout)
    profile = parse_collapsed(text, name=f"{command} (pid {pid})")
    if not profile.samples:
        raise ProfileError(f"process {pid} ({command}) gave no samples in {seconds}s: it was idle "
                           "(--idle counts waiting threads too)" if not _gone(pid)
                           else f"process {pid} ({command}) is gone: it ended before a sample was taken")
    return profile


# --- speedscope ---------------------------------------------------------------------------


def _frame_fields(frame: str) -> dict[str, Any]:
    match = FRAME.match(frame)
    if not match:
        return {"name": frame}
    fields: dict[str, Any] = {"name": match["name"], "file": match["file"]}
    if match["line"]:
        fields["line"] = int(match["line"])
    return fields


def _frame_text(fields: dict[str, Any]) -> str:
    if "file" not in fields:
        return str(fields["name"])
    line = f":{fields['line']}" if "line" in fields else ""
    return f"{fields['name']} ({fields['file']}{line})"


def to_speedscope(profile: Profile) -> dict[str, Any]:
    """The profile in speedscope's file format (one sampled profile, weights in samples)."""
    index: dict[str, int] = {}
    samples, weights = [], []
    for stack, count in sorted(profile.stacks.items()):
        samples.append([index.setdefault(frame, len(index)) for frame in stack])
        weights.append(count)
    return {"$schema": SPEEDSCOPE_SCHEMA, "exporter": "theodore-obs profile", "name": profile.name,
            "activeProfileIndex": 0, "shared": {"frames": [_frame_fields(f) for f in index]},
            "profiles": [{"type": "sampled", "name": profile.name, "unit": "none", "startValue": 0,
                          "endValue": profile.samples, "samples": samples, "weights": weights}]}


def read_profile(path: Path) -> Profile:
    """A profile written by :func:`to_speedscope` (or any sampled speedscope file, py-spy's too)."""
    try:
        data = json.loads(path.read_text())
        frames = [_frame_text(f) for f in data["shared"]["frames"]]
        profile = Profile(name=str(data.get("name", path.name)))
        for sampled in data["profiles"]:
            weights = sampled.get("weights") or [1] * len(sampled["samples"])
            for stack, weight in zip(sampled["samples"], weights, strict=True):
                profile.stacks[tuple(frames[i] for i in stack)] += weight
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror}", 2) from None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
        raise ProfileError(f"{path}: not a speedscope profile (expected a .speedscope.json file "
                           "written by `theodore-obs profile` or py-spy)", 2) from None
    if not profile.samples:
        raise ProfileError(f"{path}: the profile holds no samples", 2)
    return profile


# --- hotspots and comparison --------------------------------------------------------------


def top_functions(profile: Profile, limit: int = 15) -> list[dict[str, Any]]:
    """The functions with the most self time: share of samples running in them, and in them or
    their callees."""
    total, inclusive = profile.samples, profile.total_samples()
    return [{"function": frame, "self_samples": count, "self_share": count / total,
             "total_share": inclusive[frame] / total}
            for frame, count in profile.self_samples().most_common(limit)]


def compare(old: Profile, new: Profile, limit: int = 15) -> list[dict[str, Any]]:
    """Functions whose share of self time grew from ``old`` to ``new``, most grown first.

    Shares, not sample counts, so profiles of different lengths or rates compare."""
    before, after = old.self_samples(), new.self_samples()
    grown = []
    for frame in set(before) | set(after):
        was, now = before[frame] / old.samples, after[frame] / new.samples
        if now > was:
            grown.append({"function": frame, "old_share": was, "new_share": now, "growth": now - was})
    return sorted(grown, key=lambda g: (-g["growth"], g["function"]))[:limit]


# --- flame graph --------------------------------------------------------------------------

WIDTH, ROW, FONT = 1200, 17, 12


@dataclass
class _Node:
    frame: str
    value: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(profile: Profile) -> _Node:
    root = _Node("all")
    for stack, count in profile.stacks.items():
        root.value += count
        node = root
        for frame in stack:
            node = node.children.setdefault(frame, _Node(frame))
            node.value += count
    return root


def _colour(frame: str) -> str:
    """A warm colour fixed per function, so two flame graphs colour a function alike."""
    digest = hashlib.sha256(frame.encode()).digest()
    return f"rgb({205 + digest[0] % 50},{80 + digest[1] % 120},{digest[2] % 60})"


def _boxes(node: _Node, x: float, depth: int, scale: float, total: int, out: list[str]) -> int:
    """SVG of ``node`` and its children; returns the depth reached."""
    width = node.value * scale
    if width < 0.3:
        return depth
    label = f"{node.frame} ({node.value} samples, {100 * node.value / total:.2f}%)"
    chars = int((width - 6) / (FONT * 0.6))
    text = node.frame if len(node.frame) <= chars else node.frame[:max(chars - 2, 0)] + ".."
    out.append(f'<g><title>{escape(label)}</title><rect x="{x:.2f}" y="{depth * ROW}" width="{width:.2f}" '
               f'height="{ROW - 1}" fill="{_colour(node.frame)}" rx="2"/>'
               + (f'<text x="{x + 3:.2f}" y="{depth * ROW + ROW - 5}">{escape(text)}</text>'
                  if chars >= 3 else "") + "</g>")
    deepest = depth
    for child in sorted(node.children.values(), key=lambda c: c.frame):
        deepest = max(deepest, _boxes(child, x, depth + 1, scale, total, out))
        x += child.value * scale
    return deepest


def flame_graph_svg(profile: Profile, title: str) -> str:
    """An icicle flame graph (callers above callees), widths by samples; hover shows each share."""
    root = _tree(profile)
    boxes: list[str] = []
    depth = _boxes(root, 0.0, 1, WIDTH / root.value, root.value, boxes)
    height = (depth + 2) * ROW
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
            f'font-family="monospace" font-size="{FONT}">\n'
            f'<text x="{WIDTH / 2}" y="{ROW - 4}" text-anchor="middle" font-size="{FONT + 2}" '
            f"aria-label={quoteattr(title)}>{escape(title)}</text>\n" + "\n".join(boxes) + "\n</svg>\n")


__all__ = ["Profile", "ProfileError", "check_process", "compare", "flame_graph_svg", "parse_collapsed",
           "py_spy", "read_profile", "record", "to_speedscope", "top_functions"]
