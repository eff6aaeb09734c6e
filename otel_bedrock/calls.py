"""What one finished Bedrock span says about the call it traced.

:func:`describe` reads a finished span's attributes, status and exception events and returns a
:class:`BedrockCall`, or None for spans that are not Bedrock Runtime model calls. It works from
span data alone, so the same code serves the in-process exporter, the declarative
configuration mode (where no processor of ours runs) and spans received over OTLP.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.trace import StatusCode

from otel_bedrock import attributes as attr
from otel_bedrock.identity import distinct_id_from_attributes
from otel_bedrock.model_ids import ModelRef, resolve_model
from otel_bedrock.usage import Usage, count

MODEL_OPERATIONS = frozenset(
    {"InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"}
)
# Upstream estimates these families' InvokeModel token counts from text length.
_ESTIMATING_PROVIDERS = frozenset({"cohere", "mistral"})


class SpanData(Protocol):
    """The part of a finished span that we read (``ReadableSpan`` fits it)."""

    @property
    def attributes(self) -> Mapping[str, Any] | None: ...

    @property
    def events(self) -> Sequence[Any]: ...

    @property
    def start_time(self) -> int | None: ...

    @property
    def end_time(self) -> int | None: ...

    @property
    def status(self) -> Any: ...

    @property
    def context(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class CallError:
    """Why a call failed."""

    type: str
    name: str
    message: str | None = None
    http_status: int | None = None
    stack: str | None = None


@dataclass(frozen=True, slots=True)
class BedrockCall:
    """One Bedrock Runtime model call, as its span recorded it."""

    operation: str
    model: ModelRef
    usage: Usage
    usage_status: str
    trace_id: str
    span_id: str
    start_time_ns: int
    end_time_ns: int
    distinct_id: str | None = None
    stop_reason: str | None = None
    stream: bool = False
    stream_completed: bool | None = None
    region: str | None = None
    request_id: str | None = None
    retry_attempts: int | None = None
    prompt: str | None = None
    prompt_messages: tuple[dict[str, str], ...] | None = None
    generation: str | None = None
    content_truncated: bool = False
    service_tier: str | None = None
    latency_mode: str | None = None
    error: CallError | None = None

    @property
    def on_demand_standard(self) -> bool:
        """True when Bedrock served the call at its standard on-demand price."""
        return self.service_tier in (None, "default", "standard") and self.latency_mode in (
            None,
            "standard",
        )

    @property
    def duration_ms(self) -> float:
        """Span duration in milliseconds."""
        return round((self.end_time_ns - self.start_time_ns) / 1_000_000, 3)


def describe(
    span: SpanData,
    profiles: Mapping[str, str] | None = None,
    identity_keys: Sequence[str] = (),
) -> BedrockCall | None:
    """The Bedrock call a finished span traced, or None if it traced something else.

    ``profiles`` maps application inference profile ARNs to base models; ``identity_keys``
    names more attributes that name the person (after ``posthog.distinct_id``, ``user.id``
    and ``enduser.id``).
    """
    values = span.attributes or {}
    operation = values.get(attr.RPC_METHOD)
    if values.get(attr.RPC_SERVICE) != attr.BEDROCK_RUNTIME_SERVICE:
        return None
    if operation not in MODEL_OPERATIONS:
        return None
    raw_model = values.get(attr.GEN_AI_REQUEST_MODEL)
    model = resolve_model(raw_model if isinstance(raw_model, str) else "", profiles)
    invoked = _text(values.get(attr.INVOKED_MODEL))
    if invoked is not None:
        # A prompt router chose the model; that one is billed.
        model = dataclasses.replace(resolve_model(invoked, profiles), raw=model.raw)
    counts, usage_status = _usage(values, operation, model)
    stream = operation in ("ConverseStream", "InvokeModelWithResponseStream")
    completed = values.get(attr.STREAM_COMPLETED)
    context = span.context

    return BedrockCall(
        operation=operation,
        model=model,
        usage=counts,
        usage_status=usage_status,
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        start_time_ns=span.start_time or 0,
        end_time_ns=span.end_time or span.start_time or 0,
        distinct_id=distinct_id_from_attributes(values, identity_keys),
        stop_reason=_stop_reason(values),
        stream=stream,
        stream_completed=bool(completed) if stream and completed is not None else None,
        region=_text(values.get(attr.CLOUD_REGION)),
        request_id=_text(values.get(attr.AWS_REQUEST_ID)),
        retry_attempts=_retry_attempts(values),
        prompt=_text(values.get(attr.PROMPT)),
        prompt_messages=_messages(values.get(attr.PROMPT_MESSAGES)),
        generation=_text(values.get(attr.GENERATION)),
        content_truncated=values.get(attr.CONTENT_TRUNCATED) is True,
        service_tier=_text(values.get(attr.SERVICE_TIER)),
        latency_mode=_text(values.get(attr.PERFORMANCE_LATENCY)),
        error=_error(span, values),
    )


def _usage(values: Mapping[str, Any], operation: str, model: ModelRef) -> tuple[Usage, str]:
    measured = Usage(
        input_tokens=count(values.get(attr.USAGE_INPUT_TOKENS)),
        output_tokens=count(values.get(attr.USAGE_OUTPUT_TOKENS)),
        cache_read_tokens=count(values.get(attr.USAGE_CACHE_READ_TOKENS)),
        cache_write_tokens=count(values.get(attr.USAGE_CACHE_WRITE_TOKENS)),
        cache_write_1h_tokens=count(values.get(attr.USAGE_CACHE_WRITE_1H_TOKENS)),
    )
    if measured.is_empty and values.get(attr.USAGE_SOURCE) is None:
        measured = _upstream_usage(values, operation, model)
    if measured.input_tokens is not None and measured.output_tokens is not None:
        return measured, "measured"
    if measured.is_empty:
        return measured, "missing"

    return measured, "partial"


def _upstream_usage(values: Mapping[str, Any], operation: str, model: ModelRef) -> Usage:
    """Usage the upstream instrumentation recorded, when no hook of ours ran."""
    if operation.startswith("InvokeModel") and model.provider in _ESTIMATING_PROVIDERS:
        return Usage()  # estimated from text length: never report as measured

    return Usage(
        input_tokens=count(values.get(attr.GEN_AI_INPUT_TOKENS)),
        output_tokens=count(values.get(attr.GEN_AI_OUTPUT_TOKENS)),
        cache_read_tokens=count(values.get(attr.GEN_AI_CACHE_READ_TOKENS)),
        cache_write_tokens=count(values.get(attr.GEN_AI_CACHE_WRITE_TOKENS)),
    )


def _retry_attempts(values: Mapping[str, Any]) -> int | None:
    """Retries botocore made: from the response metadata, else from the attempts we counted."""
    reported = count(values.get(attr.RETRY_ATTEMPTS))
    if reported is not None:
        return reported
    attempts = count(values.get(attr.ATTEMPTS))

    return attempts - 1 if attempts else None


def _stop_reason(values: Mapping[str, Any]) -> str | None:
    ours = values.get(attr.STOP_REASON)
    if isinstance(ours, str):
        return ours
    reasons = values.get(attr.GEN_AI_FINISH_REASONS)
    if isinstance(reasons, Sequence) and not isinstance(reasons, str) and reasons:
        return _text(reasons[0])

    return None


def _error(span: SpanData, values: Mapping[str, Any]) -> CallError | None:
    failed = span.status is not None and span.status.status_code is StatusCode.ERROR
    code = _text(values.get(attr.ERROR_CODE))
    if not failed and code is None:
        return None
    exception = _last_exception(span.events)
    exception_type = _text(exception.get("exception.type")) or _text(values.get(attr.ERROR_TYPE))
    name = (exception_type or "Error").rsplit(".", 1)[-1]
    message = _text(values.get(attr.ERROR_MESSAGE)) or _text(exception.get("exception.message"))
    if message is None:
        message = _text(getattr(span.status, "description", None))
        if code is None and message is not None:
            code, message = _parse_client_error(message)

    return CallError(
        type=code or name,
        name=name,
        message=message,
        http_status=_http_status(values),
        stack=_text(exception.get("exception.stacktrace")),
    )


# The message botocore gives every ClientError.
_CLIENT_ERROR = re.compile(
    r"An error occurred \((?P<code>[^)]*)\) when calling the \w+ operation"
    r"(?: \(reached max retries: \d+\))?: (?P<message>.*)",
    re.DOTALL,
)


def _parse_client_error(text: str) -> tuple[str | None, str]:
    """AWS error name and message from a ClientError's text, when a span kept only that."""
    match = _CLIENT_ERROR.fullmatch(text)
    if match is None:
        return None, text

    return aws_error_name(match["code"]), match["message"]


