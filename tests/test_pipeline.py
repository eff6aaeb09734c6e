"""The whole in-process pipeline: real boto3, the Bedrock emulator, our hooks, PostHog events."""

from __future__ import annotations

import gc
import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.eventstream import EventStream
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    EventStreamError,
    ReadTimeoutError,
)
from opentelemetry import baggage, context
from posthog.contexts import identify_context, new_context

import otel_bedrock
from otel_bedrock.testing import (
    ScriptedResponse,
    eventstream,
    stream,
    stream_exception_after,
    validation_error,
)
from tests.conftest import make_client

LLAMA = "meta.llama3-1-8b-instruct-v1:0"
LLAMA_BODY = json.dumps({"prompt": "Eggs and spinach?", "max_gen_len": 64})
MESSAGES = [{"role": "user", "content": [{"text": "Eggs and spinach?"}]}]


def llama_reply(body: dict[str, Any] | None = None, tokens: tuple[int, int] = (12, 3)) -> Any:
    """An InvokeModel answer for Llama with token headers."""
    payload = body or {
        "generation": "Omelette.",
        "prompt_token_count": tokens[0],
        "generation_token_count": tokens[1],
        "stop_reason": "stop",
    }
    return ScriptedResponse(
        status=200,
        headers={
            "content-type": "application/json",
            "x-amzn-bedrock-input-token-count": str(tokens[0]),
            "x-amzn-bedrock-output-token-count": str(tokens[1]),
        },
        body=json.dumps(payload).encode(),
    )


def converse_stream_events() -> list[bytes]:
    """A complete ConverseStream answer: 30 tokens in, 5 out."""
    return [
        eventstream.event("messageStart", {"role": "assistant"}),
        eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Om"}}),
        eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "let"}}),
        eventstream.event("contentBlockStop", {"contentBlockIndex": 0}),
        eventstream.event("messageStop", {"stopReason": "end_turn"}),
        eventstream.event(
            "metadata",
            {
                "usage": {"inputTokens": 30, "outputTokens": 5, "totalTokens": 35},
                "metrics": {"latencyMs": 100},
            },
        ),
    ]


def test_invoke_model_event_has_tokens_cost_and_call_facts(pipeline: Any) -> None:
    """An InvokeModel call gives one completion event with exact tokens, cost and call facts."""
    pipeline.bedrock.enqueue(llama_reply())

    response = pipeline.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    assert json.loads(response["body"].read())["generation"] == "Omelette."
    event = pipeline.only_event()
    props = event["properties"]
    assert event["event"] == "bedrock_completion"
    assert props["model_id"] == LLAMA
    assert props["model"] == LLAMA
    assert props["operation"] == "InvokeModel"
    assert props["prompt_token_count"] == 12
    assert props["generation_token_count"] == 3
    assert props["stop_reason"] == "stop"
    assert props["cost_status"] == "priced"
    assert props["input_cost_in_dollars"] == pytest.approx(12 * 0.22e-6, abs=1e-12)
    assert props["output_cost_in_dollars"] == pytest.approx(3 * 0.22e-6, abs=1e-12)
    assert props["total_cost_in_dollars"] == pytest.approx(15 * 0.22e-6, abs=1e-12)
    assert props["retry_attempts"] == 0
    assert props["aws_region"] == "us-east-1"
    assert props["stream"] is False
    assert props["response_time_in_ms"] > 0
    assert "prompt" not in props and "generation" not in props


def test_invoke_model_body_stays_readable_for_the_application(pipeline: Any) -> None:
    """The application reads the same body bytes it would read without instrumentation."""
    reply = llama_reply()
    pipeline.bedrock.enqueue(reply)

    response = pipeline.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    assert response["body"].read() == reply.body


def test_headers_win_and_malformed_body_loses_nothing(pipeline: Any) -> None:
    """A body that is not JSON still gives an event, with the header token counts."""
    reply = llama_reply()
    reply.body = b"<html>not json</html>"
    pipeline.bedrock.enqueue(reply)

    pipeline.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    props = pipeline.only_event()["properties"]
    assert props["prompt_token_count"] == 12
    assert props["generation_token_count"] == 3
    assert "stop_reason" not in props


def test_unknown_family_gets_tokens_from_headers(pipeline: Any) -> None:
    """A model family nobody knows yet still reports tokens through the headers."""
    pipeline.bedrock.enqueue(llama_reply(body={"answer": "?"}, tokens=(7, 9)))

    pipeline.client.invoke_model(modelId="futurelab.model-x-v1:0", body=b"{}")

    props = pipeline.only_event()["properties"]
    assert props["prompt_token_count"] == 7
    assert props["generation_token_count"] == 9
    assert props["cost_status"] == "unpriced"
    assert "total_cost_in_dollars" not in props


