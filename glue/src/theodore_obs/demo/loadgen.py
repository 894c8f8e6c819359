"""A steady load on the demo service: good research requests, each with its own ``X-Correlation-ID``.

The load never fails on purpose, so a fresh stack is quiet: only Watchdog fires until a fault
is injected (``PUT /faults/<name>`` on the upstreams, or ``theodore-obs``). ``--failures`` mixes
in rare scrape and LLM failures (0.4 % of requests, under the demo's 99.5 % availability SLO
over hours; in the first minutes one failure in a few hundred requests still burns the budget
and pages) and failing image generations (1 %). The rate and run time are bounded; the target
is the demo service on loopback.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid

import requests

from theodore_obs.demo import IMAGE_FAILURE_NOTE

COMPANIES = ["acme", "initech", "globex", "umbrella", "hooli", "piedpiper"]

BROKEN_PAGE = 0.003
"""Share of requests for a company whose page fails to scrape (HTTP 502)."""

LLM_OVERLOAD = 0.001
"""Share of requests the fake LLM refuses as overloaded (HTTP 503)."""

IMAGE_FAILURES = 0.01
"""Share of requests whose generated images all fail (ERROR log lines, not failed requests)."""


def pick(rng: random.Random, failures: bool = False) -> dict[str, str]:
    roll = rng.random() if failures else 1.0
    if roll < BROKEN_PAGE:
        return {"company": f"broken-{rng.choice(COMPANIES)}"}
    if roll < BROKEN_PAGE + LLM_OVERLOAD:
        return {"company": rng.choice(COMPANIES), "note": "overload"}
    if roll < BROKEN_PAGE + LLM_OVERLOAD + IMAGE_FAILURES:
        return {"company": rng.choice(COMPANIES), "note": IMAGE_FAILURE_NOTE}
    return {"company": rng.choice(COMPANIES)}


def run(target: str, rps: float, duration: float | None, seed: int | None = None,
        failures: bool = False) -> dict[int, int]:
    """Send requests at ``rps`` for ``duration`` seconds (forever if None); count by status."""
    rng, counts = random.Random(seed), {}  # noqa: S311 (a traffic mix, not cryptography)
    deadline = None if duration is None else time.monotonic() + duration
    session = requests.Session()
    while deadline is None or time.monotonic() < deadline:
        started = time.monotonic()
        try:
            response = session.get(f"{target}/research", params=pick(rng, failures), timeout=10,
                                   headers={"X-Correlation-ID": f"load-{uuid.uuid4()}"})
            counts[response.status_code] = counts.get(response.status_code, 0) + 1
        except requests.RequestException:
            counts[0] = counts.get(0, 0) + 1
        time.sleep(max(0.0, 1 / rps - (time.monotonic() - started)))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="http://127.0.0.1:8000")
    parser.add_argument("--rps", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: until stopped)")
    parser.add_argument("--failures", action="store_true",
                        help=f"mix in rare failures ({BROKEN_PAGE:.1%} broken pages, {LLM_OVERLOAD:.1%} LLM "
                             f"overloads, {IMAGE_FAILURES:.0%} with failing images)")
    args = parser.parse_args()
    print(run(args.target, args.rps, args.duration, failures=args.failures), flush=True)


if __name__ == "__main__":
    main()
