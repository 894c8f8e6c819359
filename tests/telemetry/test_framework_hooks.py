"""The distro's Flask hooks: correlation IDs bound, propagated and echoed with no middleware.

A Flask app under ``FlaskInstrumentor`` with the hooks, driven by werkzeug's test client in this
thread (as a server thread serves one request after another), no network.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from theodore_telemetry import CorrelationIdWSGIMiddleware, current_correlation_id
from theodore_telemetry.correlation import (
    HEADER_ENV,
    SPAN_ATTRIBUTE,
)
from theodore_telemetry.distro import TheodoreDistro
from theodore_telemetry.framework_hooks import flask_hooks, with_correlation_hooks

HEADER = "X-Correlation-ID"


def _app(provider: TracerProvider, seen: list[dict[str, Any]], hooks: dict[str, Any] | None = None,
         middleware: bool = False) -> Iterator[flask.Flask]:
    app = flask.Flask("hooked")

    @app.route("/")
    def index() -> str:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # what an instrumented requests/httpx call would send
        with trace.get_tracer("test", tracer_provider=provider).start_as_current_span("child"):
            pass
        seen.append({"cid": current_correlation_id(), "baggage": carrier.get("baggage")})
        return "ok"

    @app.route("/boom")
    def boom() -> str:
        seen.append({"cid": current_correlation_id()})
        raise RuntimeError("boom")

    FlaskInstrumentor().instrument_app(app, tracer_provider=provider, meter_provider=NoOpMeterProvider(),
                                       **(hooks if hooks is not None else flask_hooks()))
    if middleware:
        app.wsgi_app = CorrelationIdWSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    try:
        yield app
    finally:
        FlaskInstrumentor().uninstrument_app(app)


@pytest.fixture
def app(provider: TracerProvider, seen: list[dict[str, Any]]) -> Iterator[flask.Flask]:
    yield from _app(provider, seen)


def _is_uuid4(text: str) -> bool:
    try:
        return uuid.UUID(text).version == 4
    except ValueError:
        return False


def _spans(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_the_header_is_bound_for_logs_spans_and_baggage_and_echoed(
        app: flask.Flask, seen: list[dict[str, Any]], exporter: InMemorySpanExporter) -> None:
    before = otel_context.get_current()
    response = app.test_client().get("/", headers={HEADER: "req-42"})
    assert response.status_code == 200
    assert response.headers.getlist(HEADER) == ["req-42"]
    assert seen == [{"cid": "req-42", "baggage": "correlation_id=req-42"}]
    spans = _spans(exporter)
    assert spans["GET /"].kind == trace.SpanKind.SERVER
    assert spans["GET /"].attributes[SPAN_ATTRIBUTE] == "req-42"
    assert spans["child"].attributes[SPAN_ATTRIBUTE] == "req-42"
    assert spans["child"].parent.span_id == spans["GET /"].context.span_id
    # Undone at the end of the request: nothing left for this thread's next one.
    assert current_correlation_id() is None
    assert otel_context.get_current() == before


@pytest.mark.parametrize("incoming", [None, "", "a\r\nSet-Cookie: x=1", "x" * 300, "bad id", "é"])
def test_absent_or_unsafe_headers_get_a_fresh_uuid4(app: flask.Flask, seen: list[dict[str, Any]],
                                                    exporter: InMemorySpanExporter,
                                                    incoming: str | None) -> None:
    environ = {} if incoming is None else {"HTTP_X_CORRELATION_ID": incoming}
    response = app.test_client().get("/", environ_base=environ)
    (echoed,) = response.headers.getlist(HEADER)
    assert _is_uuid4(echoed)
    assert seen == [{"cid": echoed, "baggage": f"correlation_id={echoed}"}]
    assert _spans(exporter)["GET /"].attributes[SPAN_ATTRIBUTE] == echoed


def test_sequential_requests_on_one_thread_do_not_leak(app: flask.Flask, seen: list[dict[str, Any]]) -> None:
    client = app.test_client()
    first = client.get("/", headers={HEADER: "first"}).headers[HEADER]
    second = client.get("/").headers[HEADER]
    third = client.get("/", headers={HEADER: "third"}).headers[HEADER]
    assert first == "first" and _is_uuid4(second) and third == "third"
    assert [s["cid"] for s in seen] == [first, second, third]
    assert [s["baggage"] for s in seen] == [f"correlation_id={cid}" for cid in (first, second, third)]
    assert current_correlation_id() is None
    assert baggage.get_all() == {}


def test_the_upstream_baggage_id_is_used_when_no_header(app: flask.Flask, seen: list[dict[str, Any]]) -> None:
    response = app.test_client().get("/", headers={"baggage": "correlation_id=from-upstream"})
    assert response.headers[HEADER] == "from-upstream"
    assert seen[0]["cid"] == "from-upstream"


def test_an_exception_through_to_the_server_leaves_nothing_bound(
        app: flask.Flask, seen: list[dict[str, Any]]) -> None:
    app.testing = True  # PROPAGATE_EXCEPTIONS: no response, the error reaches the server
    before = otel_context.get_current()
    with pytest.raises(RuntimeError):
        app.test_client().get("/boom", headers={HEADER: "boom-1"})
    assert seen == [{"cid": "boom-1"}]
    assert current_correlation_id() is None
    assert otel_context.get_current() == before


def test_a_handled_error_echoes_and_unbinds(app: flask.Flask, seen: list[dict[str, Any]]) -> None:
    response = app.test_client().get("/boom", headers={HEADER: "boom-2"})
    assert response.status_code == 500
    assert response.headers[HEADER] == "boom-2"
    assert current_correlation_id() is None


def test_under_an_active_span_the_request_span_is_internal_and_still_unbinds(
        app: flask.Flask, provider: TracerProvider, seen: list[dict[str, Any]]) -> None:
    with trace.get_tracer("outer", tracer_provider=provider).start_as_current_span("outer"):
        before = otel_context.get_current()
        assert app.test_client().get("/", headers={HEADER: "inner"}).headers[HEADER] == "inner"
        assert otel_context.get_current() == before
        assert current_correlation_id() is None


def test_the_explicit_middleware_wins_and_nothing_is_bound_twice(
        provider: TracerProvider, seen: list[dict[str, Any]], exporter: InMemorySpanExporter) -> None:
    for app in _app(provider, seen, middleware=True):
        response = app.test_client().get("/", headers={HEADER: "mw-1"})
        response.close()  # as a server does: the middleware unbinds when the body is closed
        assert response.headers.getlist(HEADER) == ["mw-1"]
        assert seen == [{"cid": "mw-1", "baggage": "correlation_id=mw-1"}]
        assert _spans(exporter)["GET /"].attributes[SPAN_ATTRIBUTE] == "mw-1"
        assert current_correlation_id() is None


def test_the_header_name_is_configurable(monkeypatch: pytest.MonkeyPatch, provider: TracerProvider,
                                         seen: list[dict[str, Any]]) -> None:
    monkeypatch.setenv(HEADER_ENV, "X-Request-ID")
    for app in _app(provider, seen):
        response = app.test_client().get("/", headers={"X-Request-ID": "rid-7", HEADER: "ignored"})
        assert response.headers.getlist("X-Request-ID") == ["rid-7"]
        assert HEADER not in response.headers
        assert seen[0]["cid"] == "rid-7"


def test_hooks_the_caller_passed_still_run(provider: TracerProvider, seen: list[dict[str, Any]]) -> None:
    calls: list[str] = []

    def request_hook(span: trace.Span, environ: dict[str, Any]) -> None:
        calls.append(f"request {current_correlation_id()}")

    def response_hook(span: trace.Span, status: str, headers: list[tuple[str, str]]) -> None:
        calls.append(f"response {dict(headers).get(HEADER)}")

    hooks = with_correlation_hooks("flask", {"request_hook": request_hook, "response_hook": response_hook,
                                             "excluded_urls": "x"})
    assert hooks["excluded_urls"] == "x"
    assert with_correlation_hooks("requests", {"a": 1}) == {"a": 1}
    for app in _app(provider, seen, hooks={k: v for k, v in hooks.items() if k.endswith("_hook")}):
        assert app.test_client().get("/", headers={HEADER: "mine"}).headers[HEADER] == "mine"
    assert calls == ["request mine", "response mine"]


def test_the_distro_gives_the_web_frameworks_the_hooks_and_other_instrumentations_none() -> None:
    given: dict[str, dict[str, Any]] = {}

    class EntryPoint:
        def __init__(self, name: str) -> None:
            self.name = name

        def load(self) -> type:
            name = self.name

            class Instrumentor:
                def instrument(self, **kwargs: Any) -> None:
                    given[name] = kwargs

            return Instrumentor

    for name in ("flask", "fastapi", "starlette", "requests"):
        TheodoreDistro().load_instrumentor(EntryPoint(name))
    assert callable(given["flask"]["request_hook"]) and callable(given["flask"]["response_hook"])
    for asgi in ("fastapi", "starlette"):
        assert {key for key in given[asgi] if key.endswith("_hook")} == {"server_request_hook",
                                                                         "client_response_hook"}
    assert not {key for key in given["requests"] if key.endswith("_hook")}
