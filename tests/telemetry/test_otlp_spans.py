"""Our span encoding parses, with the official protobuf classes, to what the SDK's encoder gives."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as sdk_encode_spans,
)
from opentelemetry.exporter.otlp.proto.http import trace_exporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
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
from theodore_obs.telemetry import otlp_spans


def finished_spans() -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "enc", "k8s.pod.uid": "p-1", "n": 3}),
                              span_limits=SpanLimits(max_span_attributes=20, max_event_attributes=2))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
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
    ours = ExportTraceServiceRequest.FromString(otlp_spans.encode_spans(spans).SerializePartialToString())
    assert ours == sdk_encode_spans(spans)
    (resource_spans,) = ours.resource_spans
    assert len(resource_spans.scope_spans) == 2
    assert sum(len(s.spans) for s in resource_spans.scope_spans) == len(spans) == 7
    assert any(span.dropped_attributes_count == 10 for s in resource_spans.scope_spans for span in s.spans)


def test_each_span_alone_and_an_empty_batch_match_too() -> None:
    for span in finished_spans():
        ours = otlp_spans.encode_spans([span]).SerializeToString()
        assert ExportTraceServiceRequest.FromString(ours) == sdk_encode_spans([span]), span.name
    assert otlp_spans.encode_spans([]).SerializePartialToString() == b""


def test_an_attribute_that_cannot_be_encoded_is_left_out_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    span = finished_spans()[0]
    span._attributes = {"fine": "yes", "too.big": 2**70}  # set past the SDK's checks, as a bad exporter input
    with caplog.at_level(logging.ERROR):
        ours = ExportTraceServiceRequest.FromString(otlp_spans.encode_spans([span]).SerializePartialToString())
    (encoded,) = ours.resource_spans[0].scope_spans[0].spans
    assert [a.key for a in encoded.attributes] == ["fine"]
    assert "too.big" in caplog.text


def test_the_http_exporter_uses_it_once_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_exporter, "encode_spans", trace_exporter.encode_spans)
    assert otlp_spans.use_fast_span_encoding()
    assert trace_exporter.encode_spans is otlp_spans.encode_spans
