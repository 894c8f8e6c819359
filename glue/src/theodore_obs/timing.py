"""Waiting and durations, one way for the whole tooling: :func:`wait_until` polls,
:func:`duration_seconds` reads ``1h30m``-style durations."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from typing import TypeVar

T = TypeVar("T")

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
         "y": 31536000.0}
"""Seconds per unit (a year is 365 days, as Prometheus counts)."""
PROMETHEUS_UNITS = ("ms", "s", "m", "h", "d", "w", "y")
"""Prometheus's duration units: the spec's intervals and retentions, rules' ``for``."""
GO_UNITS = ("us", "ms", "s", "m", "h")
"""Go's ``time.ParseDuration`` units (Jaeger's ``minDuration``)."""


def wait_until(check: Callable[[], T], timeout: float, every: float = 0.2,
               what: str | Callable[[], str] | None = None) -> T:
    """Call ``check`` every ``every`` seconds until it returns a true value, and return that value.

    ``check`` runs at least once, and once more at the deadline. After ``timeout`` seconds,
    ``TimeoutError(what)`` — ``what`` says what did not happen, a callable is called then (for a
    message with the last state) — or, with ``what=None``, the last (false) value is returned
    and the caller decides.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        left = deadline - time.monotonic()
        if value or left <= 0:
            break
        time.sleep(min(every, left))
    if value or what is None:
        return value
    raise TimeoutError(what() if callable(what) else what)


def duration_seconds(text: str, units: Collection[str] = PROMETHEUS_UNITS) -> float:
    """Seconds in ``text``: one or more ``<number><unit>`` (``90s``, ``1h30m``, ``1.5s``) with
    units from ``units``; ``ValueError`` for anything else (callers word it for their field)."""
    names = "|".join(sorted(units, key=len, reverse=True))  # "ms" before "m"
    part = rf"(\d+(?:\.\d+)?)({names})"
    if not names or not re.fullmatch(f"(?:{part})+", text):
        raise ValueError(f"{text!r}: expected a duration like 90s, 1h30m (units {', '.join(units)})")
    return sum(float(number) * UNITS[unit] for number, unit in re.findall(part, text))


__all__ = ["GO_UNITS", "PROMETHEUS_UNITS", "UNITS", "duration_seconds", "wait_until"]