def aws_error_name(code: str) -> str | None:
    """The PascalCase AWS error name: ``throttlingException`` -> ``ThrottlingException``.

    None when the code names no error: empty, or only the HTTP status, which botocore puts
    there when a response lost its ``x-amzn-errortype`` header.
    """
    name = code.split(":", 1)[0].rsplit("#", 1)[-1]
    if not name or name.isdigit():
        return None

    return name[:1].upper() + name[1:]


def _http_status(values: Mapping[str, Any]) -> int | None:
    for key in (attr.ERROR_HTTP_STATUS, attr.HTTP_STATUS_CODE, attr.HTTP_RESPONSE_STATUS_CODE):
        status = count(values.get(key))
        if status is not None and status >= 400:
            return status

    return None


def _last_exception(events: Sequence[Any]) -> Mapping[str, Any]:
    for event in reversed(events or ()):
        if event.name == "exception":
            return event.attributes or {}

    return {}


def _messages(value: Any) -> tuple[dict[str, str], ...] | None:
    """The captured messages (a JSON list of role and content), if any and well formed."""
    if not isinstance(value, str):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    if not isinstance(decoded, list):
        return None
    messages = tuple(
        {"role": str(item["role"]), "content": str(item["content"])}
        for item in decoded
        if isinstance(item, dict) and "role" in item and "content" in item
    )

    return messages or None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
