"""Correlation IDs with no app code: the hooks the ``theodore`` distro gives the web-framework
instrumentations ``opentelemetry-instrument`` loads.

Per request, as ``CorrelationIdWSGIMiddleware`` would: the ``X-Correlation-ID`` header
(``THEODORE_CORRELATION_HEADER``), else the upstream ``correlation_id`` baggage entry, else a
new UUID4 (``accepted_id`` decides what is safe) is bound for the request's logs (the context
variable), its server span and every child (``theodore.correlation_id``) and its downstream
calls (baggage), and echoed in the response. An app that wraps itself in the middleware keeps
the middleware's ID: the hooks then bind it no second time and leave the echo to the
middleware, but put its baggage entry back (the instrumentation's context, extracted from the
request headers alone, drops the one the middleware set).

The binding is undone where the instrumentation undoes the span's activation, in the reverse
order it was made, so nothing is left on a server thread for its next request.

Flask (``opentelemetry-instrumentation-flask`` 0.66b1) calls ``request_hook(span, environ)``
after attaching the extracted context and before activating the span, and tears down by
exiting the activation, then detaching the extracted context. The request hook binds; the
response hook (at ``start_response``, or Flask's ``got_request_exception`` when an exception
goes through to the server) appends the header and wraps the activation so that the binding
is undone right after it exits.

ASGI (FastAPI, Starlette: ``OpenTelemetryMiddleware`` 0.66b1) calls ``server_request_hook(span,
scope)`` inside the server span's activation, and ``client_response_hook(span, scope, message)``
before each message the app sends. The request hook binds with ``bind_in_context``: the
activation's own detach, when the request ends, restores the context from before the request
and so undoes the binding too. The response hook echoes the header on ``http.response.start``
(replacing one the app's own middleware set: same ID) and passes every other message, a
streamed body's chunks and websocket frames, as it is.

Celery (``opentelemetry-instrumentation-celery``) has no hooks: ``celery_after_instrument``
connects a ``task_prerun`` receiver after the instrumentation's own, which binds the ID the task
message carried in its baggage (the instrumentation propagates it with the trace) while the task
span is active; the instrumentation's ``task_postrun`` detach undoes it. A pool process flushes
its telemetry at ``worker_process_shutdown``: Celery's prefork pool ends its processes with
``os._exit``, which skips the SDK's exit handlers. And a ``setup_logging`` receiver keeps the
worker's logging as the configurator set it up (JSON lines, shipped over OTLP): Celery
replaces the root logger's handlers unless some receiver of that signal does the setup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from .correlation import (
    RequestBinding,
    accepted_id,
    bind_in_context,
    bind_request,
    correlation_header,
    wsgi_environ_key,
)

Hook = Callable[..., None]

_BINDING_KEY = "theodore.correlation_binding"
"""Where the Flask hooks keep the request's ``RequestBinding`` in the WSGI environ."""

_SCOPE_KEY = "theodore.correlation_id"
"""Where the ASGI hooks keep the request's correlation ID in the ASGI scope."""


class _UnbindAfterExit:
    """A span activation (a context manager) that undoes the binding once it has exited."""

    def __init__(self, activation: Any, binding: RequestBinding) -> None:
        self._activation, self._binding = activation, binding

    def __enter__(self) -> Any:
        return self._activation.__enter__()

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._activation.__exit__(*exc_info)
        finally:
            self._binding.close()


def _flask_unbind_after_activation(environ: dict[str, Any]) -> None:
    from opentelemetry.instrumentation.flask import _ENVIRON_ACTIVATION_KEY  # noqa: PLC0415

    binding = environ.get(_BINDING_KEY)
    activation = environ.get(_ENVIRON_ACTIVATION_KEY)
    if binding is None or isinstance(activation, _UnbindAfterExit):
        return
    if activation is None:  # no activation to follow: nothing above the binding to undo first
        binding.close()
    else:
        environ[_ENVIRON_ACTIVATION_KEY] = _UnbindAfterExit(activation, binding)


def _flask_on_exception(sender: object, **extra: Any) -> None:
    import flask  # noqa: PLC0415

    if flask.has_request_context():
        _flask_unbind_after_activation(flask.request.environ)


