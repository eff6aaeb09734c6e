"""Spans and log records received over OTLP, as plain immutable values.

:func:`received_spans` turns an ``ExportTraceServiceRequest`` into :class:`ReceivedSpan`
values, which read like the SDK's finished spans (they satisfy
:class:`otel_bedrock.calls.SpanData`), so the in-process exporter's code maps them to events
unchanged. :func:`received_logs` does the same for log records, which carry message content.

OTLP ``AnyValue`` decodes as the SDK stores attributes: strings, booleans, ints, floats and
bytes as such, arrays as tuples, key-value lists as dicts, an empty value as None.

A span whose trace id is not 16 bytes or is all zero, whose span id is not 8 bytes or is
zero, or whose parent span id is neither empty nor 8 bytes is rejected: it is counted and
never reaches the pipeline. All functions are pure and may be called from any thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.trace import StatusCode

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_STATUS_CODES = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}


@dataclass(frozen=True, slots=True)
class SpanIds:
    """A span's trace and span id, read like ``SpanContext``."""

    trace_id: int
    span_id: int

    @property
    def is_remote(self) -> bool:
        """Always True: the span was made in another process."""
        return True


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """One span event."""

    name: str
    attributes: Mapping[str, Any]
    timestamp: int


@dataclass(frozen=True, slots=True)
class ReceivedStatus:
    """A span's status, read like the SDK's ``Status``."""

    status_code: StatusCode = StatusCode.UNSET
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One finished span from another process; satisfies ``otel_bedrock.calls.SpanData``.

    Attributes:
        name: The span name.
        kind: The OTLP ``SpanKind`` number (3 is client).
        context: Its trace id and span id.
        parent_span_id: The parent's span id, None for a root span.
        start_time: Start, in nanoseconds since the epoch.
        end_time: End, in nanoseconds since the epoch.
        attributes: The span's attributes, decoded.
        events: Its events, oldest first.
        status: Its status.
        resource: The attributes of the resource that made it (``service.name`` ...).
        scope: The name of the instrumentation scope that made it.
    """

    name: str
    kind: int
    context: SpanIds
    parent_span_id: int | None
    start_time: int | None
    end_time: int | None
    attributes: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    events: tuple[ReceivedEvent, ...] = ()
    status: ReceivedStatus = field(default_factory=ReceivedStatus)
    resource: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    scope: str = ""

    def with_attributes(self, attributes: Mapping[str, Any]) -> ReceivedSpan:
        """The same span with ``attributes`` in place of its own."""
        return dataclasses.replace(self, attributes=MappingProxyType(dict(attributes)))


@dataclass(frozen=True, slots=True)
class ReceivedLog:
    """One log record from another process (content events arrive as these).

    Attributes:
        trace_id: The trace of the span it belongs to; None when it names none.
        span_id: That span's id; None when it names none.
        time: When it happened (or was observed), in nanoseconds since the epoch; 0 if unknown.
        event_name: The record's event name (``gen_ai.user.message`` ...): the OTLP
            ``event_name`` field, else the ``event.name`` attribute; empty when neither is set.
        body: The body, decoded like an attribute value.
        attributes: The record's attributes.
        resource: The attributes of the resource that made it.
        scope: The name of the instrumentation scope that made it.
    """

    trace_id: int | None
    span_id: int | None
    time: int
    event_name: str
    body: Any
    attributes: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    resource: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    scope: str = ""


_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value", "bytes_value"})


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue``."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return {item.key: any_value(item.value) for item in value.kvlist_value.values}

    return getattr(value, kind)


def key_values(pairs: Iterable[KeyValue]) -> Mapping[str, Any]:
    """A read-only mapping of OTLP key-value pairs; a repeated key keeps its last value."""
    decoded = {}
    for pair in pairs:  # every attribute of every span: scalars decoded inline
        value = pair.value
        kind = value.WhichOneof("value")
        if kind in _SCALARS:
            decoded[pair.key] = getattr(value, kind)
        else:
            decoded[pair.key] = any_value(value)

    return MappingProxyType(decoded) if decoded else _EMPTY


def received_spans(request: ExportTraceServiceRequest) -> tuple[list[ReceivedSpan], int]:
    """The spans of a request, and how many were rejected for invalid ids."""
    spans: list[ReceivedSpan] = []
    rejected = 0
    for resource_spans in request.resource_spans:
        resource = key_values(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                received = received_span(span, resource, scope)
                if received is None:
                    rejected += 1
                else:
                    spans.append(received)

    return spans, rejected


def received_span(
    span: Span, resource: Mapping[str, Any] = _EMPTY, scope: str = ""
) -> ReceivedSpan | None:
    """One span, or None when its ids are invalid."""
    trace_id = _id(span.trace_id, 16)
    span_id = _id(span.span_id, 8)
    if not trace_id or not span_id:
        return None
    parent = span.parent_span_id
    if parent and len(parent) != 8:
        return None
    status = span.status

    return ReceivedSpan(
        name=span.name,
        kind=span.kind,
        context=SpanIds(trace_id, span_id),
        parent_span_id=_id(parent, 8) or None,
        start_time=span.start_time_unix_nano or None,
        end_time=span.end_time_unix_nano or None,
        attributes=key_values(span.attributes),
        events=tuple(
            ReceivedEvent(event.name, key_values(event.attributes), event.time_unix_nano)
            for event in span.events
        ),
        status=ReceivedStatus(
            _STATUS_CODES.get(status.code, StatusCode.UNSET), status.message or None
        ),
        resource=resource,
        scope=scope,
    )


def received_logs(request: ExportLogsServiceRequest) -> list[ReceivedLog]:
    """The log records of a request; ids that are missing or malformed read as None."""
    records: list[ReceivedLog] = []
    for resource_logs in request.resource_logs:
        resource = key_values(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope.name
            records.extend(
                received_log(record, resource, scope) for record in scope_logs.log_records
            )

    return records


def received_log(
    record: LogRecord, resource: Mapping[str, Any] = _EMPTY, scope: str = ""
) -> ReceivedLog:
    """One log record."""
    attributes = key_values(record.attributes)
    event_name = record.event_name or attributes.get("event.name")

    return ReceivedLog(
        trace_id=_id(record.trace_id, 16) or None,
        span_id=_id(record.span_id, 8) or None,
        time=record.time_unix_nano or record.observed_time_unix_nano,
        event_name=event_name if isinstance(event_name, str) else "",
        body=any_value(record.body),
        attributes=attributes,
        resource=resource,
        scope=scope,
    )


def _id(raw: bytes, size: int) -> int:
    """The id as a number; 0 (invalid) when it is not ``size`` bytes long."""
    return int.from_bytes(raw, "big") if len(raw) == size else 0
