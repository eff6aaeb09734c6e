"""What the hooks write on a Bedrock span: pure functions from response facts to attributes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from otel_bedrock import attributes as attr
from otel_bedrock.calls import aws_error_name
from otel_bedrock.families.base import dig
from otel_bedrock.usage import Usage

# HTTP status that Bedrock documents for each exception it can send inside a stream.
STREAM_ERROR_STATUS = {
    "ThrottlingException": 429,
    "ValidationException": 400,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "ModelStreamErrorException": 424,
    "ModelTimeoutException": 408,
}


def usage_attributes(counts: Usage, source: str) -> dict[str, Any]:
    """Span attributes for measured usage; counts Bedrock did not report are left out."""
    values: dict[str, Any] = {}
    pairs = (
        (counts.input_tokens, attr.USAGE_INPUT_TOKENS, attr.GEN_AI_INPUT_TOKENS),
        (counts.output_tokens, attr.USAGE_OUTPUT_TOKENS, attr.GEN_AI_OUTPUT_TOKENS),
        (counts.cache_read_tokens, attr.USAGE_CACHE_READ_TOKENS, attr.GEN_AI_CACHE_READ_TOKENS),
        (
            counts.cache_write_tokens,
            attr.USAGE_CACHE_WRITE_TOKENS,
            attr.GEN_AI_CACHE_WRITE_TOKENS,
        ),
    )
    for value, ours, standard in pairs:
        if value is not None:
            values[ours] = value
            values[standard] = value
    if counts.cache_write_1h_tokens is not None:
        values[attr.USAGE_CACHE_WRITE_1H_TOKENS] = counts.cache_write_1h_tokens
    if values:
        values[attr.USAGE_SOURCE] = source

    return values


def stream_error_attributes(error: BaseException) -> dict[str, Any]:
    """Span attributes for an error raised while the application read a stream."""
    if isinstance(error, ClientError):
        values = client_error_attributes(error.response.get("Error", {}))
        status = STREAM_ERROR_STATUS.get(values.get(attr.ERROR_CODE, ""))
        if status is not None:
            values[attr.ERROR_HTTP_STATUS] = status
        return values

    return {attr.ERROR_CODE: type(error).__name__, attr.ERROR_MESSAGE: str(error)}


def client_error_attributes(error: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes for the ``Error`` object of a failed response."""
    values: dict[str, Any] = {}
    code = error.get("Code")
    name = aws_error_name(code) if isinstance(code, str) else None
    if name is not None:
        values[attr.ERROR_CODE] = name
    message = error.get("Message") or error.get("message")
    if isinstance(message, str):
        values[attr.ERROR_MESSAGE] = message

    return values


def variant_attributes(
    service_tier: Any = None, latency: Any = None, invoked_model: Any = None
) -> dict[str, Any]:
    """Span attributes for how Bedrock served the call: tier, latency mode, routed model."""
    values: dict[str, Any] = {}
    for key, value in (
        (attr.SERVICE_TIER, service_tier),
        (attr.PERFORMANCE_LATENCY, latency),
        (attr.INVOKED_MODEL, invoked_model),
    ):
        if isinstance(value, str) and value:
            values[key] = value

    return values


def converse_variant(response: Mapping[str, Any]) -> dict[str, Any]:
    """Variant attributes from a Converse response or a ConverseStream ``metadata`` event."""
    return variant_attributes(
        dig(response, "serviceTier", "type"),
        dig(response, "performanceConfig", "latency"),
        dig(response, "trace", "promptRouter", "invokedModelId"),
    )
