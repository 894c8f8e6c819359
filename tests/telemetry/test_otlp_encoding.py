"""Our span and log encodings parse, with the official protobuf classes, to what the SDK's encoders give."""

from __future__ import annotations

import logging

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import (
    encode_logs as sdk_encode_logs,
)
from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as sdk_encode_spans,
)
from opentelemetry.exporter.otlp.proto.http import _log_exporter, trace_exporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceState
from theodore_telemetry import otlp_encoding


def recording(provider: TracerProvider) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def ours_parsed(spans: list) -> ExportTraceServiceRequest:
    """Our encoding of ``spans``, parsed back by the official protobuf classes."""
    return ExportTraceServiceRequest.FromString(otlp_encoding.encode_spans(spans).SerializePartialToString())


def ours_parsed_logs(records: list) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest.FromString(otlp_encoding.encode_logs(records).SerializeToString())


def finished_spans() -> list:
    provider = TracerProvider(resource=Resource.create({"service.name": "enc", "k8s.pod.uid": "p-1", "n": 3}),
                              span_limits=SpanLimits(max_span_attributes=20, max_event_attributes=2))
    exporter = recording(provider)
    flask = provider.get_tracer("opentelemetry.instrumentation.flask", "0.66b1")
    ours = provider.get_tracer("theodore_obs", schema_url="https://opentelemetry.io/schemas/1.26.0",
                               attributes={"scope.kind": "helpers"})
    remote = SpanContext(trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331,
                         is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "x1"), ("other", "y")]))
    with flask.start_as_current_span("GET /research", context=set_span_in_context(NonRecordingSpan(remote)),
                                     kind=SpanKind.SERVER,
                                     attributes={"http.method": "GET", "http.status_code": 200, "ok": True,
                                                 "ratio": 0.25, "neg": -7, "big": 2**62, "empty": "",
                                                 "zero": 0, "false": False, "tags": ["a", "b"],
                                                 "codes": [1, -2], "weights": [0.5], "flags": [True, False],
                                                 "unicode": "Grüße ✓"}) as server:
        server.add_event("cache.miss", {"key": "acme", "size": 12, "dropped": "by limit"})
        server.add_event("no attributes")
        with ours.start_as_current_span("research.company", links=[
                Link(remote, {"link.kind": "follows"}),
                Link(SpanContext(trace_id=1, span_id=2, is_remote=False))]) as child:
            child.set_status(Status(StatusCode.ERROR, "scrape failed"))
            child.record_exception(RuntimeError("boom"))
        with ours.start_as_current_span("quiet", kind=SpanKind.CLIENT) as quiet:
            quiet.set_status(Status(StatusCode.OK))
    for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
        flask.start_span(f"kind {kind.name}", kind=kind).end()
    many = flask.start_span("over the limit", attributes={f"a{i}": i for i in range(30)})
    many.end()
    return list(exporter.get_finished_spans())


def test_our_bytes_parse_to_the_sdk_message() -> None:
    spans = finished_spans()
    ours = ours_parsed(spans)
    assert ours == sdk_encode_spans(spans)
    (resource_spans,) = ours.resource_spans
    assert len(resource_spans.scope_spans) == 2
    assert sum(len(s.spans) for s in resource_spans.scope_spans) == len(spans) == 7
    assert any(span.dropped_attributes_count == 10 for s in resource_spans.scope_spans for span in s.spans)


def test_each_span_alone_and_an_empty_batch_match_too() -> None:
    for span in finished_spans():
        assert ours_parsed([span]) == sdk_encode_spans([span]), span.name
    assert otlp_encoding.encode_spans([]).SerializePartialToString() == b""


def test_an_attribute_that_cannot_be_encoded_is_left_out_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    span = finished_spans()[0]
    span._attributes = {"fine": "yes", "too.big": 2**70}  # set past the SDK's checks, as a bad exporter input
    with caplog.at_level(logging.ERROR):
        ours = ours_parsed([span])
    (encoded,) = ours.resource_spans[0].scope_spans[0].spans
    assert [a.key for a in encoded.attributes] == ["fine"]
    assert "too.big" in caplog.text


def finished_log_records() -> list:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "enc"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    app, other = provider.get_logger("theodore_demo"), provider.get_logger("werkzeug", "3.1", "https://s/1.0")
    span = TracerProvider().get_tracer("t").start_span("request")
    in_span = set_span_in_context(span)
    app.emit(body='{"message":"research done","company":"acme"}', severity_number=SeverityNumber.INFO,
             severity_text="INFO", attributes={"correlation_id": "c-1", "category": "business"},
             context=in_span, timestamp=1_700_000_000_000_000_001)
    app.emit(body={"structured": True, "n": [1, 2]}, severity_number=SeverityNumber.ERROR,
             severity_text="ERROR", event_name="research.failed", context=in_span)
    other.emit(body="plain text, no span", severity_number=SeverityNumber.WARN)
    other.emit(body=None)
    span.end()
    return list(exporter.get_finished_logs())


def test_log_records_parse_to_the_sdk_message() -> None:
    records = finished_log_records()
    ours = ours_parsed_logs(records)
    assert ours == sdk_encode_logs(records)
    (resource_logs,) = ours.resource_logs
    assert [len(s.log_records) for s in resource_logs.scope_logs] == [2, 2]
    assert resource_logs.scope_logs[0].log_records[0].trace_id  # the span's context is kept
    for record in records:
        assert ours_parsed_logs([record]) == sdk_encode_logs([record])


def test_the_http_exporters_use_them_once_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_exporter, "encode_spans", trace_exporter.encode_spans)
    monkeypatch.setattr(_log_exporter, "encode_logs", _log_exporter.encode_logs)
    assert otlp_encoding.use_fast_encoding() == list(otlp_encoding.EXPORTER_MODULES)
    assert trace_exporter.encode_spans is otlp_encoding.encode_spans
    assert _log_exporter.encode_logs is otlp_encoding.encode_logs


def test_a_scope_per_call_does_not_grow_the_cache_without_bound() -> None:
    provider = TracerProvider()
    exporter = recording(provider)
    for n in range(otlp_encoding._CACHE.limit * 3):
        provider.get_tracer(f"per-call-{n}").start_span("s").end()
    spans = list(exporter.get_finished_spans())
    assert ours_parsed(spans) == sdk_encode_spans(spans)
    assert len(otlp_encoding._CACHE._scopes) <= otlp_encoding._CACHE.limit
