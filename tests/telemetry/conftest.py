"""Fixtures of the framework hook tests: a tracer provider that tags and keeps its spans."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from theodore_telemetry.correlation import CorrelationIdSpanProcessor


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    """Correlation IDs tagged as the configurator does, finished spans kept in ``exporter``."""
    provider = TracerProvider()
    provider.add_span_processor(CorrelationIdSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def seen() -> list[dict[str, Any]]:
    """What the test app's handlers saw, request by request."""
    return []
