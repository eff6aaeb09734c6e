"""Pure mapping from a Bedrock call to the PostHog events that describe it.

Two schemas, chosen by the ``event_schema`` setting:

- ``bedrock`` (default): ``bedrock_completion`` and ``bedrock_error`` with the properties of
  PostHog's Bedrock tutorial, so its insights work unchanged;
- ``ai``: PostHog's LLM analytics ``$ai_generation`` event;
- ``both``: one of each per call.

Each event's uuid is derived from the trace id, span id and event name, so sending the same
span twice gives PostHog the same event twice, which it stores once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from otel_bedrock.calls import BedrockCall
from otel_bedrock.config import EventSchema
from otel_bedrock.pricing import Cost

COMPLETION_EVENT = "bedrock_completion"
ERROR_EVENT = "bedrock_error"
AI_GENERATION_EVENT = "$ai_generation"
_UUID_NAMESPACE = uuid.UUID("6f1f1c52-1d0f-4a53-9a62-0e6c3f3b6a11")


@dataclass(frozen=True, slots=True)
class CaptureEvent:
    """One event ready for PostHog's capture API."""

    event: str
    distinct_id: str
    properties: dict[str, Any]
    uuid: str
    timestamp: datetime = field(compare=False)


def to_events(
    call: BedrockCall, cost: Cost | None, schema: EventSchema = "bedrock"
) -> list[CaptureEvent]:
    """The events for one call, in the chosen schema.

    ``cost`` is None when the call has no complete usage to price (a stream the application
    stopped reading, a call that failed before any answer); the events then carry no cost
    properties at all.
    """
    events = []
    if schema in ("bedrock", "both"):
        events.append(_tutorial_event(call, cost))
    if schema in ("ai", "both"):
        events.append(_ai_generation_event(call, cost))

    return events


def _tutorial_event(call: BedrockCall, cost: Cost | None) -> CaptureEvent:
    props: dict[str, Any] = {
        "model_id": call.model.raw,
        "model": call.model.base_id or call.model.raw,
        "operation": call.operation,
        "response_time_in_ms": call.duration_ms,
        "stream": call.stream,
        "trace_id": call.trace_id,
        "span_id": call.span_id,
    }
    _put(props, "retry_attempts", call.retry_attempts)
    _put(props, "aws_region", call.region)
    _put(props, "aws_request_id", call.request_id)
    _put(props, "service_tier", call.service_tier)
    _put(props, "latency_mode", call.latency_mode)
    _put(props, "prompt", call.prompt)
    if call.content_truncated:
        props["content_truncated"] = True
    if call.error is not None:
        error = call.error
        props["error_message"] = error.message or error.type
        props["error_name"] = error.name
        props["error_type"] = error.type
        _put(props, "error_code", error.http_status)
        _put(props, "error_requestId", call.request_id)
        _put(props, "error_stack", error.stack)
        name = ERROR_EVENT
    else:
        _put(props, "generation", call.generation)
        _put(props, "stop_reason", call.stop_reason)
        _put(props, "stream_completed", call.stream_completed)
        name = COMPLETION_EVENT
    _put_usage(props, call, cost)

    return _event(call, name, props)


def _put_usage(props: dict[str, Any], call: BedrockCall, cost: Cost | None) -> None:
    counts = call.usage
    _put(props, "prompt_token_count", counts.input_tokens)
    _put(props, "generation_token_count", counts.output_tokens)
    _put(props, "cache_read_token_count", counts.cache_read_tokens)
    _put(props, "cache_write_token_count", counts.cache_write_tokens)
    _put(props, "cache_write_1h_token_count", counts.cache_write_1h_tokens)
    if call.usage_status != "measured" and call.error is None:
        props["usage_status"] = call.usage_status
    if cost is None:
        return
    props["cost_status"] = cost.status
    if cost.status == "priced":
        props["input_cost_in_dollars"] = cost.input_usd
        props["output_cost_in_dollars"] = cost.output_usd
        props["total_cost_in_dollars"] = cost.total_usd


def _ai_generation_event(call: BedrockCall, cost: Cost | None) -> CaptureEvent:
    counts = call.usage
    props: dict[str, Any] = {
        "$ai_model": call.model.base_id or call.model.raw,
        "$ai_provider": "aws.bedrock",
        "$ai_latency": round(call.duration_ms / 1000, 6),
        "$ai_trace_id": call.trace_id,
        "$ai_span_id": call.span_id,
        "$ai_is_error": call.error is not None,
        "$ai_stream": call.stream,
        "model_id": call.model.raw,
        "operation": call.operation,
    }
    _put(props, "$ai_input_tokens", counts.input_tokens)
    _put(props, "$ai_output_tokens", counts.output_tokens)
    _put(props, "$ai_cache_read_input_tokens", counts.cache_read_tokens)
    _put(props, "$ai_cache_creation_input_tokens", counts.cache_write_tokens)
    _put(props, "$ai_stop_reason", call.stop_reason)
    _put(props, "stream_completed", call.stream_completed)
    if call.usage_status != "measured" and call.error is None:
        props["usage_status"] = call.usage_status
    if call.content_truncated:
        props["content_truncated"] = True
    if cost is not None:
        props["cost_status"] = cost.status
    if cost is not None and cost.status == "priced":
        props["$ai_input_cost_usd"] = cost.input_usd
        props["$ai_output_cost_usd"] = cost.output_usd
        props["$ai_total_cost_usd"] = cost.total_usd
    if call.prompt_messages is not None:
        props["$ai_input"] = [dict(message) for message in call.prompt_messages]
    elif call.prompt is not None:
        props["$ai_input"] = [{"role": "user", "content": call.prompt}]
    if call.generation is not None:
        props["$ai_output_choices"] = [{"role": "assistant", "content": call.generation}]
    if call.error is not None:
        props["$ai_error"] = call.error.message or call.error.type
        _put(props, "$ai_http_status", call.error.http_status)

    return _event(call, AI_GENERATION_EVENT, props)


def _event(call: BedrockCall, name: str, props: dict[str, Any]) -> CaptureEvent:
    distinct_id = call.distinct_id
    if distinct_id is None:
        # No person is known: attribute the event to its trace and keep PostHog from
        # creating a person profile for it.
        distinct_id = call.trace_id
        props["$process_person_profile"] = False
    key = f"{call.trace_id}:{call.span_id}:{name}"

    return CaptureEvent(
        event=name,
        distinct_id=distinct_id,
        properties=props,
        uuid=str(uuid.uuid5(_UUID_NAMESPACE, key)),
        timestamp=datetime.fromtimestamp(call.end_time_ns / 1e9, tz=UTC),
    )


def _put(props: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        props[key] = value
