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

The header's name is ``X-Correlation-ID`` unless ``THEODORE_CORRELATION_HEADER`` names another
(or a middleware is given ``header=``). ``bind_request`` (WSGI) and ``bind_in_context`` (ASGI,
Celery) are what the ``theodore`` distro's framework hooks (``framework_hooks.py``) use to do
all this with no middleware.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import Span, SpanProcessor

DEFAULT_HEADER = "X-Correlation-ID"
HEADER_ENV = "THEODORE_CORRELATION_HEADER"
"""Names the correlation header, for the middlewares' default and the distro's hooks."""
BAGGAGE_KEY = "correlation_id"
SPAN_ATTRIBUTE = "theodore.correlation_id"

MAX_ID_LENGTH = 128
_SAFE_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_ID_LENGTH}}}")

_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
_log = logging.getLogger(__name__)

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "theodore_correlation_id", default=None)

_CONTEXT_KEY = otel_context.create_key("theodore.correlation_id")
"""Where ``bind_in_context`` keeps the ID: in the OpenTelemetry context, beside the baggage."""


def current_correlation_id() -> str | None:
    """The ID bound by a middleware, ``correlation_scope`` or ``bind_request`` (a context
    variable), else the one ``bind_in_context`` put in the current OpenTelemetry context."""
    return _correlation_id.get() or otel_context.get_value(_CONTEXT_KEY)  # type: ignore[return-value]


def correlation_header() -> str:
    """``THEODORE_CORRELATION_HEADER`` if it is a valid header name, else ``X-Correlation-ID``."""
    name = os.environ.get(HEADER_ENV, "").strip()
    if not name:
        return DEFAULT_HEADER
    if not _HEADER_NAME.fullmatch(name):
        _log.warning("%s is not a header name; using %s", HEADER_ENV, DEFAULT_HEADER)
        return DEFAULT_HEADER
    return name


def wsgi_environ_key(header: str) -> str:
    """Where a WSGI server puts request header ``header`` in the environ."""
    return "HTTP_" + header.upper().replace("-", "_")


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


class RequestBinding:
    """One request's correlation ID as ``bind_request`` bound it; ``close`` undoes it (once).

    ``owned`` is False when an ID was already bound (the app's own middleware ran first): the
    binding then only restored its baggage entry, and the middleware echoes the header."""

    __slots__ = ("_cv_token", "_otel_token", "correlation_id", "owned")

    def __init__(self, correlation_id: str, cv_token: contextvars.Token[str | None] | None,
                 otel_token: object) -> None:
        self.correlation_id, self.owned = correlation_id, cv_token is not None
        self._cv_token, self._otel_token = cv_token, otel_token

    def close(self) -> None:
        """Detach the baggage context, then reset the context variable (the reverse order of
        ``bind_request``); call it once the request span's own activation has exited."""
        otel_token, self._otel_token = self._otel_token, None
        cv_token, self._cv_token = self._cv_token, None
        try:
            if otel_token is not None:
                otel_context.detach(otel_token)  # type: ignore[arg-type]
        finally:
            if cv_token is not None:
                _correlation_id.reset(cv_token)


def bind_request(span: trace.Span, incoming: object) -> RequestBinding:
    """Bind a request's correlation ID as the middlewares do: ``incoming`` (the header's value)
    if ``accepted_id`` lets it through, else the upstream ``correlation_id`` baggage entry if
    safe, else a new UUID4; tag ``span`` (the request's server span) with it.

    When an ID is already bound (the app's own middleware ran first) that ID wins and is not
    bound again; only its baggage entry is put back if the instrumentation's context (extracted
    from the request's headers alone) lost it."""
    bound = _correlation_id.get()
    cid = bound or accepted_id(incoming) or accepted_id(baggage.get_baggage(BAGGAGE_KEY)) or str(uuid.uuid4())
    cv_token = None if bound else _correlation_id.set(cid)
    otel_token = None
    if baggage.get_baggage(BAGGAGE_KEY) != cid:
        otel_token = otel_context.attach(baggage.set_baggage(BAGGAGE_KEY, cid))
    if span.is_recording():
        span.set_attribute(SPAN_ATTRIBUTE, cid)
    return RequestBinding(cid, cv_token, otel_token)


def bind_in_context(span: trace.Span, incoming: object) -> str:
    """Bind a request's (or task's) correlation ID, chosen as ``bind_request`` chooses it, by
    attaching an OpenTelemetry context that holds it and its baggage entry; tag ``span``.

    For instrumentations that activate their span with a context token they detach themselves
    when the request ends (ASGI, Celery): that detach restores the context from before the
    request, so this binding, attached on top, needs no undoing of its own and no hook after
    the app. Nothing is attached when the same ID is already current."""
    cid = current_correlation_id() or accepted_id(incoming) or accepted_id(baggage.get_baggage(BAGGAGE_KEY)) \
        or str(uuid.uuid4())
    if otel_context.get_value(_CONTEXT_KEY) != cid or baggage.get_baggage(BAGGAGE_KEY) != cid:
        otel_context.attach(otel_context.set_value(_CONTEXT_KEY, cid, baggage.set_baggage(BAGGAGE_KEY, cid)))
    if span.is_recording():
        span.set_attribute(SPAN_ATTRIBUTE, cid)
    return cid


class CorrelationIdSpanProcessor(SpanProcessor):
    """Tags every span started under a correlation ID with it, including the server span a
    framework instrumentation opens inside the middleware (the ``theodore`` configurator adds it).
    """

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        correlation_id = _correlation_id.get() or otel_context.get_value(_CONTEXT_KEY, parent_context)
        if correlation_id:
            span.set_attribute(SPAN_ATTRIBUTE, correlation_id)


class CorrelationIdASGIMiddleware:
    """ASGI middleware; wrap the app: ``app = CorrelationIdASGIMiddleware(app)``."""

    def __init__(self, app: Callable[..., Any], header: str | None = None) -> None:
        self.app, self.header = app, header or correlation_header()
        self._raw_header = self.header.lower().encode("latin-1")

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

    def __init__(self, app: Callable[..., Iterable[bytes]], header: str | None = None) -> None:
        self.app, self.header = app, header or correlation_header()
        self._environ_key = wsgi_environ_key(self.header)

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
