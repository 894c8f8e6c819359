"""A steady load on the demo service: mostly good research, rare scrape and LLM failures.

Failures stay under the demo's availability SLO (99.5 %), so a stack left running is quiet:
alerts fire when a fault is injected (``PUT /faults/<name>`` on the upstreams), not from the
background load. Each request carries its own ``X-Correlation-ID``. The rate and run time are bounded; the
target is the demo service on loopback.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid

import requests

COMPANIES = ["acme", "initech", "globex", "umbrella", "hooli", "piedpiper"]

BROKEN_PAGE = 0.003
"""Share of requests for a company whose page fails to scrape (HTTP 502)."""

LLM_OVERLOAD = 0.001
"""Share of requests the fake LLM refuses as overloaded (HTTP 503)."""


def pick(rng: random.Random) -> dict[str, str]:
    roll = rng.random()
    if roll < BROKEN_PAGE:
        return {"company": f"broken-{rng.choice(COMPANIES)}"}
    if roll < BROKEN_PAGE + LLM_OVERLOAD:
        return {"company": rng.choice(COMPANIES), "note": "overload"}
    return {"company": rng.choice(COMPANIES)}


def run(target: str, rps: float, duration: float | None, seed: int | None = None) -> dict[int, int]:
    """Send requests at ``rps`` for ``duration`` seconds (forever if None); count by status."""
    rng, counts = random.Random(seed), {}  # noqa: S311 (a traffic mix, not cryptography)
    deadline = None if duration is None else time.monotonic() + duration
    session = requests.Session()
    while deadline is None or time.monotonic() < deadline:
        started = time.monotonic()
        try:
            response = session.get(f"{target}/research", params=pick(rng), timeout=10,
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
    args = parser.parse_args()
    print(run(args.target, args.rps, args.duration), flush=True)


if __name__ == "__main__":
    main()
