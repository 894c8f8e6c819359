"""What the log store keeps when it stops: the real VictoriaLogs with the flags we render.

A graceful stop (SIGTERM, what `down` sends) keeps every line it acknowledged. A SIGKILL keeps
every line that reached the disk: lines reach it after the insert buffers and the in-memory
parts' flush interval (``log_store.flush_interval``).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from theodore_obs.render import native_runtime, victorialogs_flags
from theodore_obs.rule_context import duration_seconds
from theodore_obs.spec import load_spec
from theodore_obs.timing import wait_until
from theodore_obs.tools import binary_path

SPEC = load_spec("local").data
FLUSH_SECONDS = duration_seconds(SPEC["log_store"]["flush_interval"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def victorialogs(data: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """VictoriaLogs on ``port`` with the rendered flags and ``data`` as its storage."""
    spec = {**SPEC, "ports": {**SPEC["ports"], "victorialogs": port}}
    flags = victorialogs_flags(spec, native_runtime(data.parent), str(data))
    process = subprocess.Popen([str(binary_path("victoria-logs")), *flags],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _ingest(port: int, batch: str, count: int) -> None:
    lines = "".join(json.dumps({"msg": f"line {i}", "batch": batch, "service": "durability"}) + "\n"
                    for i in range(count))
    query = urllib.parse.urlencode({"_stream_fields": "service", "_msg_field": "msg"})
    request = urllib.request.Request(f"http://127.0.0.1:{port}/insert/jsonline?{query}",
                                     data=lines.encode(), method="POST",
                                     headers={"Content-Type": "application/stream+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def _count(port: int, batch: str) -> int:
    body = urllib.parse.urlencode({"query": f"batch:={json.dumps(batch)} | stats count() as n"}).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/select/logsql/query", data=body,
                                timeout=30) as response:
        rows = [json.loads(line) for line in response.read().splitlines() if line.strip()]
    return int(rows[0]["n"]) if rows else 0


def test_a_graceful_stop_keeps_every_acknowledged_line(tmp_path: Path) -> None:
    port, data = _free_port(), tmp_path / "data" / "victorialogs"
    with victorialogs(data, port) as process:
        _ingest(port, "graceful", 5000)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    with victorialogs(data, port):
        assert _count(port, "graceful") == 5000


def _rows_on_disk(port: int) -> int:
    """Rows in VictoriaLogs' file parts (its own metrics: past the in-memory parts)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(int(float(line.split()[-1])) for line in text.splitlines()
               if line.startswith(('vl_storage_rows{type="storage/small"}',
                                   'vl_storage_rows{type="storage/big"}')))


def test_a_sigkill_keeps_every_line_flushed_to_disk(tmp_path: Path) -> None:
    port, data = _free_port(), tmp_path / "data" / "victorialogs"
    with victorialogs(data, port) as process:
        _ingest(port, "flushed", 5000)
        ingested = time.monotonic()
        # Insert buffers, then in-memory parts for the flush interval; a loaded machine stretches
        # both, so the bound is generous and the time taken is printed.
        assert wait_until(lambda: _rows_on_disk(port) >= 5000, FLUSH_SECONDS * 30, every=0.2)
        on_disk_after = time.monotonic() - ingested
        _ingest(port, "in-memory", 5000)
        process.kill()
        process.wait(timeout=30)
    with victorialogs(data, port):
        assert _count(port, "flushed") == 5000
        kept = _count(port, "in-memory")
    print(f"5000 lines reached disk {on_disk_after:.1f}s after their insert "
          f"(flush interval {FLUSH_SECONDS:g}s); a SIGKILL right after ingesting 5000 more kept "
          f"{kept} of those")