def test_client_error_gives_one_error_event(pipeline: Any) -> None:
    """A 400 from Bedrock gives one bedrock_error with the AWS error name and HTTP status."""
    pipeline.bedrock.enqueue(validation_error("The provided model identifier is invalid."))

    with pytest.raises(ClientError):
        pipeline.client.converse(modelId="us.nope-v1:0", messages=MESSAGES)

    event = pipeline.only_event()
    props = event["properties"]
    assert event["event"] == "bedrock_error"
    assert props["error_type"] == "ValidationException"
    assert props["error_code"] == 400
    assert props["error_name"] == "ValidationException"
    assert props["error_message"] == "The provided model identifier is invalid."
    assert props["operation"] == "Converse"
    assert props["retry_attempts"] == 0
    assert "ValidationException" in props["error_stack"]


def _call(client: Any, operation: str) -> Any:
    """Make one call of ``operation`` to Llama."""
    if operation.startswith("Converse"):
        method = client.converse_stream if operation == "ConverseStream" else client.converse
        return method(modelId=LLAMA, messages=MESSAGES)
    if operation == "InvokeModel":
        return client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    return client.invoke_model_with_response_stream(modelId=LLAMA, body=LLAMA_BODY)


@pytest.mark.parametrize(
    "operation", ["InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"]
)
def test_call_rejected_with_400_gives_the_same_error_on_every_operation(
    pipeline: Any, operation: str
) -> None:
    """A 400 gives one error event (a stream call's span is ended) with name, status, stack."""
    pipeline.bedrock.enqueue(validation_error("Malformed input request."))

    with pytest.raises(ClientError):
        _call(pipeline.client, operation)

    props = pipeline.only_event()["properties"]
    assert props["operation"] == operation
    assert props["error_type"] == "ValidationException"
    assert props["error_name"] == "ValidationException"
    assert props["error_code"] == 400
    assert props["error_message"] == "Malformed input request."
    assert "botocore.errorfactory.ValidationException" in props["error_stack"]


@pytest.mark.parametrize("operation", ["Converse", "ConverseStream"])
def test_error_without_its_aws_name_is_named_by_the_client_exception(
    pipeline: Any, operation: str
) -> None:
    """A 429 that lost its x-amzn-errortype header is a ClientError, never a bare "429"."""
    pipeline.bedrock.enqueue(
        ScriptedResponse(
            status=429,
            headers={"content-type": "application/json"},
            body=b'{"message": "Too many requests, please wait before trying again."}',
        )
    )

    with pytest.raises(ClientError):
        _call(pipeline.client, operation)

    props = pipeline.only_event()["properties"]
    assert props["error_type"] == "ClientError"
    assert props["error_code"] == 429
    assert props["error_message"] == "Too many requests, please wait before trying again."
    assert "ClientError" in props["error_stack"]


def test_converse_stream_read_to_the_end(pipeline: Any) -> None:
    """A ConverseStream read to the end gives one completed event with its usage."""
    pipeline.bedrock.enqueue(stream(converse_stream_events()))

    events = list(pipeline.client.converse_stream(modelId=LLAMA, messages=MESSAGES)["stream"])

    assert len(events) == 6
    props = pipeline.only_event()["properties"]
    assert props["stream"] is True
    assert props["stream_completed"] is True
    assert props["prompt_token_count"] == 30
    assert props["generation_token_count"] == 5
    assert props["stop_reason"] == "end_turn"


def test_stream_dropped_after_two_events_gives_one_incomplete_event(pipeline: Any) -> None:
    """Breaking out of a stream and dropping it ends the span: one event, not completed."""
    pipeline.bedrock.enqueue(stream(converse_stream_events()))
    response = pipeline.client.converse_stream(modelId=LLAMA, messages=MESSAGES)

    for seen, _event in enumerate(response["stream"], start=1):
        if seen == 2:
            break
    del response
    gc.collect()

    props = pipeline.only_event()["properties"]
    assert props["stream_completed"] is False
    assert "prompt_token_count" not in props
    assert props["usage_status"] == "missing"
    assert "cost_status" not in props


