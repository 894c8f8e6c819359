"""Our distro side by side with the stock OpenTelemetry distro (part of ``make bench``; alone:
``python -m theodore_bench.distros``).

The same demo requests in one run under four setups, alternating rounds: bare (no
instrumentation); the stock distro (``opentelemetry-distro``, what a user would pick instead:
OTLP traces, metrics and logs over http/protobuf to the running collector, its defaults
otherwise); the stock distro exporting its spans alone (no metrics, no logs: what recording
and exporting the instrumentations' spans costs through the SDK, which any SDK-based distro
pays for the same spans); and ours (``theodore``). All of them run in one virtualenv built
here and cached under ``~/.cache/theodore-obs/bench-venvs/<key>``: two distros in the
checkout's ``.venv`` would change which one every other ``opentelemetry-instrument`` there
picks. The checkout's sources come first on the demo's PYTHONPATH, so the code measured is
the working tree's whatever the venv holds; the key changes with the packages' pyproject
files (their dependencies and entry points).

With two distros installed, ``opentelemetry-instrument`` loads the one ``OTEL_PYTHON_DISTRO``
names and the configurator ``OTEL_PYTHON_CONFIGURATOR`` names (otherwise whichever entry point
comes first); each setup names both, and a probe under the same environment checks which
configurator ran before anything is measured.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from theodore_obs.native import NativeError
from theodore_obs.paths import repo_root

from .bench import (
    BARE,
    ENDPOINTS,
    OURS,
    ROUNDS,
    SPANS_ONLY,
    STOCK,
    WINDOW_SECONDS,
    _bench_port,
    _bench_stack,
    _demo_command,
    report_request_overhead,
    request_overhead,
)

STOCK_PACKAGES = ("opentelemetry-distro==0.66b1", "opentelemetry-exporter-otlp-proto-http==1.45.1")
"""The stock distro of the contrib release our instrumentation pins, and its OTLP/HTTP exporter."""

CHECKOUT_PACKAGES = ("catalogue", "telemetry", "glue")
CHECKOUT_INSTALL = ("catalogue", "telemetry", "glue[demo]")

_STOCK_DISTRO = {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator",
                 "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}

COMPARED: dict[str, dict[str, str] | None] = {
    BARE: None,
    STOCK: {
        **_STOCK_DISTRO,
        "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
    },
    SPANS_ONLY: {
        **_STOCK_DISTRO,
        "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "false",
    },
    OURS: {"OTEL_PYTHON_DISTRO": "theodore", "OTEL_PYTHON_CONFIGURATOR": "theodore"},
}
"""Each setup's environment on top of the stack's (endpoint, service name); None: bare."""

PROBE = """
import json, logging, structlog
from opentelemetry import trace
provider = trace.get_tracer_provider()
multi = getattr(provider, "_active_span_processor", None)
print(json.dumps({
    "span_processors": [type(p).__name__ for p in getattr(multi, "_span_processors", ())],
    "root_handlers": [type(h).__name__ for h in logging.getLogger().handlers],
    "structlog_configured": structlog.is_configured(),
}))
"""
"""What the configurator left in the process: span processors, root log handlers, structlog."""


class BenchSetupError(NativeError):
    """The bench venv could not be built, or a setup did not configure the distro it names
    (``theodore-obs bench`` prints it on one line)."""


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "theodore-obs" / "bench-venvs"


def venv_key() -> str:
    """Changes with the Python, the stock pins and the checkout packages' pyproject files."""
    digest = hashlib.sha256("\n".join([sys.version, *STOCK_PACKAGES, *CHECKOUT_INSTALL]).encode())
    for package in CHECKOUT_PACKAGES:
        digest.update((repo_root() / package / "pyproject.toml").read_bytes())
    return digest.hexdigest()[:16]


