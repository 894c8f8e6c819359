"""Where each distro spends its CPU on the same demo requests (``python -m theodore_bench.distro_profile``).

The demo runs under each instrumented setup of ``distros.COMPARED`` (and bare) in the bench venv,
loaded by sequential requests, while py-spy samples the thread holding the GIL (``--gil``: CPU
spent in Python, waits left out). Every sample is put in the layer it is spent for (``layer``:
the SDK's tracing, metrics or logs, the exporters and protobuf, the instrumentations, our
modules, structlog, the app and its frameworks) and in the kind of thread it ran on (a request
thread or a background one: batch processors, metric reader, our log queue). Figures are
sampled milliseconds per request, so the setups compare although they served different numbers
of requests.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

from theodore_obs import profiling

from .bench import ENDPOINTS, _bench_port, _bench_stack, _demo_app, _demo_core, _latencies
from .distros import COMPARED, bench_venv, check_setups, checkout_path

RATE = 200
"""Samples per second."""

TELEMETRY = (
    ("theodore_telemetry/", None),
    ("opentelemetry/sdk/trace", "SDK tracing"),
    ("opentelemetry/sdk/metrics", "SDK metrics"),
    ("opentelemetry/sdk/_logs", "SDK logs"),
    ("opentelemetry/sdk/", "SDK other (resources, shared batch processor)"),
    ("opentelemetry/exporter", "OTLP exporters and encoders"),
    ("google/protobuf", "OTLP exporters and encoders"),
    ("opentelemetry/instrumentation", "instrumentations (wrappers, hooks)"),
    ("opentelemetry/util", "instrumentations (wrappers, hooks)"),
    ("opentelemetry/semconv", "instrumentations (wrappers, hooks)"),
    ("opentelemetry/", "API: context, baggage, propagators, attributes"),
    ("structlog/", "structlog"),
    ("orjson", "structlog"),
)
"""Telemetry code: the first marker found in a frame's file names its layer (None: our module)."""

APP = ("theodore_obs/demo", "flask/", "werkzeug/", "socketserver", "openai/", "httpx/", "httpx2/", "sqlite3",
       "jinja2/")
"""The app and the frameworks serving it."""

CLIENTS = ("requests/", "urllib3/", "http/client", "email/", "httpcore/", "httpcore2/", "h11/", "anyio/",
           "pydantic", "ssl.py")
"""HTTP clients and what they parse with: the app's calls, or the exporters' when an exporter is
on the stack (an instrumentation's wrapper around the app's call does not claim them). The
OpenAI SDK 3 sends with httpx2 and httpcore2."""


def _layer_of(frame: str) -> str | None:
    match = profiling.FRAME.match(frame)
    file = match.group("file") if match else frame
    for marker, name in TELEMETRY:
        if marker in file:
            return name or "ours: " + file.rsplit("/", 1)[1].removesuffix(".py")
    if any(marker in file for marker in APP):
        return "app and its frameworks"
    return None


def layer(stack: tuple[str, ...]) -> str:
    """The layer a sample's CPU is spent for: walking from the running frame towards the root,
    the first frame of telemetry code, of the app or of an HTTP client decides (the rest of the
    standard library and logging count for whoever called them)."""
    exporting = any("opentelemetry/exporter" in frame for frame in stack)
    for frame in reversed(stack):
        if any(marker in frame for marker in CLIENTS):
            return "OTLP exporters and encoders" if exporting else "app and its frameworks"
        found = _layer_of(frame)
        if found:
            return found
    return "other (interpreter start, threads)"


def record(pid: int, seconds: int) -> profiling.Profile:
    """py-spy's samples of the threads holding the GIL (CPU spent in Python, not waits)."""
    profiling.check_process(pid)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        out = Path(tmp) / "stacks.txt"
        subprocess.run([profiling.py_spy(), "record", "--pid", str(pid), "--duration", str(seconds),
                        "--rate", str(RATE), "--format", "raw", "--function", "--gil", "--full-filenames",
                        "--output", str(out)],
                       capture_output=True, text=True, timeout=seconds + 60, check=False)
        return profiling.parse_collapsed(out.read_text() if out.exists() else "")


