"""OTLP messages for the collector's tests, built as a stock SDK's exporter would send them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACE = 0x5B8EFFF798038103D269B633813FC60C
START = 1_700_000_000_000_000_000
LLAMA = "meta.llama3-1-8b-instruct-v1:0"


def any_value(value: Any) -> AnyValue:
    """The OTLP AnyValue of a Python value."""
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, Mapping):
        found = AnyValue()
        found.kvlist_value.values.extend(key_values(value))
        return found
    found = AnyValue()
    found.array_value.values.extend(any_value(item) for item in value)
    return found


def key_values(values: Mapping[str, Any]) -> list[KeyValue]:
    """OTLP key-value pairs."""
    return [KeyValue(key=key, value=any_value(value)) for key, value in values.items()]


def bedrock_attributes(
    operation: str = "InvokeModel", model: str = LLAMA, **extra: Any
) -> dict[str, Any]:
    """What the upstream botocore instrumentation writes on a Bedrock span (canonical names)."""
    return {
        "rpc.system": "aws-api",
        "rpc.service": "Bedrock Runtime",
        "rpc.method": operation,
        "cloud.region": "us-east-1",
        "gen_ai.system": "aws.bedrock",
        "gen_ai.request.model": model,
        **extra,
    }


def span(
    span_id: int,
    attributes: Mapping[str, Any] | None = None,
    *,
    trace_id: int = TRACE,
    parent: int | None = None,
    name: str = "Bedrock Runtime.InvokeModel",
    kind: int = Span.SpanKind.SPAN_KIND_CLIENT,
    start: int = START,
    duration_ms: int = 250,
    error: str | None = None,
    events: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> Span:
    """One span as an OTLP message."""
    built = Span(
        trace_id=trace_id.to_bytes(16, "big"),
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration_ms * 1_000_000,
        attributes=key_values(attributes or {}),
    )
    for event_name, event_attributes in events:
        built.events.add(
            name=event_name, time_unix_nano=start, attributes=key_values(event_attributes)
        )
    if error is not None:
        built.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return built


def traces(
    *spans: Span,
    resource: Mapping[str, Any] | None = None,
    scope: str = "opentelemetry.instrumentation.botocore",
) -> ExportTraceServiceRequest:
    """An export request holding ``spans`` under one resource and scope."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        key_values(resource if resource is not None else {"service.name": "checkout"})
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return request


def log(
    body: Any,
    *,
    span_id: int | None,
    trace_id: int = TRACE,
    event_name: str = "",
    attributes: Mapping[str, Any] | None = None,
    time: int = START,
) -> LogRecord:
    """One log record as an OTLP message."""
    return LogRecord(
        time_unix_nano=time,
        trace_id=trace_id.to_bytes(16, "big") if span_id else b"",
        span_id=span_id.to_bytes(8, "big") if span_id else b"",
        event_name=event_name,
        body=any_value(body),
        attributes=key_values(attributes or {}),
    )


def logs(
    *records: LogRecord, scope: str = "opentelemetry.instrumentation.botocore"
) -> ExportLogsServiceRequest:
    """An export request holding ``records`` under one resource and scope."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(key_values({"service.name": "checkout"}))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = scope
    scope_logs.log_records.extend(records)
    return request
