"""otlp_encoding against the upstream protocol, field by field.

Every field the SDK can set on a span or a log record (and on their resource and scope) is
encoded twice: by ``theodore_telemetry.otlp_encoding`` and by the SDK's own encoder. Our
bytes are parsed with the ``opentelemetry-proto`` message classes and must give the SDK's
message exactly (compared as text and as deterministic bytes, so NaN, -0.0 and the presence of
empty sub-messages count) with no field left over as unknown (a wrong field number or wire
type lands there). A hand-built matrix of values goes into every place an ``AnyValue`` can sit,
and a seeded generator adds nested values on top (hypothesis is not installed).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import text_format
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import (
    encode_logs as sdk_encode_logs,
)
from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as sdk_encode_spans,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
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

# --- comparing ---------------------------------------------------------------------------------


def unknown_fields(message: Message, path: str = "request") -> Iterator[str]:
    """Where, anywhere in ``message``, the parser kept fields it does not know."""
    if len(UnknownFieldSet(message)):
        yield path
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        for index, item in enumerate(value if field.is_repeated else [value]):
            yield from unknown_fields(item, f"{path}.{field.name}[{index}]")


def assert_same(ours_bytes: bytes, sdk: Message, message_class: type[Message]) -> None:
    assert type(sdk) is message_class
    ours = message_class.FromString(ours_bytes)
    assert list(unknown_fields(ours)) == []
    assert text_format.MessageToString(ours) == text_format.MessageToString(sdk)
    assert ours.SerializeToString(deterministic=True) == sdk.SerializeToString(deterministic=True)


def assert_spans_match(spans: list) -> None:
    assert_same(otlp_encoding.encode_spans(spans).SerializePartialToString(), sdk_encode_spans(spans),
                ExportTraceServiceRequest)


def assert_logs_match(records: list) -> None:
    assert_same(otlp_encoding.encode_logs(records).SerializeToString(), sdk_encode_logs(records),
                ExportLogsServiceRequest)


# --- values ------------------------------------------------------------------------------------

SCALARS: dict[str, Any] = {
    "str": "GET /research",
    "str-empty": "",
    "str-unicode": "Grüße ✓ 🙂",
    "str-nul": "a\x00b",
    "str-long": "x" * 300,  # a two-byte length
    "true": True,
    "false": False,
    "int-zero": 0,
    "int-one": 1,
    "int-127": 127,
    "int-128": 128,
    "int-minus-one": -1,
    "int-int32-min": -(2**31),
    "int-above-2^53": 2**53 + 1,
    "int-below-minus-2^53": -(2**53) - 1,
    "int64-max": 2**63 - 1,
    "int64-min": -(2**63),
    "float-zero": 0.0,
    "float-minus-zero": -0.0,
    "float": 0.25,
    "float-huge": -1e300,
    "float-subnormal": 5e-324,
    "nan": math.nan,
    "inf": math.inf,
    "minus-inf": -math.inf,
    "bytes": b"\x00\xff\x80",
    "bytes-empty": b"",
    "bytes-all": bytes(range(256)),
}
VALUES: dict[str, Any] = {
    **SCALARS,
    "none": None,
    **{f"seq-of-{name}": (value, value) for name, value in SCALARS.items()},
    "seq-empty": (),
    "list": ["a", "b"],
    "seq-mixed": (1, "a", None, b"x", 0.5, True),
    "seq-nested": ((1, 2), (), ("x",)),
    "seq-of-none": (None,),
    "map-empty": {},
    "map": {"a": 1, "b": "two"},
    "map-nested": {"a": {"b": [1, {"c": b"x", "d": None}], "e": {}}, "f": -(2**62)},
}
"""Values the SDK keeps as they are in attributes (extended attributes, since 1.35) and bodies."""

BODIES: dict[str, Any] = {
    **VALUES,
    "map-empty-key": {"": 1, "k": ""},  # attributes drop such keys; a body keeps them
    "map-int-keys": {1: "one", 2: {3: [4]}},  # keys written as str(key)
}


def generated_value(rng: random.Random, depth: int = 0) -> Any:
    """A random ``AnyValue``: nested lists and maps of every scalar type, down to depth 3."""
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return "".join(rng.choice("aé✓🙂\x00 ") for _ in range(rng.randrange(0, 20)))
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.randrange(-(2**63), 2**63) if rng.random() < 0.5 else rng.randrange(-300, 300)
    if choice == 3:
        return rng.choice([rng.uniform(-1e6, 1e6), math.nan, math.inf, -0.0, rng.random() * 1e-310])
    if choice == 4:
        return rng.randbytes(rng.randrange(0, 40))
    if choice == 5:
        return None
    if choice in {6, 7}:
        return tuple(generated_value(rng, depth + 1) for _ in range(rng.randrange(0, 5)))
    return {f"k{n}": generated_value(rng, depth + 1) for n in range(rng.randrange(0, 5))}


GENERATED = [generated_value(random.Random(seed)) for seed in range(120)]
VALUE_CASES = [pytest.param(value, id=name) for name, value in VALUES.items()] + [
    pytest.param(value, id=f"generated-{n}") for n, value in enumerate(GENERATED)]
BODY_CASES = [pytest.param(value, id=name) for name, value in BODIES.items()] + [
    pytest.param(value, id=f"generated-{n}") for n, value in enumerate(GENERATED)]


# --- spans -------------------------------------------------------------------------------------


class FixedIds(IdGenerator):
    """Hands out the ids it was given, in order, then counts up from 1."""

    def __init__(self, trace_ids: list[int] = (), span_ids: list[int] = ()) -> None:
        self.trace_ids, self.span_ids, self.next = list(trace_ids), list(span_ids), 1

    def _count(self) -> int:
        self.next += 1
        return self.next

    def generate_trace_id(self) -> int:
        return self.trace_ids.pop(0) if self.trace_ids else self._count()

    def generate_span_id(self) -> int:
        return self.span_ids.pop(0) if self.span_ids else self._count()


def recording_provider(**kwargs: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(**kwargs)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


REMOTE = SpanContext(trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331, is_remote=True,
                     trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "x1"), ("other", "y.z-1")]))
LOCAL = SpanContext(trace_id=2**128 - 1, span_id=2**64 - 1, is_remote=False, trace_flags=TraceFlags(1))
UNSAMPLED = SpanContext(trace_id=2**128 - 2, span_id=2**64 - 2, is_remote=False, trace_flags=TraceFlags(0))


def span_in(value: Any, site: str) -> list[ReadableSpan]:
    """Spans with ``value`` at ``site``: a resource, scope, span, event or link attribute."""
    attributes = {"v": value}
    provider, exporter = recording_provider(
        resource=Resource(attributes if site == "resource" else {"service.name": "rt"}))
    tracer = provider.get_tracer("rt", attributes=attributes if site == "scope" else None)
    span = tracer.start_span("s", attributes=attributes if site == "span" else None,
                             links=[Link(REMOTE, attributes if site == "link" else None)])
    span.add_event("e", attributes if site == "event" else None)
    span.end()
    return list(exporter.get_finished_spans())


@pytest.mark.parametrize("site", ["resource", "scope", "span", "event", "link"])
@pytest.mark.parametrize("value", VALUE_CASES)
def test_every_attribute_value_at_every_span_site(value: Any, site: str) -> None:
    assert_spans_match(span_in(value, site))


@pytest.mark.parametrize("site", ["resource", "scope", "span", "event", "link"])
def test_all_values_together_in_one_attribute_set(site: str) -> None:
    provider, exporter = recording_provider(resource=Resource(dict(VALUES) if site == "resource" else {}))
    tracer = provider.get_tracer("rt", "1.0", attributes=dict(VALUES) if site == "scope" else None)
    span = tracer.start_span("s", attributes=dict(VALUES) if site == "span" else None,
                             links=[Link(LOCAL, dict(VALUES) if site == "link" else None)])
    span.add_event("e", dict(VALUES) if site == "event" else None)
    span.end()
    assert_spans_match(list(exporter.get_finished_spans()))


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**70, (1, 2**64), {"deep": [2**63]}],
                         ids=["2^63", "below-int64", "2^70", "in-seq", "in-map"])
def test_an_int_beyond_int64_is_left_out_by_both(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    provider, exporter = recording_provider()
    provider.get_tracer("rt").start_span("s", attributes={"before": 1, "bad": value, "after": 2}).end()
    spans = list(exporter.get_finished_spans())
    with caplog.at_level(logging.ERROR):
        assert_spans_match(spans)
    (span,) = sdk_encode_spans(spans).resource_spans[0].scope_spans[0].spans
    assert [a.key for a in span.attributes] == ["before", "after"]


@pytest.mark.parametrize("kind", list(SpanKind), ids=lambda kind: kind.name)
@pytest.mark.parametrize("parent", [None, REMOTE, LOCAL], ids=["root", "remote-parent", "local-parent"])
def test_every_kind_under_every_parent(kind: SpanKind, parent: SpanContext | None) -> None:
    provider, exporter = recording_provider(id_generator=FixedIds([2**127 + 5], [2**63 + 7]))
    context = set_span_in_context(NonRecordingSpan(parent)) if parent else None
    provider.get_tracer("rt").start_span("kinds", context=context, kind=kind).end()
    (span,) = spans = list(exporter.get_finished_spans())
    assert span.kind is kind
    assert_spans_match(spans)


@pytest.mark.parametrize(("trace_id", "span_id"), [(1, 1), (2**128 - 1, 2**64 - 1), (2**64, 2**32),
                                                   (0x0AF7651916CD43DD8448EB211C80319C, 0x00000000000000FF)])
def test_ids_at_their_extremes(trace_id: int, span_id: int) -> None:
    provider, exporter = recording_provider(id_generator=FixedIds([trace_id], [span_id]))
    provider.get_tracer("rt").start_span("ids").end()
    assert_spans_match(list(exporter.get_finished_spans()))


@pytest.mark.parametrize("trace_state", [TraceState(), TraceState([("a", "1")]),
                                         TraceState([(f"k{n}", f"v{n}") for n in range(32)]),
                                         TraceState([("tenant@vendor", "x:y/z")])],
                         ids=["empty", "one", "thirty-two", "multi-tenant"])
def test_trace_state_from_the_parent_on_span_and_link(trace_state: TraceState) -> None:
    parent = SpanContext(trace_id=9, span_id=9, is_remote=True, trace_flags=TraceFlags(1), trace_state=trace_state)
    provider, exporter = recording_provider()
    provider.get_tracer("rt").start_span("ts", context=set_span_in_context(NonRecordingSpan(parent)),
                                         links=[Link(parent, {"l": 1})]).end()
    (span,) = spans = list(exporter.get_finished_spans())
    assert span.get_span_context().trace_state == trace_state
    assert_spans_match(spans)


@pytest.mark.parametrize("status", [None, Status(StatusCode.UNSET), Status(StatusCode.OK),
                                    Status(StatusCode.OK, "ignored by the SDK"), Status(StatusCode.ERROR),
                                    Status(StatusCode.ERROR, "scrape failed: Grüße ✓")],
                         ids=["never-set", "unset", "ok", "ok-with-description", "error", "error-described"])
def test_every_status(status: Status | None) -> None:
    provider, exporter = recording_provider()
    span = provider.get_tracer("rt").start_span("status")
    if status is not None:
        span.set_status(status)
    span.end()
    assert_spans_match(list(exporter.get_finished_spans()))


def test_times_names_and_dropped_counts() -> None:
    limits = SpanLimits(max_span_attributes=2, max_events=2, max_links=1, max_event_attributes=1,
                        max_link_attributes=1, max_attribute_length=4)
    provider, exporter = recording_provider(span_limits=limits)
    tracer = provider.get_tracer("rt")
    span = tracer.start_span("", start_time=1, attributes={"a": "long value", "b": 2, "c": 3},
                             links=[Link(REMOTE, {"x": 1, "y": 2}), Link(UNSAMPLED, {"x": 1, "y": 2})])
    span.add_event("first", {"p": 1, "q": 2}, timestamp=2)
    span.add_event("", timestamp=2**63)
    span.record_exception(RuntimeError("boom"), timestamp=3)
    span.end(end_time=2**64 - 1)
    tracer.start_span("Grüße ✓ " * 40, start_time=1_700_000_000_123_456_789).end(end_time=1_700_000_001_000_000_000)
    spans = list(exporter.get_finished_spans())
    assert (spans[0].dropped_attributes, spans[0].dropped_events, spans[0].dropped_links) == (1, 1, 1)
    assert [event.dropped_attributes for event in spans[0].events] == [0, 3]  # "first" dropped
    assert spans[0].links[0].dropped_attributes == 1
    assert_spans_match(spans)
    for span in spans:
        assert_spans_match([span])


def test_a_span_built_by_hand_with_the_fields_a_provider_never_leaves_out() -> None:
    """No scope, no start time, a parent with span id 0, events and links with no attributes."""
    context = SpanContext(trace_id=3, span_id=4, is_remote=False, trace_state=TraceState([("a", "b")]))
    spans = [
        ReadableSpan("no scope", context=context, parent=SpanContext(3, 0, is_remote=True),
                     resource=Resource({}), events=[Event("e", timestamp=5), Event("f", {}, timestamp=0)],
                     links=[Link(SpanContext(0, 0, is_remote=False))], kind=SpanKind.CONSUMER,
                     status=Status(StatusCode.ERROR, "x"), start_time=None, end_time=None),
        ReadableSpan("empty scope", context=context, resource=Resource({}, schema_url=""),
                     instrumentation_scope=InstrumentationScope("", None, None, {}), start_time=0, end_time=0),
    ]
    assert_spans_match(spans)


def test_resources_and_scopes_group_as_the_sdk_groups_them() -> None:
    """Interleaved spans of two providers and several scopes, schema urls on both levels."""
    first, exported = recording_provider(resource=Resource({"service.name": "a", "n": 1},
                                                           schema_url="https://opentelemetry.io/schemas/1.26.0"))
    second = TracerProvider(resource=Resource({"service.name": "b"}))
    second.add_span_processor(SimpleSpanProcessor(exported))
    tracers = [first.get_tracer("flask", "0.66b1", schema_url="https://s/1.0", attributes={"x": [1]}),
               first.get_tracer("flask", "0.66b1"), first.get_tracer("requests"), second.get_tracer("flask"),
               second.get_tracer("", "")]
    for n in range(20):
        tracers[n * 7 % len(tracers)].start_span(f"s{n}").end()
    assert_spans_match(list(exported.get_finished_spans()))


def test_equal_resources_and_scopes_that_are_distinct_objects_share_a_group() -> None:
    """The SDK groups by equality (``Resource.__eq__``, ``InstrumentationScope.__eq__``), not identity."""
    resources = [Resource({"service.name": "a"}), Resource({"service.name": "a"}), Resource({"service.name": "b"})]
    scopes = [InstrumentationScope("x", "1", None, {"a": 1}), InstrumentationScope("x", "1", None, {"a": 1}),
              InstrumentationScope("x", "1", None, {"a": 2}), InstrumentationScope("y")]
    spans = [ReadableSpan(f"s{n}", context=SpanContext(1, n + 1, is_remote=False), resource=resources[n % 3],
                          instrumentation_scope=scopes[n % 4], start_time=n, end_time=n + 1) for n in range(24)]
    assert_spans_match(spans)
    assert_spans_match(spans[::-1])


# --- log records -------------------------------------------------------------------------------


def logging_provider(**kwargs: Any) -> tuple[LoggerProvider, InMemoryLogRecordExporter]:
    provider = LoggerProvider(shutdown_on_exit=False, **kwargs)
    exporter = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, exporter


def emitted(site: str, value: Any, **emit: Any) -> list[ReadableLogRecord]:
    """One log record with ``value`` as its body or at a resource, scope or record attribute."""
    attributes = {"v": value}
    provider, exporter = logging_provider(resource=Resource(attributes if site == "resource" else {}))
    logger = provider.get_logger("rt", attributes=attributes if site == "scope" else None)
    if site == "body":
        emit["body"] = value
    logger.emit(attributes=attributes if site == "attribute" else None, **emit)
    return list(exporter.get_finished_logs())


@pytest.mark.parametrize("value", BODY_CASES)
def test_every_body(value: Any) -> None:
    assert_logs_match(emitted("body", value))


@pytest.mark.parametrize("site", ["resource", "scope", "attribute"])
@pytest.mark.parametrize("value", VALUE_CASES)
def test_every_attribute_value_at_every_log_site(value: Any, site: str) -> None:
    assert_logs_match(emitted(site, value))


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, [2**64]], ids=["2^63", "below-int64", "in-list"])
def test_a_body_int_beyond_int64_fails_both_encoders(value: Any) -> None:
    (record,) = emitted("body", value)
    with pytest.raises(ValueError, match="out of range"):
        sdk_encode_logs([record])
    with pytest.raises(ValueError, match="out of range"):
        otlp_encoding.encode_logs([record])


@pytest.mark.parametrize("severity", [None, *SeverityNumber], ids=lambda s: getattr(s, "name", "none"))
@pytest.mark.parametrize("text", [None, "", "WARN"], ids=["no-text", "empty-text", "text"])
def test_every_severity(severity: SeverityNumber | None, text: str | None) -> None:
    assert_logs_match(emitted("body", "b", severity_number=severity, severity_text=text))


@pytest.mark.parametrize("timestamp", [None, 0, 1, 1_700_000_000_000_000_001, 2**64 - 1])
@pytest.mark.parametrize("observed", [None, 1, 2**63])
def test_times(timestamp: int | None, observed: int | None) -> None:
    assert_logs_match(emitted("body", "t", timestamp=timestamp, observed_timestamp=observed))


@pytest.mark.parametrize("context", [None, REMOTE, LOCAL, UNSAMPLED,
                                     SpanContext(1, 1, is_remote=False, trace_flags=TraceFlags(0xFF))],
                         ids=["no-span", "sampled-remote", "max-ids", "unsampled", "all-flag-bits"])
def test_trace_context(context: SpanContext | None) -> None:
    in_span = set_span_in_context(NonRecordingSpan(context)) if context else None
    (record,) = records = emitted("body", "c", context=in_span)
    assert record.log_record.trace_id == (context.trace_id if context else 0)
    assert_logs_match(records)


@pytest.mark.parametrize("event_name", [None, "", "research.failed", "Grüße ✓"])
def test_event_name(event_name: str | None) -> None:
    assert_logs_match(emitted("body", {"k": 1}, event_name=event_name))


def test_dropped_attributes_and_truncation() -> None:
    limits = LogRecordLimits(max_log_record_attributes=2, max_log_record_attribute_length=3)
    provider, exporter = logging_provider(log_record_limits=limits)
    with pytest.warns(UserWarning, match="dropped"):
        provider.get_logger("rt").emit(body="b", attributes={"a": "abcdef", "b": [b"x"], "c": 1, "d": 2})
    (record,) = records = list(exporter.get_finished_logs())
    assert record.dropped_attributes == 2
    assert_logs_match(records)


def test_a_log_record_built_by_hand() -> None:
    """No scope, no attributes at all (not even bounded ones), ids given directly."""
    api_record = LogRecord(timestamp=5, observed_timestamp=6, trace_id=2**128 - 1, span_id=7,
                           trace_flags=TraceFlags(1), severity_number=SeverityNumber.FATAL4, body=b"raw")
    records = [ReadableLogRecord(api_record, Resource({}, schema_url="https://s/2")),
               ReadableLogRecord(api_record, Resource({"a": 1}), InstrumentationScope("", "", "", None))]
    assert_logs_match(records)


def test_log_records_group_as_the_sdk_groups_them() -> None:
    provider, exporter = logging_provider(resource=Resource({"service.name": "a"}, schema_url="https://s/r"))
    loggers = [provider.get_logger("app"), provider.get_logger("werkzeug", "3.1", "https://s/1.0"),
               provider.get_logger("app", attributes={"x": 1}), provider.get_logger("")]
    for n in range(16):
        loggers[n * 3 % len(loggers)].emit(body=f"line {n}", severity_number=SeverityNumber.INFO)
    records = list(exporter.get_finished_logs())
    equal_but_distinct = [ReadableLogRecord(r.log_record, Resource({"service.name": "a"}, schema_url="https://s/r"),
                                            InstrumentationScope("app")) for r in records[:4]]
    assert_logs_match(records)
    assert_logs_match(records + equal_but_distinct)