def test_stream_never_read_gives_one_event_when_dropped(pipeline: Any) -> None:
    """A stream the application never iterates still ends its span when dropped."""
    pipeline.bedrock.enqueue(stream(converse_stream_events()))

    response = pipeline.client.converse_stream(modelId=LLAMA, messages=MESSAGES)
    del response
    gc.collect()

    assert pipeline.only_event()["properties"]["stream_completed"] is False


def test_stream_closed_early_gives_one_event(pipeline: Any) -> None:
    """Closing a stream before its end gives exactly one event."""
    pipeline.bedrock.enqueue(stream(converse_stream_events()))
    response = pipeline.client.converse_stream(modelId=LLAMA, messages=MESSAGES)

    response["stream"].close()
    del response
    gc.collect()

    assert pipeline.only_event()["properties"]["stream_completed"] is False


def test_exception_inside_a_stream_gives_one_error_event(pipeline: Any) -> None:
    """A throttling exception in the middle of a stream gives one bedrock_error."""
    first_two = converse_stream_events()[:2]
    pipeline.bedrock.enqueue(stream_exception_after(first_two, "throttlingException"))
    response = pipeline.client.converse_stream(modelId=LLAMA, messages=MESSAGES)

    with pytest.raises(EventStreamError):
        list(response["stream"])

    event = pipeline.only_event()
    assert event["event"] == "bedrock_error"
    assert event["properties"]["error_type"] == "ThrottlingException"
    assert event["properties"]["error_code"] == 429


def test_caller_sees_the_same_stream_events_as_without_instrumentation(
    bedrock: Any, make_pipeline: Any
) -> None:
    """The stream events the application receives are identical with and without us."""
    bedrock.reset()
    bedrock.enqueue(stream(converse_stream_events()))
    plain = list(
        make_client(bedrock.endpoint_url).converse_stream(modelId=LLAMA, messages=MESSAGES)[
            "stream"
        ]
    )
    pipeline = make_pipeline()
    pipeline.bedrock.enqueue(stream(converse_stream_events()))

    observed = list(pipeline.client.converse_stream(modelId=LLAMA, messages=MESSAGES)["stream"])

    assert observed == plain


def test_identify_names_the_person(pipeline: Any) -> None:
    """Calls inside otel_bedrock.identify() carry that distinct id and make a person."""
    pipeline.bedrock.enqueue(llama_reply())

    with otel_bedrock.identify("cook@example.com"):
        pipeline.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    event = pipeline.only_event()
    assert event["distinct_id"] == "cook@example.com"
    assert "$process_person_profile" not in event["properties"]


def test_baggage_names_the_person_before_identify(pipeline: Any) -> None:
    """A user.id in OpenTelemetry baggage wins over identify()."""
    pipeline.bedrock.enqueue(llama_reply())
    token = context.attach(baggage.set_baggage("user.id", "from-baggage"))
    try:
        with otel_bedrock.identify("from-helper"):
            pipeline.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)
    finally:
        context.detach(token)

    assert pipeline.only_event()["distinct_id"] == "from-baggage"


def test_posthog_context_names_the_person(pipeline: Any) -> None:
    """PostHog's own identify_context is honoured."""
    pipeline.bedrock.enqueue(llama_reply())

    with new_context():
        identify_context("posthog-user")
        pipeline.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    assert pipeline.only_event()["distinct_id"] == "posthog-user"


def test_enclosing_span_user_names_the_person(pipeline: Any) -> None:
    """An enduser.id on the span that encloses the call names the person."""
    pipeline.bedrock.enqueue(llama_reply())
    tracer = pipeline.provider.get_tracer("test")

    with tracer.start_as_current_span("POST /recipe", attributes={"enduser.id": "u-42"}):
        pipeline.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    assert pipeline.only_event()["distinct_id"] == "u-42"


def test_anonymous_call_makes_no_person(pipeline: Any) -> None:
    """Without any identity the event is personless, keyed by its trace id."""
    pipeline.bedrock.enqueue(llama_reply())

    pipeline.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    event = pipeline.only_event()
    assert event["properties"]["$process_person_profile"] is False
    assert event["distinct_id"] == event["properties"]["trace_id"]


def test_content_capture_off_by_default_and_on_when_asked(make_pipeline: Any) -> None:
    """Prompt and generation appear only with content capture on."""
    pipeline = make_pipeline(capture_content=True)
    pipeline.bedrock.enqueue(llama_reply())

    pipeline.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    props = pipeline.only_event()["properties"]
    assert props["prompt"] == "Eggs and spinach?"
    assert props["generation"] == "Omelette."


