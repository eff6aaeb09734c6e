"""OTLP spans and log records read as values the in-process exporter understands."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from collector.spans import (
    ReceivedSpan,
    SpanIds,
    any_value,
    received_log,
    received_logs,
    received_spans,
)
from otel_bedrock.calls import describe
from tests.collector import builders
from tests.collector.builders import TRACE, bedrock_attributes, log, logs, span, traces


def test_span_fields_are_read() -> None:
    """Ids, times, kind, status, events, resource and scope come through unchanged."""
    message = span(
        0xA1,
        {"rpc.method": "Converse"},
        parent=0xA0,
        error="throttled",
        events=[("exception", {"exception.type": "ThrottlingException"})],
    )

    [received], rejected = received_spans(traces(message, resource={"service.name": "shop"}))

    assert rejected == 0
    assert received.context == SpanIds(TRACE, 0xA1)
    assert received.parent_span_id == 0xA0
    assert received.name == "Bedrock Runtime.InvokeModel"
    assert received.kind == 3
    assert received.start_time == builders.START
    assert received.end_time == builders.START + 250_000_000
    assert received.status.status_code is StatusCode.ERROR
    assert received.status.description == "throttled"
    assert [(event.name, dict(event.attributes)) for event in received.events] == [
        ("exception", {"exception.type": "ThrottlingException"})
    ]
    assert received.resource == {"service.name": "shop"}
    assert received.scope == "opentelemetry.instrumentation.botocore"


def test_any_values_decode_like_sdk_attributes() -> None:
    """Arrays become tuples, key-value lists dicts, an empty value None."""
    values = {
        "s": "text",
        "b": True,
        "i": -7,
        "f": 0.5,
        "raw": b"\x00\x01",
        "list": ["end_turn", 3],
        "map": {"role": "user", "parts": [{"text": "hi"}]},
        "none": None,
    }

    decoded = {key: any_value(builders.any_value(value)) for key, value in values.items()}

    assert decoded == {
        "s": "text",
        "b": True,
        "i": -7,
        "f": 0.5,
        "raw": b"\x00\x01",
        "list": ("end_turn", 3),
        "map": {"role": "user", "parts": ({"text": "hi"},)},
        "none": None,
    }


def test_root_span_has_no_parent() -> None:
    """An empty or all-zero parent id reads as None."""
    zero_parent = span(0xB1)
    zero_parent.parent_span_id = bytes(8)

    spans, _ = received_spans(traces(span(0xB0), zero_parent))

    assert [received.parent_span_id for received in spans] == [None, None]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trace_id", bytes(16)),
        ("trace_id", b"\x01" * 8),
        ("span_id", bytes(8)),
        ("span_id", b"\x01" * 16),
        ("span_id", b""),
        ("parent_span_id", b"\x01" * 4),
    ],
    ids=["zero-trace", "short-trace", "zero-span", "long-span", "no-span", "short-parent"],
)
def test_spans_with_invalid_ids_are_rejected(field: str, value: bytes) -> None:
    """A span with an invalid id is counted as rejected; the others still come through."""
    bad = span(0xC1)
    setattr(bad, field, value)

    spans, rejected = received_spans(traces(span(0xC0), bad, span(0xC2)))

    assert rejected == 1
    assert [received.context.span_id for received in spans] == [0xC0, 0xC2]


def test_with_attributes_replaces_only_the_attributes() -> None:
    """with_attributes gives a new span with the new attributes; the original is unchanged."""
    [received], _ = received_spans(traces(span(0xD1, {"a": 1})))

    changed = received.with_attributes({"b": 2})

    assert dict(changed.attributes) == {"b": 2}
    assert dict(received.attributes) == {"a": 1}
    assert changed.context == received.context
    assert changed.events == received.events


def test_attributes_cannot_be_changed() -> None:
    """A received span's attributes are read-only."""
    [received], _ = received_spans(traces(span(0xD2, {"a": 1})))

    with pytest.raises(TypeError):
        received.attributes["a"] = 2  # type: ignore[index]


def test_sdk_span_round_trip_reads_like_the_original() -> None:
    """A span encoded by the SDK's own OTLP encoder describes the same Bedrock call."""
    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    tracer = provider.get_tracer("opentelemetry.instrumentation.botocore")
    attributes = bedrock_attributes(
        "Converse",
        "us.amazon.nova-micro-v1:0",
        **{
            "gen_ai.usage.input_tokens": 21,
            "gen_ai.usage.output_tokens": 9,
            "gen_ai.response.finish_reasons": ("end_turn",),
        },
    )
    with tracer.start_as_current_span("outer") as outer:
        with tracer.start_span("Bedrock Runtime.Converse", kind=SpanKind.CLIENT) as inner:
            inner.set_attributes(attributes)
            inner.set_status(Status(StatusCode.OK))
    sdk_spans = finished.get_finished_spans()

    received, rejected = received_spans(encode_spans(sdk_spans))

    assert rejected == 0
    mine = next(item for item in received if item.name == "Bedrock Runtime.Converse")
    original = next(item for item in sdk_spans if item.name == "Bedrock Runtime.Converse")
    assert isinstance(mine, ReceivedSpan)
    assert mine.parent_span_id == outer.get_span_context().span_id
    assert dict(mine.attributes) == dict(original.attributes or {})
    assert mine.kind == 3
    assert mine.scope == "opentelemetry.instrumentation.botocore"
    assert describe(mine) == describe(original)


def test_log_records_are_read() -> None:
    """A content log record keeps its ids, event name, body and attributes."""
    record = log(
        {"content": "Eggs?"},
        span_id=0xE1,
        event_name="gen_ai.user.message",
        attributes={"gen_ai.system": "aws.bedrock"},
    )

    [received] = received_logs(logs(record))

    assert (received.trace_id, received.span_id) == (TRACE, 0xE1)
    assert received.event_name == "gen_ai.user.message"
    assert received.body == {"content": "Eggs?"}
    assert received.attributes == {"gen_ai.system": "aws.bedrock"}
    assert received.time == builders.START
    assert received.scope == "opentelemetry.instrumentation.botocore"
    assert received.resource == {"service.name": "checkout"}


def test_log_event_name_from_attribute_and_missing_ids() -> None:
    """Without the event_name field the event.name attribute names it; no ids read as None."""
    record = log("text", span_id=None, attributes={"event.name": "gen_ai.choice"})
    record.observed_time_unix_nano = 5
    record.time_unix_nano = 0

    received = received_log(record)

    assert received.event_name == "gen_ai.choice"
    assert (received.trace_id, received.span_id) == (None, None)
    assert received.time == 5
