"""Seed 003's tracing helpers: spans for research, AI, scraping and storage operations.

Each helper works with ``with`` and ``async with``; an exception is recorded on the span,
which is marked as an error, and then re-raised.
"""

from __future__ import annotations

import functools
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

TRACER_NAME = "theodore_telemetry"


@functools.lru_cache(maxsize=4)
def _tracer_of(provider: trace.TracerProvider) -> trace.Tracer:
    return provider.get_tracer(TRACER_NAME)


def _tracer() -> trace.Tracer:
    """Our tracer from the current provider, looked up once per provider (``get_tracer`` builds
    an instrumentation scope each call)."""
    return _tracer_of(trace.get_tracer_provider())


class _OperationSpan:
    def __init__(self, name: str, attributes: dict[str, Any], kind: trace.SpanKind) -> None:
        self._name, self._kind = name, kind
        self._attributes = {k: v for k, v in attributes.items() if v is not None}
        self._scope: Any = None

    def __enter__(self) -> Span:
        self._scope = _tracer().start_as_current_span(
            self._name, kind=self._kind, attributes=self._attributes)
        return self._scope.__enter__()

    def __exit__(self, *exc_info: Any) -> Any:
        return self._scope.__exit__(*exc_info)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> Any:
        return self.__exit__(*exc_info)


def trace_research_operation(company: str, research_type: str = "full") -> _OperationSpan:
    return _OperationSpan("research.company", {"theodore.company": company,
                                                "theodore.research_type": research_type},
                          trace.SpanKind.INTERNAL)


def trace_ai_operation(provider: str, model: str, operation: str) -> _OperationSpan:
    """GenAI semantic conventions, so AI spans look alike whether ours or an instrumentation's."""
    return _OperationSpan(f"{operation} {model}", {"gen_ai.system": provider,
                                                   "gen_ai.request.model": model,
                                                   "gen_ai.operation.name": operation},
                          trace.SpanKind.CLIENT)


def trace_scraping_operation(url: str, depth: int | None = None) -> _OperationSpan:
    return _OperationSpan("scrape", {"url.full": url, "theodore.scrape.depth": depth},
                          trace.SpanKind.INTERNAL)


def trace_storage_operation(storage_type: str, operation: str) -> _OperationSpan:
    return _OperationSpan(f"{operation} {storage_type}", {"db.system.name": storage_type,
                                                          "db.operation.name": operation},
                          trace.SpanKind.CLIENT)
