"""``profile``: sample a running Python service with py-spy; flame graph, speedscope, hotspots."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import click

from .. import native, profiling
from ..paths import state_root
from ._common import (
    EXIT_BACKEND_DOWN,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    console,
    emit,
    fail,
    make_table,
    reports_errors,
)
from ._inputs import TEXT, write_json, write_text


def _native_pid(service: str) -> int:
    """The pid of ``service`` (a program of the native stack: the demo, its upstreams, …)."""
    state = native.State(state_root())
    if native.supervisord_pid(state) is None:
        fail(f"the native stack is not running (state {state.root}): start it with `theodore-obs up`, "
             "or give --pid", EXIT_BACKEND_DOWN)
    programs = {p["name"]: p for p in native.process_info(state)}
    if service not in programs:
        fail(f"no program {service!r} in the native stack (programs: {', '.join(sorted(programs))})",
             EXIT_BAD_INPUT)
    found = programs[service]
    if found["statename"] != "RUNNING" or not found["pid"]:
        fail(f"{service} is not running in the native stack ({found['statename']})", EXIT_FAILED)
    return int(found["pid"])


def _prefix(out: Path | None, target: str) -> Path:
    """Where the files go (PREFIX.svg, PREFIX.speedscope.json); exit 2 if the folder cannot take them."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    prefix = out or Path(f"profile-{re.sub(r'[^A-Za-z0-9_.-]', '_', target)}-{stamp}")
    folder = prefix.parent
    try:
        usable = folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
        is_folder = usable and prefix.is_dir()
    except OSError:
        usable = is_folder = False
    if not usable:
        fail(f"{prefix}: cannot write there ({folder} is not a writable folder)", EXIT_BAD_INPUT)
    if is_folder:
        fail(f"{prefix}: is a folder; --out takes a file prefix (PREFIX.svg, PREFIX.speedscope.json)",
             EXIT_BAD_INPUT)
    return prefix


def _print(report: dict[str, Any]) -> None:
    table = make_table(f"Top functions by self time ({report['samples']} samples)",
                       ["function", "self %", "total %"], ("self %", "total %"))
    for row in report["top"]:
        table.add_row(row["function"], f"{100 * row['self_share']:.1f}", f"{100 * row['total_share']:.1f}")
    console().print(table)
    if "grown" in report:
        grown = make_table(f"Grown since {report['compared_with']}",
                           ["function", "old %", "new %", "+ points"], ("old %", "new %", "+ points"))
        for row in report["grown"]:
            grown.add_row(row["function"], f"{100 * row['old_share']:.1f}", f"{100 * row['new_share']:.1f}",
                          f"{100 * row['growth']:.1f}")
        console().print(grown if report["grown"] else "No function grew its share of self time.")
    click.echo(f"flame graph: {report['flame_graph']}\nspeedscope:  {report['speedscope']} "
               "(open in https://www.speedscope.app)")


@click.command()
@click.argument("service", required=False, type=TEXT)
@click.option("--pid", type=click.IntRange(1, 2**22), help="Profile this process instead of a SERVICE.")
@click.option("--seconds", type=click.IntRange(1, 3600), default=10, show_default=True,
              help="How long to sample.")
@click.option("--rate", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Samples per second.")
@click.option("--idle", is_flag=True, help="Count threads that wait (I/O, locks, sleep) too.")
@click.option("--out", type=click.Path(path_type=Path), help="File prefix: writes PREFIX.svg and "
              "PREFIX.speedscope.json (default: profile-<target>-<UTC time> here).")
@click.option("--compare", "old", type=click.Path(path_type=Path),
              help="An earlier .speedscope.json: also show which functions grew since.")
@click.option("--top", type=click.IntRange(1, 1000), default=15, show_default=True, help="Functions shown.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@reports_errors
def profile(service: str | None, pid: int | None, seconds: int, rate: int, idle: bool, out: Path | None,
            old: Path | None, top: int, fmt: str) -> None:
    """Sample a running Python process with py-spy: SERVICE (a program of the native stack, e.g.
    theodore-demo) or --pid. Writes a flame graph (SVG) and a speedscope file, prints the top
    functions by self time; --compare OLD shows which grew. See docs/profiling.md."""
    if (service is None) == (pid is None):
        fail("give a SERVICE or --pid (one of them)", EXIT_BAD_INPUT)
    try:
        baseline = profiling.read_profile(old) if old else None
        prefix = _prefix(out, service or f"pid{pid}")
        target = pid if pid is not None else _native_pid(str(service))
        recorded = profiling.record(target, seconds, rate, idle)
    except profiling.ProfileError as exc:
        fail(str(exc), exc.code)
    svg, speedscope = Path(f"{prefix}.svg"), Path(f"{prefix}.speedscope.json")
    write_text(svg, profiling.flame_graph_svg(recorded, f"{recorded.name}, {seconds}s at {rate} Hz"))
    write_json(speedscope, profiling.to_speedscope(recorded))
    report: dict[str, Any] = {
        "target": recorded.name, "pid": target, "seconds": seconds, "rate": rate, "samples": recorded.samples,
        "flame_graph": str(svg), "speedscope": str(speedscope), "top": profiling.top_functions(recorded, top)}
    if baseline is not None:
        report |= {"compared_with": str(old), "grown": profiling.compare(baseline, recorded, top)}
    if fmt == "json":
        emit(report, "json")
    else:
        _print(report)
