"""The one poll loop and the one duration parser of the tooling (``theodore_obs.timing``)."""

from __future__ import annotations

import itertools

import pytest
from theodore_obs.timing import GO_UNITS, duration_seconds, wait_until


def test_wait_until_returns_the_first_true_value() -> None:
    calls = itertools.count(1)
    assert wait_until(lambda: [n] if (n := next(calls)) >= 3 else [], timeout=5, every=0.01) == [3]


def test_wait_until_names_what_did_not_happen() -> None:
    with pytest.raises(TimeoutError, match=r"^nothing came after 0s$"):
        wait_until(lambda: False, timeout=0.05, every=0.01, what="nothing came after 0s")
    seen: list[int] = []
    with pytest.raises(TimeoutError, match=r"^last seen \[0, 0"):
        wait_until(lambda: seen.append(0), timeout=0.05, every=0.01, what=lambda: f"last seen {seen}")


def test_wait_until_without_what_returns_the_last_false_value_and_checks_at_least_once() -> None:
    calls: list[int] = []
    assert wait_until(lambda: calls.append(1) or 0, timeout=0) == 0
    assert calls == [1]


@pytest.mark.parametrize(("text", "seconds"), [
    ("15s", 15), ("1m", 60), ("1h30m", 5400), ("500ms", 0.5), ("2w", 1209600), ("1y", 31536000),
    ("1.5s", 1.5), ("0s", 0), ("1m30s", 90),
])
def test_prometheus_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "15", "s", "1x", " 1s", "1s ", "1h-30m", "1.s", "-1s", "1S"])
def test_what_is_not_a_duration_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        duration_seconds(text)


def test_units_are_the_callers() -> None:
    assert duration_seconds("250us", GO_UNITS) == pytest.approx(250e-6)
    assert duration_seconds("7d", "smhdw") == 604800
    for text, units in [("1d", GO_UNITS), ("500ms", "smhdw"), ("1y", "smhdw")]:
        with pytest.raises(ValueError, match="expected a duration"):
            duration_seconds(text, units)
