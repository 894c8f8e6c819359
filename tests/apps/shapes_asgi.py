"""An unmodified FastAPI app for uvicorn: no observability code of ours.

- ``GET /work?marker=M``: as the WSGI app (shapes_wsgi.py): a prometheus_client count, a log
  line naming the marker and the process, the process id back.
- ``GET /downstream?marker=M``: calls this server's ``/echo-headers`` with httpx and returns the
  headers that call carried (traceparent, baggage).
- ``GET /stream?marker=M&release=PATH``: a streamed body; the second chunk waits (up to 10 s)
  until the file PATH exists and says whether it did, so a client that creates PATH once it has
  read the first chunk reads ``second released`` only if nothing buffered the first.
- ``WS /ws``: answers each text frame with ``echo <text>``.
- ``POST /enqueue?marker=M``: queues the Celery task ``shapes.record`` (shapes_tasks.py).
"""

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse
from prometheus_client import Counter

REQUESTS = Counter("shapes_requests", "Requests served.", ["route"])

log = logging.getLogger("shapes_asgi")
app = FastAPI()


@app.get("/work")
async def work(marker: str) -> dict:
    await asyncio.sleep(0.03)
    REQUESTS.labels(route="/work").inc()
    log.info("work %s pid=%s", marker, os.getpid())
    return {"pid": os.getpid()}


@app.get("/echo-headers")
async def echo_headers(request: Request) -> dict:
    return dict(request.headers)


@app.get("/downstream")
async def downstream(marker: str, request: Request) -> dict:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{request.base_url}echo-headers")
    log.info("downstream %s", marker)
    return {"pid": os.getpid(), "downstream": answer.json()}


@app.get("/stream")
async def stream(marker: str, release: str) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        log.info("stream start %s", marker)
        yield b"first\n"
        deadline = time.monotonic() + 10
        while not Path(release).exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        log.info("stream end %s", marker)
        yield b"second released\n" if Path(release).exists() else b"second timed out\n"

    return StreamingResponse(chunks(), media_type="text/plain")


@app.websocket("/ws")
async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    log.info("ws %s", text)
    await websocket.send_text(f"echo {text}")
    await websocket.close()


@app.post("/enqueue")
def enqueue(marker: str) -> dict:
    from shapes_tasks import record

    record.delay(marker)
    log.info("enqueued %s", marker)
    return {"pid": os.getpid()}