def thread_kind(stack: tuple[str, ...]) -> str:
    if any("process_request_thread" in frame for frame in stack):
        return "request threads"
    if any("_bootstrap" in frame for frame in stack[:2]):
        return "background threads (export, metric reader, log queue)"
    return "main thread"


def sampled(spec: object, state: object, bin_dir: Path, otel_env: dict[str, str] | None, endpoint: str,
            seconds: int, cpus: set[int] | None) -> tuple[profiling.Profile, int]:
    """The demo under ``otel_env`` profiled for ``seconds`` under sequential load; and the number of
    requests answered meanwhile."""
    port = _bench_port(spec)  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{port}{ENDPOINTS[endpoint]}"
    with _demo_app(spec, state, port, otel_env, f"bench-{endpoint}.db", cpus=cpus,  # type: ignore[arg-type]
                   app_path=checkout_path(), bin_dir=bin_dir) as pid:
        _latencies(url, 30)
        done, stop = [], threading.Event()

        def load() -> None:
            while not stop.is_set():
                done.extend(_latencies(url, 1))

        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        try:
            profile = record(pid, seconds)
        finally:
            stop.set()
            worker.join(15)
    return profile, len(done)


NOT_TELEMETRY = ("app and its frameworks", "other (interpreter start, threads)")


def _short(frame: str) -> str:
    """``function (file)`` with the file from its package on (after site-packages, src or the stdlib)."""
    name, _, file = frame.partition(" (")
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in file:
            return f"{name} ({file.rsplit(marker, 1)[1]}"
    return frame


def breakdown(profile: profiling.Profile, requests: int) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Sampled ms per request by layer, by thread kind and by running function (in telemetry)."""
    scale = 1000 / RATE / max(requests, 1)
    layers: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for stack, count in profile.stacks.items():
        where = layer(stack)
        layers[where] += count * scale
        threads[thread_kind(stack)] += count * scale
        if where not in NOT_TELEMETRY:
            functions[_short(stack[-1])] += count * scale
    return layers, threads, functions


def report_profiles(endpoint: str = "companies", seconds: int = 20, top: int = 12) -> str:
    with _bench_stack() as (spec, state), _demo_core(state) as cpus:
        bin_dir = bench_venv()
        check_setups(spec, state, bin_dir)
        results = {}
        for name, otel_env in COMPARED.items():
            print(f"  profiling GET {ENDPOINTS[endpoint]}: {name} ({seconds} s at {RATE} Hz)", flush=True)
            profile, requests = sampled(spec, state, bin_dir, otel_env, endpoint, seconds, cpus)
            results[name] = breakdown(profile, requests)
    names = list(results)
    lines = [f"GET {ENDPOINTS[endpoint]}, py-spy {seconds} s at {RATE} Hz per setup (--gil); "
             "sampled ms per request:", "  " + f"{'':<58}" + "".join(f"{n:>14}" for n in names)]
    for index, title in ((0, "by layer"), (1, "by thread")):
        columns = [results[n][index] for n in names]
        keys = sorted({k for column in columns for k in column}, key=lambda k: -columns[-1][k])
        lines.append(f"  {title}:")
        lines += ["    " + f"{key[:56]:<56}" + "".join(f"{column[key]:14.3f}" for column in columns)
                  for key in keys if max(column[key] for column in columns) >= 0.005]
        lines.append(f"    {'total':<56}" + "".join(f"{sum(column.values()):14.3f}" for column in columns))
    for name in names[1:]:
        lines.append(f"  top running functions in telemetry code, {name}:")
        lines += [f"    {value:7.3f}  {function[:100]}"
                  for function, value in results[name][2].most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m theodore_bench.distro_profile", description=__doc__)
    parser.add_argument("--endpoint", choices=list(ENDPOINTS), default="companies")
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args(argv)
    print(report_profiles(args.endpoint, args.seconds), flush=True)


if __name__ == "__main__":
    main()
