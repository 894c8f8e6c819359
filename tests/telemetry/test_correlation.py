"""Correlation IDs through WSGI and ASGI: read or created, logged, propagated, echoed."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid

import pytest
import structlog
from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from theodore_telemetry import (
    CorrelationIdASGIMiddleware,
    CorrelationIdWSGIMiddleware,
    configure_logging,
    correlation_scope,
    current_correlation_id,
)
from theodore_telemetry.correlation import (
    SPAN_ATTRIBUTE,
    CorrelationIdSpanProcessor,
)


def _wsgi_app(seen: list):
    def app(environ, start_response):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        seen.append((current_correlation_id(), carrier.get("baggage")))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    return app


def _call_wsgi(app, headers: dict[str, str]) -> dict[str, str]:
    response: dict[str, str] = {}

    def start_response(status, headers_out, *exc):
        response.update(headers_out)

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/",
               **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}}
    body = app(environ, start_response)
    try:
        assert b"".join(body) == b"ok"
    finally:
        body.close()  # as every WSGI server does
    return response


def test_wsgi_reads_binds_propagates_and_echoes_the_header() -> None:
    seen: list = []
    app = CorrelationIdWSGIMiddleware(_wsgi_app(seen))
    response = _call_wsgi(app, {"X-Correlation-ID": "abc-123"})
    assert response["X-Correlation-ID"] == "abc-123"
    assert seen == [("abc-123", "correlation_id=abc-123")]
    assert current_correlation_id() is None


def test_wsgi_creates_an_id_when_none_comes_in_and_honours_a_custom_header() -> None:
    seen: list = []
    app = CorrelationIdWSGIMiddleware(_wsgi_app(seen), header="X-Request-ID")
    created = _call_wsgi(app, {})["X-Request-ID"]
    assert uuid.UUID(created) and seen[0][0] == created
    assert _call_wsgi(app, {"X-Request-ID": "given"})["X-Request-ID"] == "given"


def test_wsgi_streams_the_body_with_the_id_bound_until_the_server_closes_it() -> None:
    events: list[str] = []

    def streaming_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])

        def chunks():
            try:
                for n in range(3):
                    events.append(f"yield {n}")
                    yield f"{current_correlation_id()}:{n};".encode()
            finally:
                events.append("app closed")
        return chunks()

    app = CorrelationIdWSGIMiddleware(streaming_app)
    body = app({"REQUEST_METHOD": "GET", "HTTP_X_CORRELATION_ID": "s-1"}, lambda *args: None)
    chunks = iter(body)
    assert next(chunks) == b"s-1:0;" and events == ["yield 0"]  # passed on, not buffered
    assert next(chunks) == b"s-1:1;"
    body.close()  # a client gone mid-stream: the server closes early
    assert events == ["yield 0", "yield 1", "app closed"]
    assert current_correlation_id() is None


def test_wsgi_unbinds_the_id_when_the_app_raises() -> None:
    def failing_app(environ, start_response):
        raise RuntimeError("boom")

    app = CorrelationIdWSGIMiddleware(failing_app)
    with pytest.raises(RuntimeError, match="boom"):
        app({"REQUEST_METHOD": "GET", "HTTP_X_CORRELATION_ID": "f-1"}, lambda *args: None)
    assert current_correlation_id() is None


def test_asgi_echoes_and_binds() -> None:
    seen: list[str | None] = []
    sent: list[dict] = []

    async def app(scope, receive, send):
        seen.append(current_correlation_id())
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-correlation-id", b"stale")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    scope = {"type": "http", "headers": [(b"x-correlation-id", b"from-client")]}
    asyncio.run(CorrelationIdASGIMiddleware(app)(scope, receive, send))
    assert seen == ["from-client"]
    assert sent[0]["headers"] == [(b"x-correlation-id", b"from-client")]


def test_spans_started_inside_the_scope_are_tagged() -> None:
    provider = TracerProvider()
    provider.add_span_processor(CorrelationIdSpanProcessor())
    tracer = provider.get_tracer("t")
    with correlation_scope("inner-cid"), tracer.start_as_current_span("server") as span:
        pass
    with tracer.start_as_current_span("outside") as outside:
        pass
    assert span.attributes[SPAN_ATTRIBUTE] == "inner-cid"
    assert SPAN_ATTRIBUTE not in outside.attributes


def test_scope_sets_the_span_attribute_and_falls_back_to_baggage() -> None:
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("server") as span, correlation_scope("span-cid"):
        pass
    assert span.attributes[SPAN_ATTRIBUTE] == "span-cid"
    with correlation_scope("upstream"), correlation_scope() as inherited:
        assert inherited == "upstream"


UNSAFE_IDS = ["x" * 129, "", " ", "abc def", "abc\r\nSet-Cookie: session=stolen", "abc\nforged",
              "abc\r", "caf\u00e9", "id\u2028x", "a/b", "a;b", "<script>", "id\x00", "Bearer abcdefghijklmnop"]
# A uuid4 written out: every test worker must collect the same test ids.
SAFE_IDS = ["abc-123", "x" * 128, "req:42.7_a-B", "8b0ff451-1b8c-4ae1-9f19-349d5c342b5f"]


def _asgi_call(headers: list[tuple[bytes, bytes]]) -> tuple[list[str | None], list[tuple[bytes, bytes]]]:
    seen: list[str | None] = []
    sent: list[dict] = []

    async def app(scope, receive, send):
        seen.append(current_correlation_id())
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    asyncio.run(CorrelationIdASGIMiddleware(app)({"type": "http", "headers": headers}, receive, send))
    return seen, sent[0]["headers"]


def _is_fresh_uuid4(value: str) -> bool:
    return uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value


@pytest.mark.parametrize("bad", UNSAFE_IDS)
def test_wsgi_replaces_an_unsafe_header_with_a_fresh_uuid4(bad: str) -> None:
    seen: list = []
    response = _call_wsgi(CorrelationIdWSGIMiddleware(_wsgi_app(seen)), {"X-Correlation-ID": bad})
    echoed = response["X-Correlation-ID"]
    assert echoed != bad and _is_fresh_uuid4(echoed)
    assert seen[0][0] == echoed and "\r" not in seen[0][1] and "\n" not in seen[0][1]


@pytest.mark.parametrize("bad", UNSAFE_IDS)
def test_asgi_replaces_an_unsafe_header_with_a_fresh_uuid4(bad: str) -> None:
    raw = bad.encode("utf-8")
    seen, headers = _asgi_call([(b"x-correlation-id", raw)])
    (name, echoed), = headers
    assert name == b"x-correlation-id" and echoed != raw
    assert _is_fresh_uuid4(echoed.decode()) and seen == [echoed.decode()]
    assert b"\r" not in echoed and b"\n" not in echoed


@pytest.mark.parametrize("good", SAFE_IDS)
def test_safe_ids_pass_through_both_middlewares(good: str) -> None:
    assert _call_wsgi(CorrelationIdWSGIMiddleware(_wsgi_app([])), {"X-Correlation-ID": good}) == {
        "Content-Type": "text/plain", "X-Correlation-ID": good}
    assert _asgi_call([(b"x-correlation-id", good.encode())]) == ([good], [(b"x-correlation-id", good.encode())])


@pytest.mark.parametrize("bad", ["abc\r\nX-Evil: 1", "y" * 200, "has space"])
def test_an_unsafe_id_from_baggage_is_replaced(bad: str) -> None:
    token = otel_context.attach(baggage.set_baggage("correlation_id", bad))
    try:
        seen: list = []
        echoed = _call_wsgi(CorrelationIdWSGIMiddleware(_wsgi_app(seen)), {})["X-Correlation-ID"]
        asgi_seen, _ = _asgi_call([])
    finally:
        otel_context.detach(token)
    assert _is_fresh_uuid4(echoed) and seen[0][0] == echoed
    assert _is_fresh_uuid4(asgi_seen[0]) and asgi_seen[0] != echoed


def test_a_safe_id_from_baggage_is_inherited() -> None:
    token = otel_context.attach(baggage.set_baggage("correlation_id", "upstream-7"))
    try:
        assert _call_wsgi(CorrelationIdWSGIMiddleware(_wsgi_app([])), {})["X-Correlation-ID"] == "upstream-7"
    finally:
        otel_context.detach(token)


def test_crlf_in_the_header_never_reaches_a_log_line() -> None:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(service="svc", environment="test", otlp=False, stream=stream)

    def app(environ, start_response):
        structlog.get_logger("app").info("handled")
        logging.getLogger("lib").warning("library line")
        start_response("200 OK", [])
        return [b"ok"]

    try:
        _call_wsgi(CorrelationIdWSGIMiddleware(app), {"X-Correlation-ID": "a\r\nforged: line"})
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
        structlog.reset_defaults()
    raw = stream.getvalue()
    lines = [json.loads(line) for line in raw.splitlines()]
    assert [r["message"] for r in lines] == ["handled", "library line"]
    assert all(_is_fresh_uuid4(r["correlation_id"]) for r in lines)
    assert "forged" not in raw and "\\r" not in raw
