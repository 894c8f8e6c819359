"""Benchmarks (``make bench``): measured figures, never timed tests."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from . import native
from .spec import load_spec


def time_to_healthy(runs: int = 3, env: str = "local") -> list[float]:
    """Seconds from ``up`` until every component is ready, each run on fresh state."""
    spec = load_spec(env)
    results = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="bench-up-") as tmp:
            state = native.State(Path(tmp))
            try:
                seconds = native.up(spec, state, say=lambda *_: None)
            finally:
                native.down(state, say=lambda *_: None)
        print(f"  run {run}: healthy in {seconds:.2f}s", flush=True)
        results.append(seconds)
    return results


def report_up(runs: int) -> str:
    results = time_to_healthy(runs)
    return (f"native `up` to all-healthy, {runs} runs on fresh state: median "
            f"{statistics.median(results):.2f}s (min {min(results):.2f}s, max {max(results):.2f}s)")
