"""The JSON pipeline: structlog and stdlib alike, trace ids, correlation ids, redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from theodore_telemetry import (
    LogCategory,
    configure_logging,
    correlation_scope,
    get_logger,
)
from theodore_telemetry.logs import TRACE


@pytest.fixture
def lines(monkeypatch) -> Iterator[io.StringIO]:
    """Logging configured to a buffer (no OTLP); restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    monkeypatch.setenv("THEODORE_LOG_LEVEL", "TRACE")
    stream = io.StringIO()
    configure_logging(service="svc", environment="test", otlp=False, stream=stream)
    yield stream
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    structlog.reset_defaults()


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_stdlib_logging_becomes_redacted_json(lines: io.StringIO) -> None:
    logging.getLogger("third.party").warning("login password=%s", "hunter2",
                                             extra={"api_key": "abc", "monkey": "banana"})
    (record,) = records(lines)
    assert record["message"] == "login password=[REDACTED]"
    assert record["level"] == "warning" and record["logger"] == "third.party"
    assert record["api_key"] == "[REDACTED]" and record["monkey"] == "banana"
    assert record["service"] == "svc" and record["environment"] == "test"
    assert record["timestamp"].endswith("Z")


def test_stdlib_exceptions_and_stacks_render_and_leave_the_record_to_other_handlers(
        lines: io.StringIO) -> None:
    """Our formatter reads the record without changing it: a plain handler beside ours still
    prints the original message, arguments and traceback."""
    plain = io.StringIO()
    handler = logging.StreamHandler(plain)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        try:
            raise RuntimeError("upstream down")
        except RuntimeError:
            logging.getLogger("lib").exception("fetch %s failed", "page", stack_info=True)
    finally:
        logging.getLogger().removeHandler(handler)
    (record,) = records(lines)
    assert record["message"] == "fetch page failed" and record["level"] == "error"
    assert "RuntimeError: upstream down" in record["exception"]
    assert "Stack (most recent call last)" in record["stack"]
    assert "_record" not in record and "exc_info" not in record
    text = plain.getvalue()
    assert text.startswith("ERROR fetch page failed\nTraceback") and "RuntimeError: upstream down" in text


def test_trace_and_correlation_ids_are_added(lines: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("op") as span, correlation_scope("req-42"):
        structlog.get_logger("app").info("hello", user="ada")
    (record,) = records(lines)
    context = span.get_span_context()
    assert record["trace_id"] == format(context.trace_id, "032x")
    assert record["span_id"] == format(context.span_id, "016x")
    assert record["correlation_id"] == "req-42"
    assert record["user"] == "ada"


def test_exceptions_are_rendered_into_the_line(lines: io.StringIO) -> None:
    try:
        raise ValueError("token=abc123 broke")
    except ValueError as exc:
        get_logger("scraper").error("scrape failed", error=exc)
    (record,) = records(lines)
    assert record["error_type"] == "ValueError"
    assert "Traceback" in record["exception"] and "abc123" not in json.dumps(record)


def test_seed_logger_api(lines: io.StringIO, monkeypatch) -> None:
    monkeypatch.setenv("THEODORE_PERFORMANCE_THRESHOLDS_MS", '{"ai_operation": 100}')
    log = get_logger("research", LogCategory.AI_OPERATIONS).with_correlation_id("c-1")
    log.with_context(company="acme").info("started")
    log.audit("export", user_id="u1", resource="report")
    log.security("brute force", severity="high", ip="10.0.0.1")
    log.performance("ai_operation", 250.0)
    log.performance("ai_operation", 20.0)
    log.business_metric("companies_researched", 3)
    log.trace("fine detail")
    started, audit, security, slow, fast, metric, fine = records(lines)
    assert started["component"] == "research" and started["category"] == "ai_operations"
    assert started["correlation_id"] == "c-1" and started["company"] == "acme"
    assert audit["category"] == "audit" and audit["message"] == "AUDIT: export"
    assert security["level"] == "warning" and security["requires_investigation"] is True
    assert slow["level"] == "warning" and slow["performance_threshold_exceeded"] is True
    assert fast["level"] == "info" and fast["threshold_ms"] == 100.0
    assert metric["metric_value"] == 3 and metric["category"] == "business"
    assert fine["level"] == "trace"


def test_per_component_levels(monkeypatch) -> None:
    monkeypatch.setenv("THEODORE_LOG_LEVELS", "noisy=ERROR")
    stream = io.StringIO()
    configure_logging(service="svc", environment="test", otlp=False, stream=stream)
    try:
        logging.getLogger("noisy").warning("hidden")
        logging.getLogger("quiet").warning("shown")
        assert [r["message"] for r in records(stream)] == ["shown"]
    finally:
        logging.getLogger("noisy").setLevel(logging.NOTSET)
        structlog.reset_defaults()


def test_trace_level_is_registered() -> None:
    assert logging.getLevelName(TRACE) == "TRACE"


def test_a_secret_sent_as_correlation_id_is_redacted(lines: io.StringIO) -> None:
    """The correlation ID comes from a client header, so it is scanned like any value."""
    with correlation_scope("Bearer abcdefghijklmnopqrstuv"):
        structlog.get_logger("app").info("hello")
    (record,) = records(lines)
    assert record["correlation_id"] == "[REDACTED]"


@pytest.mark.parametrize("library", ["httpx", "httpx2"])
def test_httpx_request_lines_are_quiet_unless_asked_for(monkeypatch, library: str) -> None:
    """httpx's per-request INFO line repeats the client span; THEODORE_LOG_LEVELS brings it back."""
    library_logger = logging.getLogger(library)
    try:
        for levels, expected in (("", []), (f"{library}=INFO", ["HTTP Request: GET /"])):
            monkeypatch.setenv("THEODORE_LOG_LEVELS", levels)
            stream = io.StringIO()
            configure_logging(service="svc", environment="test", otlp=False, stream=stream)
            library_logger.info("HTTP Request: GET /")
            library_logger.warning("retrying")
            assert [r["message"] for r in records(stream)] == [*expected, "retrying"]
    finally:
        library_logger.setLevel(logging.NOTSET)
        structlog.reset_defaults()
