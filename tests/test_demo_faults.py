"""Fault switches of the demo's upstreams: what each fault does, its rate, its expiry, bad input."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from theodore_obs.demo import upstreams
from theodore_obs.demo.faults import FaultError, FaultSwitch, clear, handle, inject


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_hits_an_even_share_of_calls() -> None:
    switch = FaultSwitch()
    switch.set("error_burst", {"rate": 0.25})
    hits = [switch.hits("error_burst") for _ in range(8)]
    assert hits == [False, False, False, True, False, False, False, True]
    assert not switch.hits("ai_failures")


def test_a_fault_expires_by_itself() -> None:
    clock = Clock()
    switch = FaultSwitch(clock)
    switch.set("ai_failures", {"seconds": 30})
    assert switch.hits("ai_failures")
    clock.now += 30
    assert not switch.hits("ai_failures")
    assert switch.snapshot() == {}


def test_cost_spike_multiplies_only_while_on() -> None:
    switch = FaultSwitch()
    assert switch.factor("cost_spike") == 1.0
    switch.set("cost_spike", {"factor": 500})
    assert switch.factor("cost_spike") == 500.0
    switch.clear()
    assert switch.factor("cost_spike") == 1.0


@pytest.mark.parametrize(("name", "params", "error"), [
    ("meteor_strike", {}, "unknown fault 'meteor_strike'"),
    ("error_burst", {"rate": 2}, "rate must be a number from 0 to 1"),
    ("error_burst", {"seconds": 86400}, "seconds must be a number from 1 to 3600"),
    ("cost_spike", {"factor": "lots"}, "factor must be a number"),
    ("cost_spike", {"power": 3}, "unknown parameter 'power'"),
])
def test_bad_faults_are_refused_by_name(name: str, params: dict, error: str) -> None:
    with pytest.raises(FaultError, match=error):
        FaultSwitch().set(name, params)
    status, answer = handle(FaultSwitch(), "PUT", f"/faults/{name}", json.dumps(params).encode())
    assert status == 400 and error.split(" '")[0] in answer["error"]


@pytest.fixture
def upstream() -> Iterator[str]:
    server = upstreams.ThreadingHTTPServer(("127.0.0.1", 0), upstreams.Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        upstreams.FAULTS.clear()
        server.shutdown()
        server.server_close()


def _status(url: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def test_faults_switch_the_upstreams_over_http(upstream: str) -> None:
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "acme"}]}
    status, normal = _status(f"{upstream}/v1/chat/completions", chat)
    assert status == 200 and _status(f"{upstream}/companies/acme")[0] == 200

    assert set(inject(upstream, "error_burst", seconds=60)["faults"]) == {"error_burst"}
    assert _status(f"{upstream}/companies/acme")[0] == 500
    assert _status(f"{upstream}/healthz")[0] == 200  # the service is up, its answers are not

    inject(upstream, "ai_failures")
    assert _status(f"{upstream}/v1/chat/completions", chat)[0] == 503
    clear(upstream, "ai_failures")

    inject(upstream, "cost_spike", factor=1000)
    status, spiked = _status(f"{upstream}/v1/chat/completions", chat)
    assert status == 200
    assert spiked["usage"]["prompt_tokens"] == normal["usage"]["prompt_tokens"] * 1000

    assert clear(upstream) == {"faults": {}}
    assert _status(f"{upstream}/companies/acme")[0] == 200
