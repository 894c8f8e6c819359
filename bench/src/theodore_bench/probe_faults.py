"""The seed rules the demo's faults do not reach, failed on purpose by a probe app.

The probe is an app of its own under ``opentelemetry-instrument`` (the ``theodore`` distro,
exporting over OTLP/HTTP to the stack's collector, as any app would). It records successful
sqlite operations four times a second from the start; a line on its stdin is the fault: from
then on every other storage operation fails (``StorageOperationFailures``), it holds one
operation more than ``capacity.max_concurrent_operations`` in flight (``SystemOverload``) and
logs one CRITICAL line (``CriticalLogEvents``, vmalert's log rule). Closing stdin ends it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

from theodore_obs.testing.receivers import Receivers

from .drill import DrillResult, page_for, wait_for_series

#: The alert each probe fault raises, and its severity label.
EXPECTED = {"StorageOperationFailures": "high", "SystemOverload": "high", "CriticalLogEvents": "critical"}
SERVICE = "bench-probe"

SCRIPT = """
import sys, threading, time
from theodore_telemetry import get_logger
from theodore_telemetry.metrics import ACTIVE_OPERATIONS, get_metrics

metrics, failing = get_metrics(), threading.Event()

def storage():
    count = 0
    while True:
        count += 1
        metrics.record_storage_operation("sqlite", "insert", not (failing.is_set() and count % 2), 0.001)
        time.sleep(0.25)

threading.Thread(target=storage, daemon=True).start()
sys.stdin.readline()
failing.set()
metrics.record(ACTIVE_OPERATIONS, CAPACITY + 1, operation="probe")
get_logger("storage").critical("database unreachable")
sys.stdin.read()
"""


class ProbeApp:
    """The probe app, exporting to the collector at ``otlp_http``; ``fault()`` starts its faults."""

    def __init__(self, otlp_http: str, capacity: int) -> None:
        self.otlp_http, self.capacity = otlp_http, capacity
        self.fault_started = 0.0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        env = {**os.environ, "OTEL_SERVICE_NAME": SERVICE, "THEODORE_ENVIRONMENT": "local",
               "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_http, "OTEL_TRACES_EXPORTER": "none"}
        env.pop("OTEL_RESOURCE_ATTRIBUTES", None)
        code = SCRIPT.replace("CAPACITY", str(self.capacity))
        self._proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, "-c", code],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        return self

    def fault(self) -> float:
        """Start the faults; returns their start (Unix seconds)."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write("fault\n")
        self._proc.stdin.flush()
        self.fault_started = time.time()
        return self.fault_started

    def __exit__(self, *_: Any) -> None:
        assert self._proc is not None
        try:
            self._proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def run_probe(spec: dict[str, Any], receivers: Receivers, timeout: float = 120.0) -> DrillResult:
    """The probe's faults on a running drill stack (``drill.drill_spec``): fault → PagerDuty
    trigger per alert of ``EXPECTED``."""
    ports, capacity = spec["ports"], spec["capacity"]["max_concurrent_operations"]
    result = DrillResult()
    with ProbeApp(f"http://127.0.0.1:{ports['otlp_http']}", capacity) as probe:
        wait_for_series(f"http://127.0.0.1:{ports['prometheus']}",
                        f'theodore_storage_operations_total{{service_name="{SERVICE}"}}', timeout)
        result.fault_started = probe.fault()
        for alertname, severity in EXPECTED.items():
            result.triggers[alertname] = receivers.wait_for(
                "pagerduty", page_for(alertname, severity),
                timeout=max(1.0, result.fault_started + timeout - time.time()))
    return result


__all__ = ["EXPECTED", "SERVICE", "ProbeApp", "run_probe"]
