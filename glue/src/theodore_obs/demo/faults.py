"""Fault switches for the demo's upstreams: make the alerts fire on purpose, then recover.

The demo service itself stays unchanged: faults live in its stand-in internet, so the service
fails the way it would against a real outage.

- ``error_burst``: company pages answer HTTP 500, so research requests fail with 502;
- ``ai_failures``: the fake LLM answers HTTP 503, so AI operations fail;
- ``cost_spike``: the fake LLM reports ``factor`` times the token usage, so AI cost jumps.

``rate`` (0..1) is the share of calls a fault hits, spread evenly (not at random, so a test
knows how many). Every fault expires after ``seconds`` (default 300): a forgotten switch
cannot keep a laptop's alerts firing. Switches are HTTP on the upstreams server:
``GET /faults``, ``PUT /faults/<name>`` with JSON ``{"rate": 0.5, "factor": 1000, "seconds": 60}``,
``DELETE /faults/<name>`` and ``DELETE /faults``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import requests

FAULTS = ("error_burst", "ai_failures", "cost_spike")
DEFAULT_SECONDS = 300.0
MAX_SECONDS = 3600.0


class FaultError(ValueError):
    """An unknown fault or a bad parameter."""


@dataclass
class Fault:
    """One active fault."""

    name: str
    rate: float
    factor: float
    until: float
    calls: int = 0
    hits: int = 0


def _number(params: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FaultError(f"{key} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


class FaultSwitch:
    """The faults of one process; thread-safe."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def set(self, name: str, params: dict[str, Any] | None = None) -> Fault:
        if name not in FAULTS:
            raise FaultError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
        params = params or {}
        unknown = sorted(set(params) - {"rate", "factor", "seconds"})
        if unknown:
            raise FaultError(f"unknown parameter {unknown[0]!r} (known: rate, factor, seconds)")
        fault = Fault(name, rate=_number(params, "rate", 1.0, 0.0, 1.0),
                      factor=_number(params, "factor", 1000.0, 1.0, 1e9),
                      until=self._clock() + _number(params, "seconds", DEFAULT_SECONDS, 1.0, MAX_SECONDS))
        with self._lock:
            self._faults[name] = fault
        return fault

    def clear(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._faults.clear()
            else:
                self._faults.pop(name, None)

    def _active(self, name: str) -> Fault | None:
        fault = self._faults.get(name)
        if fault and self._clock() >= fault.until:
            del self._faults[name]
            return None
        return fault

    def hits(self, name: str) -> bool:
        """Whether this call is one the fault hits (``rate`` of the calls, evenly spread)."""
        with self._lock:
            fault = self._active(name)
            if fault is None:
                return False
            fault.calls += 1
            hit = int(fault.calls * fault.rate) > int((fault.calls - 1) * fault.rate)
            fault.hits += hit
            return hit

    def factor(self, name: str) -> float:
        """The multiplier of a hit call (1 when the fault is off or misses this call)."""
        with self._lock:
            fault = self._active(name)
            factor = fault.factor if fault else 1.0
        return factor if factor != 1.0 and self.hits(name) else 1.0

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            now = self._clock()
            return {name: {**asdict(f), "seconds_left": round(f.until - now, 1)}
                    for name in list(self._faults) if (f := self._active(name))}


def handle(switch: FaultSwitch, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """Serve ``/faults[/<name>]`` for an HTTP server: (status, JSON answer)."""
    name = path.removeprefix("/faults").strip("/") or None
    try:
        if method == "PUT" and name:
            switch.set(name, json.loads(body or b"{}"))
        elif method == "DELETE":
            switch.clear(name)
        elif method != "GET":
            return 405, {"error": f"{method} /faults{'/' + name if name else ''} is not supported"}
    except (FaultError, ValueError) as exc:
        return 400, {"error": str(exc)}
    return 200, {"faults": switch.snapshot()}


def inject(upstream: str, name: str, timeout: float = 5, **params: float) -> dict[str, Any]:
    """Turn a fault on in the upstreams at ``upstream`` (e.g. http://127.0.0.1:8001)."""
    response = requests.put(f"{upstream}/faults/{name}", json=params, timeout=timeout)
    response.raise_for_status()
    return response.json()


def clear(upstream: str, name: str | None = None, timeout: float = 5) -> dict[str, Any]:
    """Turn one fault (or every fault) off."""
    response = requests.delete(f"{upstream}/faults{'/' + name if name else ''}", timeout=timeout)
    response.raise_for_status()
    return response.json()


__all__ = ["FAULTS", "Fault", "FaultError", "FaultSwitch", "clear", "handle", "inject"]
