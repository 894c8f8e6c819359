"""Correlation IDs: read or create one per request, bind it to logs, spans and baggage.

The ASGI and WSGI middlewares read the ``X-Correlation-ID`` header (name configurable), fall
back to the ``correlation_id`` baggage entry an upstream service propagated, and otherwise
create a UUID4. While the request runs, the ID is in a context variable (logs pick it up),
on every span started meanwhile as ``theodore.correlation_id`` (and on the span already
active), and in baggage so instrumented HTTP clients carry it downstream; the response echoes
it in the same header.

An incoming ID (header or baggage) is used only if it is at most ``MAX_ID_LENGTH`` characters
of ``[A-Za-z0-9._:-]``: anything else (too long, empty, CR/LF, spaces, non-ASCII) is dropped
as if absent, and a UUID4 takes its place, so a client can't split a response header or
smuggle a secret or a forged line into the logs through it.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import Span, SpanProcessor

DEFAULT_HEADER = "X-Correlation-ID"
BAGGAGE_KEY = "correlation_id"
SPAN_ATTRIBUTE = "theodore.correlation_id"

MAX_ID_LENGTH = 128
_SAFE_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_ID_LENGTH}}}")

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "theodore_correlation_id", default=None)


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def accepted_id(candidate: object) -> str | None:
    """``candidate`` if it is a safe correlation ID (a ``str`` or latin-1 ``bytes`` of at
    most 128 characters of ``[A-Za-z0-9._:-]``), else None."""
    if isinstance(candidate, bytes):
        candidate = candidate.decode("latin-1")
    if isinstance(candidate, str) and _SAFE_ID.fullmatch(candidate):
        return candidate
    return None


@contextmanager
def correlation_scope(correlation_id: str | None = None) -> Iterator[str]:
    """Run a block under ``correlation_id`` (or the upstream one from baggage, if safe, or a
    new UUID4). The middlewares pass only an ID ``accepted_id`` let through; one passed by
    the application's own code is used as given (the log pipeline still redacts it)."""
    cid = str(correlation_id or accepted_id(baggage.get_baggage(BAGGAGE_KEY)) or uuid.uuid4())
    token = _correlation_id.set(cid)
    otel_token = otel_context.attach(baggage.set_baggage(BAGGAGE_KEY, cid))
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(SPAN_ATTRIBUTE, cid)
    try:
        yield cid
    finally:
        otel_context.detach(otel_token)
        _correlation_id.reset(token)


class CorrelationIdSpanProcessor(SpanProcessor):
    """Tags every span started under a correlation ID with it, including the server span a
    framework instrumentation opens inside the middleware (the ``theodore`` configurator adds it).
    """

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        correlation_id = _correlation_id.get()
        if correlation_id:
            span.set_attribute(SPAN_ATTRIBUTE, correlation_id)


class CorrelationIdASGIMiddleware:
    """ASGI middleware; wrap the app: ``app = CorrelationIdASGIMiddleware(app)``."""

    def __init__(self, app: Callable[..., Any], header: str = DEFAULT_HEADER) -> None:
        self.app, self.header = app, header
        self._raw_header = header.lower().encode("latin-1")

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(self._raw_header)
        with correlation_scope(accepted_id(incoming)) as cid:

            async def send_with_header(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != self._raw_header]
                    message = {**message, "headers": [*headers, (self._raw_header, cid.encode("latin-1"))]}
                await send(message)

            await self.app(scope, receive, send_with_header)


class CorrelationIdWSGIMiddleware:
    """WSGI middleware; wrap the app: ``app.wsgi_app = CorrelationIdWSGIMiddleware(app.wsgi_app)``.

    The ID stays bound until the server closes the response, so a streamed body is passed on
    chunk by chunk (not buffered) and what it logs while streaming carries the ID too.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], header: str = DEFAULT_HEADER) -> None:
        self.app, self.header = app, header
        self._environ_key = "HTTP_" + header.upper().replace("-", "_")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        scope = correlation_scope(accepted_id(environ.get(self._environ_key)))
        cid = scope.__enter__()

        def start_with_header(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            kept = [(k, v) for k, v in headers if k.lower() != self.header.lower()]
            return start_response(status, [*kept, (self.header, cid)], *exc_info)

        try:
            return _ScopedBody(self.app(environ, start_with_header), scope)
        except BaseException as error:
            scope.__exit__(type(error), error, error.__traceback__)
            raise


class _ScopedBody:
    """A WSGI response body that closes the request's correlation scope when the server closes
    it (PEP 3333 servers always call ``close``)."""

    def __init__(self, body: Iterable[bytes], scope: Any) -> None:
        self._body, self._scope = body, scope

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._scope.__exit__(None, None, None)
