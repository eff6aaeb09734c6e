"""Reading a Bedrock call from span data alone, as the exporter and a remote service see it."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otel_bedrock.calls import describe
from otel_bedrock.config import load_settings
from otel_bedrock.delivery import PostHogDelivery
from otel_bedrock.exporter import PostHogSpanExporter


def finished_span(attributes: dict[str, Any], error: str | None = None) -> ReadableSpan:
    """A finished span with these attributes, as the SDK would export it."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    span = provider.get_tracer("test").start_span("Bedrock Runtime.Call", attributes=attributes)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()
    [finished] = spans.get_finished_spans()
    return finished


def upstream_attributes(operation: str, model: str, **extra: Any) -> dict[str, Any]:
    """What the upstream botocore instrumentation alone writes on a Bedrock span."""
    return {
        "rpc.system": "aws-api",
        "rpc.service": "Bedrock Runtime",
        "rpc.method": operation,
        "cloud.region": "us-east-1",
        "gen_ai.system": "aws.bedrock",
        "gen_ai.request.model": model,
        **extra,
    }


def test_other_aws_spans_are_not_bedrock_calls() -> None:
    """An S3 span, or a Bedrock CountTokens span, describes no model call."""
    s3 = finished_span({"rpc.service": "S3", "rpc.method": "GetObject"})
    count = finished_span(upstream_attributes("CountTokens", "anthropic.claude-v2"))

    assert describe(s3) is None
    assert describe(count) is None


def test_upstream_only_converse_span_gives_measured_usage() -> None:
    """Without our hooks, upstream's Converse counts (measured by Bedrock) are used."""
    span = finished_span(
        upstream_attributes(
            "Converse",
            "us.amazon.nova-micro-v1:0",
            **{
                "gen_ai.usage.input_tokens": 21,
                "gen_ai.usage.output_tokens": 9,
                "gen_ai.response.finish_reasons": ("end_turn",),
                "retry_attempts": 0,
            },
        )
    )

    call = describe(span)

    assert call is not None
    assert (call.usage.input_tokens, call.usage.output_tokens) == (21, 9)
    assert call.usage_status == "measured"
    assert call.stop_reason == "end_turn"
    assert call.model.base_id == "amazon.nova-micro-v1:0"


def test_upstream_estimates_are_never_reported_as_counts() -> None:
    """Upstream's text-length estimates for Cohere InvokeModel are dropped, and flagged."""
    span = finished_span(
        upstream_attributes(
            "InvokeModel",
            "cohere.command-r-v1:0",
            **{"gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 12},
        )
    )

    call = describe(span)

    assert call is not None
    assert call.usage.input_tokens is None and call.usage.output_tokens is None
    assert call.usage_status == "missing"


def test_our_measured_counts_win_over_upstream() -> None:
    """Counts our hooks measured replace whatever upstream wrote."""
    span = finished_span(
        upstream_attributes(
            "InvokeModel",
            "mistral.mistral-large-2407-v1:0",
            **{
                "gen_ai.usage.input_tokens": 3,
                "bedrock.usage.input_tokens": 25,
                "bedrock.usage.output_tokens": 40,
                "bedrock.usage.source": "headers",
            },
        )
    )

    call = describe(span)

    assert call is not None
    assert (call.usage.input_tokens, call.usage.output_tokens) == (25, 40)


def test_error_kept_only_in_the_status_message_is_still_named() -> None:
    """A span whose only trace of a ClientError is its status message gives its AWS name."""
    message = (
        "An error occurred (ThrottlingException) when calling the ConverseStream operation "
        "(reached max retries: 2): Too many requests, please wait before trying again."
    )
    span = finished_span(
        upstream_attributes("ConverseStream", "amazon.nova-lite-v1:0", **{"http.status_code": 429}),
        error=message,
    )

    call = describe(span)

    assert call is not None and call.error is not None
    assert call.error.type == "ThrottlingException"
    assert call.error.message == "Too many requests, please wait before trying again."
    assert call.error.http_status == 429


def test_stream_completion_unknown_is_left_unknown() -> None:
    """A stream span that says nothing of its completion does not claim it was cut short."""
    span = finished_span(upstream_attributes("ConverseStream", "amazon.nova-lite-v1:0"))

    call = describe(span)

    assert call is not None
    assert call.stream is True
    assert call.stream_completed is None


def test_identity_keys_name_the_person_after_the_standard_keys() -> None:
    """An extra identity key beats the caller's context but not user.id on the span."""
    keys = ("tenant.user",)
    extra = {"tenant.user": "t-7", "bedrock.context.distinct_id": "from-context"}
    span = finished_span(upstream_attributes("Converse", "amazon.nova-micro-v1:0", **extra))
    both = finished_span(
        upstream_attributes("Converse", "amazon.nova-micro-v1:0", **extra, **{"user.id": "u-1"})
    )

    assert _distinct_id(span, ()) == "from-context"
    assert _distinct_id(span, keys) == "t-7"
    assert _distinct_id(both, keys) == "u-1"


def test_exporter_honours_the_identity_keys_setting() -> None:
    """The exporter's events name the person an identity_keys attribute gives."""
    settings = load_settings(api_key="phc_test", identity_keys="tenant.user")
    delivery = PostHogDelivery("phc_test", "http://127.0.0.1:9", spool_path=None)
    exporter = PostHogSpanExporter(settings=settings, delivery=delivery)
    span = finished_span(
        upstream_attributes("Converse", "amazon.nova-micro-v1:0", **{"tenant.user": "t-7"})
    )

    [event] = exporter.events_for(span)

    assert event.distinct_id == "t-7"
    assert "$process_person_profile" not in event.properties


def _distinct_id(span: ReadableSpan, keys: tuple[str, ...]) -> str | None:
    call = describe(span, identity_keys=keys)
    assert call is not None
    return call.distinct_id