def test_captured_content_is_capped(make_pipeline: Any) -> None:
    """Captured text longer than the cap is cut and the event says so."""
    pipeline = make_pipeline(capture_content=True, max_content_chars=4)
    pipeline.bedrock.enqueue(llama_reply())

    pipeline.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    props = pipeline.only_event()["properties"]
    assert props["prompt"] == "Eggs"
    assert props["generation"] == "Omel"
    assert props["content_truncated"] is True


def test_ai_schema_sends_ai_generation(make_pipeline: Any) -> None:
    """With the ai schema, the call becomes a $ai_generation with all three costs."""
    pipeline = make_pipeline(event_schema="ai")
    pipeline.bedrock.enqueue(llama_reply())

    pipeline.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    event = pipeline.only_event()
    props = event["properties"]
    assert event["event"] == "$ai_generation"
    assert props["$ai_model"] == LLAMA
    assert props["$ai_input_tokens"] == 12
    assert props["$ai_output_tokens"] == 3
    assert props["$ai_total_cost_usd"] == pytest.approx(3.3e-6, abs=1e-12)
    assert props["$ai_is_error"] is False


def test_refused_connection_gives_one_error_event_with_its_retries(
    pipeline: Any, unused_port: int
) -> None:
    """A call that never reaches Bedrock is an error event with the retries botocore made."""
    client = make_client(f"http://127.0.0.1:{unused_port}", total_attempts=2)

    with pytest.raises(EndpointConnectionError):
        client.converse(modelId=LLAMA, messages=MESSAGES)

    event = pipeline.only_event()
    props = event["properties"]
    assert event["event"] == "bedrock_error"
    assert props["error_type"] == "EndpointConnectionError"
    assert props["retry_attempts"] == 1
    assert "error_code" not in props
    assert "cost_status" not in props


def test_stream_read_in_two_loops_reports_the_whole_stream(pipeline: Any) -> None:
    """Leaving one loop and reading the rest in another still gives the full usage."""
    pipeline.bedrock.enqueue(stream(converse_stream_events()))
    events = pipeline.client.converse_stream(modelId=LLAMA, messages=MESSAGES)["stream"]

    first = next(iter(events))
    rest = list(events)

    assert first == {"messageStart": {"role": "assistant"}}
    assert len(rest) == 5
    props = pipeline.only_event()["properties"]
    assert props["stream_completed"] is True
    assert props["prompt_token_count"] == 30
    assert props["generation_token_count"] == 5


def test_observed_stream_is_still_an_event_stream(pipeline: Any) -> None:
    """Code that checks the stream's type keeps working."""
    pipeline.bedrock.enqueue(stream(converse_stream_events()))

    events = pipeline.client.converse_stream(modelId=LLAMA, messages=MESSAGES)["stream"]

    assert isinstance(events, EventStream)
    list(events)


def test_ai_schema_input_keeps_roles(make_pipeline: Any) -> None:
    """With content capture, $ai_input lists the system prompt and turns with their roles."""
    pipeline = make_pipeline(event_schema="ai", capture_content=True)
    pipeline.bedrock.enqueue(stream(converse_stream_events()))
    messages = [
        {"role": "user", "content": [{"text": "Eggs?"}]},
        {"role": "assistant", "content": [{"text": "Omelette."}]},
        {"role": "user", "content": [{"text": "Quicker?"}]},
    ]

    list(
        pipeline.client.converse_stream(
            modelId=LLAMA, system=[{"text": "Be brief."}], messages=messages
        )["stream"]
    )

    props = pipeline.only_event()["properties"]
    assert props["$ai_input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Eggs?"},
        {"role": "assistant", "content": "Omelette."},
        {"role": "user", "content": "Quicker?"},
    ]
    assert props["$ai_output_choices"] == [{"role": "assistant", "content": "Omlet"}]


def test_read_timeout_gives_one_error_event(pipeline: Any) -> None:
    """A call that times out waiting for Bedrock is one error event named after the timeout."""
    slow = llama_reply()
    slow.delay_seconds = 0.5
    pipeline.bedrock.enqueue(slow)
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=pipeline.bedrock.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(read_timeout=0.1, retries={"total_max_attempts": 1}),
    )

    with pytest.raises(ReadTimeoutError):
        client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)

    event = pipeline.only_event()
    assert event["event"] == "bedrock_error"
    assert event["properties"]["error_type"] == "ReadTimeoutError"
    assert event["properties"]["retry_attempts"] == 0
    assert "error_code" not in event["properties"]
