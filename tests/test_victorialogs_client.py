"""The CLI's VictoriaLogs client against the real binary: live tail, refusals, a dead port."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from theodore_obs.clients._http import BackendUnavailable
from theodore_obs.clients.victorialogs import RejectedQuery, VictoriaLogs

from .test_log_store_durability import _free_port, victorialogs


def _ingest(port: int, tag: str, count: int) -> None:
    body = "".join(json.dumps({"msg": f"{tag} {i}", "service.name": "tail-test"}) + "\n"
                   for i in range(count))
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/insert/jsonline?_stream_fields=service.name&_msg_field=msg",
        data=body.encode(), headers={"Content-Type": "application/stream+json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_follow_gives_recent_and_new_lines_once_and_stops_on_time(tmp_path: Path) -> None:
    port = _free_port()
    with victorialogs(tmp_path / "data" / "victorialogs", port):
        _ingest(port, "before", 3)
        time.sleep(2)  # flushed: searchable
        store = VictoriaLogs(f"http://127.0.0.1:{port}")
        threading.Timer(2.0, _ingest, (port, "during", 4)).start()
        started = time.monotonic()
        got = [record["_msg"] for record in
               store.follow('service.name:="tail-test"', time.time_ns() - 60 * 10**9, 0.5,
                            time.monotonic() + 8)]
        took = time.monotonic() - started
    assert got == [f"before {i}" for i in range(3)] + [f"during {i}" for i in range(4)]
    assert 7.5 <= took < 10


def test_a_query_the_tail_cannot_run_is_refused_as_bad_input(tmp_path: Path) -> None:
    port = _free_port()
    with victorialogs(tmp_path / "data" / "victorialogs", port):
        store = VictoriaLogs(f"http://127.0.0.1:{port}")
        with pytest.raises(RejectedQuery, match="live tailing"):
            list(store.follow("* | stats count()", time.time_ns(), 0.5, time.monotonic() + 5))


def test_following_a_closed_port_says_the_store_is_not_answering() -> None:
    store = VictoriaLogs(f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(BackendUnavailable, match="is not answering"):
        list(store.follow("*", time.time_ns(), 0.5, time.monotonic() + 5))