def bench_venv(say: Callable[[str], object] = print) -> Path:
    """The bench's own virtualenv (built once per key, then reused); returns its ``bin``."""
    venv = _cache_root() / venv_key()
    done = venv / ".complete"
    if done.exists():
        say(f"bench venv (stock + our distro): cached, {venv}")
        return venv / "bin"
    shutil.rmtree(venv, ignore_errors=True)  # an interrupted build
    say(f"building the bench venv (checkout packages + {' '.join(STOCK_PACKAGES)}) in {venv} ...")
    started = time.monotonic()
    sources = venv / "src"
    for package in CHECKOUT_PACKAGES:
        shutil.copytree(repo_root() / package, sources / package,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run = subprocess.run([*pip, *(str(sources / package) for package in CHECKOUT_INSTALL), *STOCK_PACKAGES],
                         capture_output=True, text=True, timeout=900, check=False)
    shutil.rmtree(sources, ignore_errors=True)
    if run.returncode != 0:
        raise BenchSetupError(f"bench venv: pip install failed in {venv}: "
                           + (run.stderr or run.stdout).strip().splitlines()[-1])
    done.write_text("\n".join(STOCK_PACKAGES) + "\n")
    say(f"bench venv built in {time.monotonic() - started:.0f} s")
    return venv / "bin"


def checkout_path(root: Path | None = None) -> str:
    """The working tree's sources (or another checkout's at ``root``), first on the demo's PYTHONPATH."""
    return os.pathsep.join(str((root or repo_root()) / package / "src") for package in CHECKOUT_PACKAGES)


def baseline_setup(root: Path) -> tuple[str, dict[str, str]]:
    """Ours as another checkout has it (``git worktree add /tmp/before <commit>``): its name in the
    report and its environment, the same as ours but with that checkout's sources."""
    return f"ours at {root}", {**(COMPARED[OURS] or {}), "PYTHONPATH": checkout_path(root)}


def configured(spec: object, state: object, bin_dir: Path, otel_env: dict[str, str]) -> dict[str, object]:
    """``PROBE`` under ``opentelemetry-instrument`` with the demo's environment for ``otel_env``."""
    command, env = _demo_command(spec, state, _bench_port(spec), otel_env, "probe.db",  # type: ignore[arg-type]
                                 app_path=checkout_path(), bin_dir=bin_dir)
    run = subprocess.run([command[0], command[1], "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    if run.returncode != 0:
        raise BenchSetupError(f"distro probe failed: {(run.stderr or run.stdout).strip().splitlines()[-1:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def check_setups(spec: object, state: object, bin_dir: Path) -> None:
    """The stock setups run the stock configurator (the SDK's, its root LoggingHandler only when
    it exports logs) and none of ours (no correlation span processor, structlog left alone);
    ours runs ours."""
    for name, handler_expected in ((STOCK, True), (SPANS_ONLY, False)):
        stock = configured(spec, state, bin_dir, COMPARED[name] or {})
        if ("CorrelationIdSpanProcessor" in stock["span_processors"] or stock["structlog_configured"]
                or ("LoggingHandler" in stock["root_handlers"]) != handler_expected
                or "BatchSpanProcessor" not in stock["span_processors"]):
            raise BenchSetupError(f"the {name} setup did not run the stock distro's configurator alone: "
                                  f"{stock}")
    ours = configured(spec, state, bin_dir, COMPARED[OURS] or {})
    if "CorrelationIdSpanProcessor" not in ours["span_processors"] or not ours["structlog_configured"]:
        raise BenchSetupError(f"the ours setup did not run the theodore configurator: {ours}")


def compare_distros(spec: object, state: object, endpoints: tuple[str, ...] = tuple(ENDPOINTS),
                    seconds: float = WINDOW_SECONDS, rounds: int = ROUNDS, *, signals: bool = True,
                    baseline: Path | None = None,
                    say: Callable[[str], object] = print) -> dict[str, dict[str, dict[str, float]]]:
    """``request_overhead`` for ``COMPARED`` in the bench venv; ``signals``: also ours with one
    signal turned down (``WITHOUT_ONE_SIGNAL``, research only); ``baseline``: also ours as the
    checkout at that path has it, in the same alternating rounds (``baseline_setup``)."""
    bin_dir = bench_venv(say)
    check_setups(spec, state, bin_dir)
    setups = dict(COMPARED)
    if baseline is not None:
        name, env = baseline_setup(baseline)
        if "CorrelationIdSpanProcessor" not in configured(spec, state, bin_dir, env)["span_processors"]:
            raise BenchSetupError(f"the baseline setup did not run the theodore configurator from {baseline}")
        setups[name] = env
    say("checked: the stock setups run opentelemetry-distro's configurator, ours the theodore one")
    return request_overhead(spec, state, seconds, endpoints, checkout_path(),  # type: ignore[arg-type]
                            setups=setups, bin_dir=bin_dir, rounds=rounds, say=say,
                            with_signals=signals)


def baseline_lines(results: dict[str, dict[str, dict[str, float]]], name: str) -> list[str]:
    """Per endpoint: the CPU the baseline and ours add to bare, against the stock distro's."""
    lines = []
    for endpoint, runs in results.items():
        bare = runs[BARE]["cpu_ms"]
        added = {setup: runs[setup]["cpu_ms"] - bare for setup in (STOCK, name, OURS)}
        stock = added[STOCK]
        if stock <= 0:
            lines.append(f"  GET {ENDPOINTS[endpoint]}: the stock distro added no CPU (noise)")
            continue
        lines.append(f"  GET {ENDPOINTS[endpoint]}, added CPU a request: stock distro {stock * 1000:.0f} µs, "
                     f"{name} {added[name] * 1000:.0f} µs ({added[name] / stock:.2f}x the stock distro's), "
                     f"ours {added[OURS] * 1000:.0f} µs ({added[OURS] / stock:.2f}x)")
    return lines


def report_distros(endpoints: tuple[str, ...] = tuple(ENDPOINTS), seconds: float = WINDOW_SECONDS,
                   rounds: int = ROUNDS, signals: bool = False, baseline: Path | None = None) -> str:
    """The comparison alone, on a native stack of its own (with ``baseline``, one setup more)."""
    with _bench_stack() as (spec, state):
        setups = len(COMPARED) + (baseline is not None)
        print(f"native stack up; {len(endpoints)} endpoint(s) x {rounds} rounds x {setups} setups, "
              f"{seconds:.0f} s each", flush=True)
        results = compare_distros(spec, state, endpoints, seconds, rounds, signals=signals, baseline=baseline,
                                  say=lambda line: print(line, flush=True))
    lines = report_request_overhead(results, rounds)
    if baseline is not None:
        lines += ["before and after, the same rounds:", *baseline_lines(results, baseline_setup(baseline)[0])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m theodore_bench.distros",
                                     description="bare vs the stock OpenTelemetry distro vs ours")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS),
                        help=f"comma-separated, of {', '.join(ENDPOINTS)}")
    parser.add_argument("--seconds", type=float, default=WINDOW_SECONDS, help="per run (%(default)s)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating (%(default)s)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                        help="also measure ours as this checkout has it "
                             "(git worktree add /tmp/before <commit>)")
    args = parser.parse_args(argv)
    endpoints = tuple(filter(None, (e.strip() for e in args.endpoints.split(","))))
    unknown = [e for e in endpoints if e not in ENDPOINTS]
    if args.baseline is not None and not (args.baseline / "telemetry" / "src").is_dir():
        parser.exit(2, f"error: --baseline: {args.baseline} is not a checkout of this repository "
                       "(no telemetry/src)\n")
    if unknown or not endpoints or args.seconds <= 0 or args.rounds < 1:
        parser.exit(2, f"error: --endpoints takes {', '.join(ENDPOINTS)}; --seconds > 0; --rounds >= 1 "
                       f"(got {args.endpoints!r}, {args.seconds}, {args.rounds})\n")
    try:
        print(report_distros(endpoints, args.seconds, args.rounds, baseline=args.baseline.resolve()
                             if args.baseline else None), flush=True)
    except BenchSetupError as exc:
        parser.exit(1, f"error: {exc}\n")


if __name__ == "__main__":
    main()