def flask_hooks() -> dict[str, Hook]:
    """``request_hook`` and ``response_hook`` for ``FlaskInstrumentor().instrument(...)``."""
    import flask  # noqa: PLC0415

    header = correlation_header()
    environ_key, lowered = wsgi_environ_key(header), header.lower()
    flask.got_request_exception.connect(_flask_on_exception, weak=False)

    def request_hook(span: trace.Span, environ: dict[str, Any]) -> None:
        environ[_BINDING_KEY] = bind_request(span, accepted_id(environ.get(environ_key)))

    def response_hook(span: trace.Span, status: str, response_headers: list[tuple[str, str]]) -> None:
        if not flask.has_request_context():
            return
        environ = flask.request.environ
        binding = environ.get(_BINDING_KEY)
        if binding is None:
            return
        if binding.owned:  # else the app's middleware echoes its own ID
            response_headers[:] = [(k, v) for k, v in response_headers if k.lower() != lowered]
            response_headers.append((header, binding.correlation_id))
        _flask_unbind_after_activation(environ)

    return {"request_hook": request_hook, "response_hook": response_hook}


def asgi_hooks() -> dict[str, Hook]:
    """``server_request_hook`` and ``client_response_hook`` for the FastAPI and Starlette
    instrumentations (``OpenTelemetryMiddleware``)."""
    raw_header = correlation_header().lower().encode("latin-1")

    def server_request_hook(span: trace.Span, scope: dict[str, Any]) -> None:
        headers = scope.get("headers") or ()
        incoming = next((value for key, value in headers if key.lower() == raw_header), None)
        scope[_SCOPE_KEY] = bind_in_context(span, incoming)

    def client_response_hook(span: trace.Span, scope: dict[str, Any], message: dict[str, Any]) -> None:
        if message.get("type") != "http.response.start" or _SCOPE_KEY not in scope:
            return
        kept = [(k, v) for k, v in message.get("headers") or () if k.lower() != raw_header]
        message["headers"] = [*kept, (raw_header, scope[_SCOPE_KEY].encode("latin-1"))]

    return {"server_request_hook": server_request_hook, "client_response_hook": client_response_hook}


def _celery_bind_task(**_: Any) -> None:
    bind_in_context(trace.get_current_span(), None)


def _celery_flush_pool_process(**_: Any) -> None:
    from .lifecycle import flush_telemetry  # noqa: PLC0415

    flush_telemetry()


def _celery_keep_logging(**_: Any) -> None:
    """Logging is already set up (``logs.configure_logging``): Celery leaves it alone."""


def celery_after_instrument() -> None:
    """Connect the correlation binding (after the instrumentation's ``task_prerun``), the
    pool process's flush at exit and the logging setup Celery leaves alone."""
    from celery import signals  # noqa: PLC0415

    signals.setup_logging.connect(_celery_keep_logging, weak=False, dispatch_uid="theodore.logging")
    signals.task_prerun.connect(_celery_bind_task, weak=False, dispatch_uid="theodore.correlation")
    signals.worker_process_shutdown.connect(_celery_flush_pool_process, weak=False,
                                            dispatch_uid="theodore.flush")


def _chained(ours: Hook, theirs: Hook | None) -> Hook:
    """``ours``, then the hook the caller passed (if any), with the same arguments."""
    if theirs is None:
        return ours

    def both(*args: Any) -> None:
        ours(*args)
        theirs(*args)

    return both


FRAMEWORK_HOOKS: dict[str, Callable[[], dict[str, Hook]]] = {
    "flask": flask_hooks, "fastapi": asgi_hooks, "starlette": asgi_hooks}
"""Instrumentation entry-point name → the correlation hooks for its ``instrument`` call."""

AFTER_INSTRUMENT: dict[str, Callable[[], None]] = {"celery": celery_after_instrument}
"""Instrumentation entry-point name → what to connect once it is instrumented (no hooks)."""


def with_correlation_hooks(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for instrumentation ``name`` with our hooks added; a hook the caller passed
    is kept and runs after ours."""
    make = FRAMEWORK_HOOKS.get(name)
    if make is None:
        return kwargs
    hooks = make()
    return {**kwargs, **{key: _chained(hook, kwargs.get(key)) for key, hook in hooks.items()}}


def after_instrument(name: str) -> None:
    """What instrumentation ``name`` needs from us once it has instrumented (Celery's signals)."""
    connect = AFTER_INSTRUMENT.get(name)
    if connect is not None:
        connect()
