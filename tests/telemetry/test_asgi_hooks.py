"""The distro's ASGI hooks: correlation IDs for FastAPI with no middleware, undone with the request.

A FastAPI app under ``FastAPIInstrumentor`` with the hooks, called through httpx's ASGI transport
in this task (as a server's connection task serves request after request), no network.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fastapi
import httpx
import pytest
from fastapi.responses import StreamingResponse
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from theodore_telemetry import CorrelationIdASGIMiddleware, current_correlation_id
from theodore_telemetry.correlation import (
    SPAN_ATTRIBUTE,
    bind_in_context,
)
from theodore_telemetry.framework_hooks import asgi_hooks

HEADER = "X-Correlation-ID"


def _app(provider: TracerProvider, seen: list[dict[str, Any]], middleware: bool = False) -> fastapi.FastAPI:
    app = fastapi.FastAPI()

    @app.get("/")
    async def index() -> dict[str, str]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # what an instrumented httpx call would send
        with trace.get_tracer("test", tracer_provider=provider).start_as_current_span("child"):
            pass
        seen.append({"cid": current_correlation_id(), "baggage": carrier.get("baggage")})
        return {"ok": "yes"}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for number in range(3):
                seen.append({"cid": current_correlation_id()})
                yield f"chunk {number}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    if middleware:
        app.add_middleware(CorrelationIdASGIMiddleware)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, meter_provider=NoOpMeterProvider(),
                                       **asgi_hooks())
    return app


@pytest.fixture
def app(provider: TracerProvider, seen: list[dict[str, Any]]) -> Iterator[fastapi.FastAPI]:
    app = _app(provider, seen)
    yield app
    FastAPIInstrumentor.uninstrument_app(app)


def _calls(app: fastapi.FastAPI, *requests: tuple[str, dict[str, str]]) -> list[httpx.Response]:
    """The requests one after another in one task, then what that task's context holds."""
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            responses = [await client.get(path, headers=headers) for path, headers in requests]
        assert current_correlation_id() is None
        assert baggage.get_all() == {}
        return responses

    return asyncio.run(run())


def _is_uuid4(text: str) -> bool:
    try:
        return uuid.UUID(text).version == 4
    except ValueError:
        return False


def test_the_header_is_bound_for_spans_and_baggage_echoed_and_undone(
        app: fastapi.FastAPI, seen: list[dict[str, Any]], exporter: InMemorySpanExporter) -> None:
    (response,) = _calls(app, ("/", {HEADER: "req-7"}))
    assert response.headers.get_list(HEADER) == ["req-7"]
    assert seen == [{"cid": "req-7", "baggage": "correlation_id=req-7"}]
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert spans["GET /"].kind == trace.SpanKind.SERVER
    assert spans["GET /"].attributes[SPAN_ATTRIBUTE] == "req-7"
    assert spans["child"].attributes[SPAN_ATTRIBUTE] == "req-7"


def test_requests_in_one_task_do_not_leak_and_unsafe_ids_are_replaced(
        app: fastapi.FastAPI, seen: list[dict[str, Any]]) -> None:
    responses = _calls(app, ("/", {HEADER: "first"}), ("/", {}), ("/", {HEADER: "bad id"}), ("/", {HEADER: "x" * 300}),
                       ("/", {"baggage": "correlation_id=upstream"}))
    echoed = [response.headers[HEADER] for response in responses]
    assert echoed[0] == "first" and echoed[4] == "upstream"
    assert all(_is_uuid4(cid) for cid in echoed[1:4]) and len(set(echoed)) == 5
    assert [s["cid"] for s in seen] == echoed


def test_a_streamed_body_is_passed_through_with_the_id_bound_while_it_streams(
        app: fastapi.FastAPI, seen: list[dict[str, Any]]) -> None:
    (response,) = _calls(app, ("/stream", {HEADER: "streamed"}))
    assert response.text == "chunk 0\nchunk 1\nchunk 2\n"
    assert response.headers.get_list(HEADER) == ["streamed"] and "content-length" not in response.headers
    assert [s["cid"] for s in seen] == ["streamed"] * 3


def test_the_apps_own_middleware_keeps_one_header_and_the_same_id(
        provider: TracerProvider, seen: list[dict[str, Any]]) -> None:
    app = _app(provider, seen, middleware=True)
    try:
        given, absent = _calls(app, ("/", {HEADER: "mine"}), ("/", {}))
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    assert given.headers.get_list(HEADER) == ["mine"]
    (fresh,) = absent.headers.get_list(HEADER)
    assert [s["cid"] for s in seen] == ["mine", fresh]


def test_bind_in_context_is_undone_by_detaching_what_was_attached_before_it() -> None:
    span = trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
    token = otel_context.attach(otel_context.get_current())
    assert bind_in_context(span, b"bound-1") == "bound-1"
    assert current_correlation_id() == "bound-1" and baggage.get_baggage("correlation_id") == "bound-1"
    assert bind_in_context(span, b"other") == "bound-1"  # already bound: kept
    otel_context.detach(token)
    assert current_correlation_id() is None and baggage.get_all() == {}
