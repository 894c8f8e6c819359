"""End-to-end ingest under load: the highest rate the native stack takes for a minute, nothing lost.

Numbered spans, log lines and metric samples (:mod:`.numbered`) go to the collector over
OTLP/HTTP from this process, at a rising rate per step; after each step every number is
counted back in Jaeger, VictoriaLogs and Prometheus. A step is *sustained* when the generator
kept its rate and nothing the collector acknowledged is missing. CPU (share of one core) and
peak RSS of each component are sampled from /proc during each step; the stack's idle RSS is
taken before the first.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from theodore_obs import native
from theodore_obs.timing import wait_until

from . import numbered
from .bench import _bench_stack, _cpu_seconds
from .logstore import idle_rss, rss_mib

STEPS = (2_500, 5_000, 10_000, 15_000)
"""Spans/s and log lines/s of each step (each signal at that rate); samples go at a twentieth,
one Prometheus series per sample (that is how each is counted back)."""
SECONDS = 60.0
TICK = 0.25
KEPT_RATE = 0.95
"""A step whose generator sent less than this share of its target rate is not a sustained step."""


@dataclass
class Usage:
    """CPU and peak RSS of each stack process while the block runs, sampled every ``every`` s."""

    state: native.State
    every: float = 1.0
    peak_mib: dict[str, float] = field(default_factory=dict)
    cpu_share: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> Self:
        self._pids = {p["name"]: p["pid"] for p in native.process_info(self.state) if p.get("pid")}
        self._cpu = {name: _cpu_seconds(pid) for name, pid in self._pids.items()}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            for name, pid in self._pids.items():
                self.peak_mib[name] = max(self.peak_mib.get(name, 0.0), rss_mib(pid))

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        seconds = time.monotonic() - self._started
        self.cpu_share = {name: (_cpu_seconds(pid) - self._cpu[name]) / seconds
                          for name, pid in self._pids.items()}


def _count(spec: dict[str, Any], stream: numbered.NumberedStream) -> dict[str, numbered.Count]:
    ports = spec["ports"]
    return {"spans": numbered.jaeger_spans(f"http://127.0.0.1:{ports['jaeger_query']}", stream),
            "logs": numbered.victorialogs_lines(f"http://127.0.0.1:{ports['victorialogs']}", stream),
            "samples": numbered.prometheus_samples(f"http://127.0.0.1:{ports['prometheus']}", stream)}


def _settled_count(spec: dict[str, Any], stream: numbered.NumberedStream,
                   timeout: float = 90.0) -> dict[str, numbered.Count]:
    """The counts once every acknowledged number is stored, or when ``timeout`` is over."""
    counts: dict[str, numbered.Count] = {}

    def all_stored() -> bool:
        counts.update(_count(spec, stream))
        return all(not counts[s].lost(set(stream.acked[s])) for s in numbered.SIGNALS)

    wait_until(all_stored, timeout=timeout, every=3.0)
    return counts


def ingest_step(spec: dict[str, Any], state: native.State, rate: int,
                seconds: float = SECONDS) -> dict[str, Any]:
    """One step at ``rate`` spans/s and lines/s: what was sent, acknowledged, stored and lost."""
    per_tick = {"spans": int(rate * TICK), "logs": int(rate * TICK), "samples": max(1, int(rate * TICK / 20))}
    otlp = f"http://127.0.0.1:{spec['ports']['otlp_http']}"
    with Usage(state) as usage:
        with numbered.NumberedStream(otlp, per_tick=per_tick, tick=TICK, max_seconds=seconds) as stream:
            time.sleep(seconds)
        counts = _settled_count(spec, stream)
    result: dict[str, Any] = {"rate": rate, "seconds": stream.seconds, "usage": usage,
                              "statuses": dict(stream.statuses)}
    for signal in numbered.SIGNALS:
        acked = set(stream.acked[signal])
        result[signal] = {"sent_per_s": stream.sent(signal) / stream.seconds,
                          "target_per_s": per_tick[signal] / TICK, "acked": len(acked),
                          "lost": len(counts[signal].lost(acked)), "duplicates": counts[signal].duplicates}
    return result


def sustained(step: dict[str, Any]) -> bool:
    return all(step[s]["lost"] == 0 and step[s]["sent_per_s"] >= KEPT_RATE * step[s]["target_per_s"]
               for s in numbered.SIGNALS)


def report_ingest(steps: Sequence[int] = STEPS, seconds: float = SECONDS) -> list[str]:
    lines = [f"end-to-end ingest, native stack, generator in this process ({seconds:.0f} s per step; "
             "spans and log lines at the step's rate each, samples at a twentieth):"]
    with _bench_stack() as (spec, state):
        rss = idle_rss(state)
        lines.append(f"  idle RSS of the stack: {rss['total']:.0f} MiB")
        best = None
        for n, rate in enumerate(steps, 1):
            print(f"ingest step {n}/{len(steps)}: {rate:,}/s for {seconds:.0f} s, then counting",
                  file=sys.stderr)
            step = ingest_step(spec.data, state, rate, seconds)
            usage: Usage = step["usage"]
            lines.append(f"  {rate:>6,}/s: " + "; ".join(
                f"{s} sent {step[s]['sent_per_s']:,.0f}/s, lost {step[s]['lost']}, "
                f"dup {step[s]['duplicates']}" for s in numbered.SIGNALS)
                + ("" if sustained(step) else "  (not sustained)"))
            lines.append("          CPU (cores) / peak RSS MiB: " + ", ".join(
                f"{name} {usage.cpu_share[name]:.2f}/{usage.peak_mib.get(name, 0):.0f}"
                for name in sorted(usage.cpu_share)))
            if not sustained(step):
                break
            best = rate
    lines.append(f"  highest sustained step: {best:,} spans/s + {best:,} lines/s" if best
                 else "  no step sustained")
    return lines


if __name__ == "__main__":
    print("\n".join(report_ingest()))
