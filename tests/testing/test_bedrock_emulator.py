"""Tests for the Bedrock Runtime emulator, driven by real boto3 clients over loopback."""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer

from otel_bedrock.testing import (
    BedrockEmulator,
    ScriptedResponse,
    eventstream,
    server_error,
    stream_exception_after,
    throttle,
    validation_error,
)
from otel_bedrock.testing.bedrock import REPLY_TEXT, model_family, prompt_tokens, synthesize
from tests.conftest import shared_files, shared_path

NOVA = "us.amazon.nova-micro-v1:0"
THROTTLING_TYPE = "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
COUNTS = ("inputTokens", "outputTokens", "totalTokens")
MESSAGES = [{"role": "user", "content": [{"text": "What is the capital of France?"}]}]


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[BedrockEmulator]:
    """One running emulator for the module, stopped at its end."""
    with BedrockEmulator() as emulator:
        yield emulator


@pytest.fixture
def emu(shared_emu: BedrockEmulator) -> BedrockEmulator:
    """The module's emulator with an empty queue and no recorded requests."""
    shared_emu.reset()

    return shared_emu


def make_client(emu: BedrockEmulator, attempts: int = 3, read_timeout: float = 5) -> Any:
    """A real boto3 bedrock-runtime client pointed at the emulator."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": attempts}, read_timeout=read_timeout
    )

    return boto3.client(
        "bedrock-runtime",
        endpoint_url=emu.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


@pytest.fixture(scope="module")
def client(shared_emu: BedrockEmulator) -> Any:
    """A boto3 client that makes up to three attempts."""
    return make_client(shared_emu)


@pytest.fixture(scope="module")
def single(shared_emu: BedrockEmulator) -> Any:
    """A boto3 client that makes one attempt only."""
    return make_client(shared_emu, attempts=1)


def test_converse_synthesized_reply(emu: BedrockEmulator, client: Any) -> None:
    """Converse gets the fixed reply and input tokens equal to the words of the prompt."""
    response = client.converse(modelId=NOVA, messages=MESSAGES)

    message = {"role": "assistant", "content": [{"text": REPLY_TEXT}]}
    assert response["output"] == {"message": message}
    assert response["stopReason"] == "end_turn"
    assert response["usage"] == {"inputTokens": 6, "outputTokens": 8, "totalTokens": 14}
    assert response["metrics"] == {"latencyMs": 120}


def test_converse_stream_synthesized_events(client: Any) -> None:
    """ConverseStream sends start, one delta per word, stop events and metadata with usage."""
    response = client.converse_stream(modelId=NOVA, messages=MESSAGES)
    events = list(response["stream"])

    names = [next(iter(event)) for event in events]
    assert names == ["messageStart"] + ["contentBlockDelta"] * 8 + [
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events[1:9])
    assert text == REPLY_TEXT
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert events[-1]["metadata"]["usage"] == {
        "inputTokens": 6,
        "outputTokens": 8,
        "totalTokens": 14,
    }


@pytest.mark.parametrize(
    ("model_id", "path", "expected"),
    [
        ("meta.llama3-1-8b-instruct-v1:0", ("generation_token_count",), 8),
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", ("usage", "input_tokens"), 4),
        ("amazon.titan-text-express-v1", ("inputTextTokenCount",), 4),
        ("eu.amazon.nova-lite-v1:0", ("usage", "totalTokens"), 12),
        ("mistral.mistral-7b-instruct-v0:2", ("prompt_token_count",), 4),
    ],
)
def test_invoke_model_family_body(
    client: Any, model_id: str, path: tuple[str, ...], expected: int
) -> None:
    """InvokeModel answers in the family's body format with the token-count headers."""
    request = json.dumps({"prompt": "one two three four"})
    response = client.invoke_model(modelId=model_id, body=request)
    body = json.loads(response["body"].read())

    value = body
    for key in path:
        value = value[key]
    assert value == expected
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "4"
    assert headers["x-amzn-bedrock-output-token-count"] == "8"
    assert headers["x-amzn-bedrock-invocation-latency"] == "120"


@pytest.mark.parametrize(
    ("model_id", "count"),
    [
        ("meta.llama3-1-8b-instruct-v1:0", 8),
        ("anthropic.claude-3-haiku-20240307-v1:0", 13),
        ("amazon.titan-text-express-v1", 8),
        ("us.amazon.nova-micro-v1:0", 12),
        ("cohere.command-r-v1:0", 8),
    ],
)
def test_invoke_stream_ends_with_invocation_metrics(client: Any, model_id: str, count: int) -> None:
    """InvokeModelWithResponseStream chunks end with amazon-bedrock-invocationMetrics."""
    response = client.invoke_model_with_response_stream(
        modelId=model_id, body=json.dumps({"prompt": "one two three"})
    )
    chunks = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]

    assert len(chunks) == count
    assert chunks[-1]["amazon-bedrock-invocationMetrics"] == {
        "inputTokenCount": 3,
        "outputTokenCount": 8,
        "invocationLatency": 120,
        "firstByteLatency": 40,
    }
    assert all("amazon-bedrock-invocationMetrics" not in chunk for chunk in chunks[:-1])


def test_count_tokens(client: Any) -> None:
    """CountTokens answers the number of words in the messages."""
    request = {"converse": {"messages": [{"role": "user", "content": [{"text": "one two"}]}]}}

    response = client.count_tokens(modelId="anthropic.claude-sonnet-4-20250514-v1:0", input=request)

    assert response["inputTokens"] == 2


def test_requests_record_raw_path_and_decoded_model_id(emu: BedrockEmulator, client: Any) -> None:
    """An ARN model id is recorded percent-encoded in the raw path and decoded in model_id."""
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"

    client.converse(modelId=arn, messages=MESSAGES)

    (request,) = emu.requests
    assert request.raw_path == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3A"
        "application-inference-profile%2Fabc123/converse"
    )
    assert request.model_id == arn
    assert request.operation == "Converse"
    assert request.method == "POST"
    assert json.loads(request.body)["messages"] == MESSAGES
    assert request.headers["content-type"] == "application/json"


def test_throttle_is_retried_by_boto3(emu: BedrockEmulator, client: Any) -> None:
    """A scripted 429 is served once and boto3's retry gets the synthesized success."""
    emu.enqueue(throttle())

    response = client.converse(modelId=NOVA, messages=MESSAGES)

    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert response["usage"]["outputTokens"] == 8
    assert len(emu.requests) == 2
    assert emu.pending == 0


@pytest.mark.parametrize(
    ("scripted", "status", "code"),
    [
        (throttle(), 429, "ThrottlingException"),
        (validation_error("bad input"), 400, "ValidationException"),
        (server_error(), 500, "InternalServerException"),
    ],
)
def test_error_builders_surface_as_client_errors(
    emu: BedrockEmulator, single: Any, scripted: ScriptedResponse, status: int, code: str
) -> None:
    """Each error builder reaches boto3 as a ClientError with its status and AWS error code."""
    emu.enqueue(scripted)

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        single.converse(modelId=NOVA, messages=MESSAGES)

    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_mid_stream_exception_raises_event_stream_error(emu: BedrockEmulator, client: Any) -> None:
    """A stream exception after some events surfaces as EventStreamError throttlingException."""
    start = eventstream.event("messageStart", {"role": "assistant"})
    delta = eventstream.event(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}
    )
    emu.enqueue(stream_exception_after([start, delta], "throttlingException"))
    received: list[dict[str, Any]] = []

    response = client.converse_stream(modelId=NOVA, messages=MESSAGES)
    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        for event in response["stream"]:
            received.append(event)

    assert received == [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Hi"}}},
    ]
    assert caught.value.response["Error"] == {
        "Code": "throttlingException",
        "Message": "Too many requests, please wait before trying again.",
    }


def test_truncated_stream_ends_after_complete_events(emu: BedrockEmulator, client: Any) -> None:
    """A stream cut inside its third message gives the reader only the first two events."""
    full = synthesize("ConverseStream", NOVA, b'{"text": "hi"}')
    buffer = EventStreamBuffer()
    buffer.add_data(full.body)
    first, second, *_ = list(buffer)
    keep = first.prelude.total_length + second.prelude.total_length + 5
    emu.enqueue(ScriptedResponse(200, full.headers, full.body, truncate_after=keep))

    response = client.converse_stream(modelId=NOVA, messages=MESSAGES)
    events = list(response["stream"])

    assert events == [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "This"}}},
    ]
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-length"] == str(len(full.body))


def test_delay_longer_than_read_timeout_times_out(emu: BedrockEmulator) -> None:
    """A response delayed past the client's read timeout raises ReadTimeoutError."""
    emu.enqueue(ScriptedResponse(200, {}, b"{}", delay_seconds=0.5))

    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        make_client(emu, attempts=1, read_timeout=0.1).converse(modelId=NOVA, messages=MESSAGES)


def test_request_id_generated_when_absent(emu: BedrockEmulator, client: Any) -> None:
    """A scripted response without x-amzn-requestid still carries a generated uuid."""
    emu.enqueue(ScriptedResponse(200, {"Content-Type": "application/json"}, b'{"inputTokens": 5}'))

    response = client.count_tokens(modelId=NOVA, input={"converse": {"messages": MESSAGES}})

    assert response["inputTokens"] == 5
    assert (
        str(uuid.UUID(response["ResponseMetadata"]["RequestId"]))
        == (response["ResponseMetadata"]["RequestId"])
    )


def test_accepted_sockets_have_nodelay_and_are_kept_alive() -> None:
    """Three calls share one kept-alive connection, accepted with TCP_NODELAY set."""
    with BedrockEmulator() as emu:
        client = make_client(emu)
        for _ in range(3):
            client.converse(modelId=NOVA, messages=MESSAGES)

        assert emu.accepted_nodelay == [True]


def test_reset_clears_queue_and_records(emu: BedrockEmulator, client: Any) -> None:
    """reset() drops queued responses and recorded requests."""
    client.converse(modelId=NOVA, messages=MESSAGES)
    emu.enqueue(throttle(), throttle())

    emu.reset()

    assert emu.requests == []
    assert emu.pending == 0


def test_from_recording_drops_hop_by_hop_headers() -> None:
    """from_recording keeps headers except connection, transfer-encoding and content-length."""
    recorded = {
        "status": 429,
        "headers": {
            "connection": "keep-alive",
            "content-length": "9",
            "transfer-encoding": "chunked",
            "x-amzn-errortype": THROTTLING_TYPE,
        },
        "body": '{"a": 1}',
    }

    response = ScriptedResponse.from_recording(recorded)

    assert response == ScriptedResponse(
        status=429,
        headers={"x-amzn-errortype": THROTTLING_TYPE},
        body=b'{"a": 1}',
    )


def test_load_exchange_queues_every_response(emu: BedrockEmulator) -> None:
    """load_exchange queues all of ``responses`` and nothing for an exchange without any."""
    case = json.loads(shared_path("cases", "throttled-twice-then-ok.json").read_text())

    assert emu.load_exchange(case) == 3
    assert emu.load_exchange({"operation": "ConverseStream"}) == 0
    assert emu.pending == 3


@pytest.mark.parametrize(
    ("model_id", "family"),
    [
        ("meta.llama3-1-8b-instruct-v1:0", "meta"),
        ("us.meta.llama3-2-1b-instruct-v1:0", "meta"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic"),
        ("apac.amazon.nova-pro-v1:0", "nova"),
        ("amazon.titan-text-lite-v1", "titan"),
        ("amazon.rerank-v1:0", "other"),
        ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-v1:0", "anthropic"),
        ("arn:aws:bedrock:us-east-1:1:inference-profile/eu.meta.llama3-2-3b-instruct-v1:0", "meta"),
        ("mistral.mistral-large-2402-v1:0", "other"),
    ],
)
def test_model_family(model_id: str, family: str) -> None:
    """The family is read from the provider segment after dropping ARN and geo prefixes."""
    assert model_family(model_id) == family


def _recordings() -> list[Any]:
    """One test parameter per shared recording."""
    return [pytest.param(p, id=p.stem) for p in shared_files("recordings")]


def _call(client: Any, operation: str, model_id: str) -> dict[str, Any]:
    """Call ``operation`` through boto3 with a minimal valid request."""
    if operation == "Converse":
        return dict(client.converse(modelId=model_id, messages=MESSAGES))
    if operation == "ConverseStream":
        response = client.converse_stream(modelId=model_id, messages=MESSAGES)
        return {**response, "events": list(response["stream"])}
    if operation == "InvokeModel":
        response = client.invoke_model(modelId=model_id, body=b"{}")
        return {**response, "raw": response["body"].read()}
    if operation == "InvokeModelWithResponseStream":
        response = client.invoke_model_with_response_stream(modelId=model_id, body=b"{}")
        return {**response, "events": list(response["body"])}
    request = {"converse": {"messages": MESSAGES}}

    return dict(client.count_tokens(modelId=model_id, input=request))


@pytest.mark.parametrize("path", _recordings())
def test_recording_replays_through_boto3(emu: BedrockEmulator, single: Any, path: Path) -> None:
    """A recorded response served by the emulator reaches boto3 as Bedrock sent it."""
    exchange = json.loads(path.read_text())
    recorded = exchange["response"]
    emu.load_exchange(exchange)
    client = single

    if recorded["status"] != 200:
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            _call(client, exchange["operation"], exchange["model_id"])
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == recorded["status"]
        assert caught.value.response["Error"]["Message"] == json.loads(recorded["body"])["message"]
        return
    result = _call(client, exchange["operation"], exchange["model_id"])

    assert emu.requests[0].raw_path == exchange["request"]["path"]
    assert emu.requests[0].model_id == exchange["model_id"]
    if "x-amzn-requestid" in recorded["headers"]:
        assert result["ResponseMetadata"]["RequestId"] == recorded["headers"]["x-amzn-requestid"]
    if "body_base64" in recorded:
        buffer = EventStreamBuffer()
        buffer.add_data(base64.b64decode(recorded["body_base64"]))
        assert len(result["events"]) == len(list(buffer))
    elif exchange["operation"] == "InvokeModel":
        assert result["raw"] == recorded["body"].encode("utf-8")
    elif exchange["operation"] == "Converse":
        usage = json.loads(recorded["body"])["usage"]
        assert {k: result["usage"][k] for k in COUNTS} == {k: usage[k] for k in COUNTS}
    else:
        assert result["inputTokens"] == json.loads(recorded["body"])["inputTokens"]


def test_recorded_stream_usage_decoded(emu: BedrockEmulator, client: Any) -> None:
    """A recorded Nova ConverseStream replays with its metadata usage and stop reason."""
    name = "pydantic-ai__test_bedrock__test_bedrock_model_stream__0.json"
    emu.load_exchange(json.loads(shared_path("recordings", name).read_text()))

    events = list(client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"])

    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"] == {
        "inputTokens": 13,
        "outputTokens": 82,
        "totalTokens": 95,
    }


def test_recorded_case_mid_stream_throttle(emu: BedrockEmulator, client: Any) -> None:
    """The mid-stream throttle case yields three chunks, then EventStreamError."""
    case = json.loads(shared_path("cases", "invoke-stream-midstream-throttle.json").read_text())
    emu.load_exchange(case)
    chunks: list[dict[str, Any]] = []

    response = client.invoke_model_with_response_stream(modelId=case["model_id"], body=b"{}")
    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        for event in response["body"]:
            chunks.append(json.loads(event["chunk"]["bytes"]))

    assert [chunk["type"] for chunk in chunks] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
    ]
    assert caught.value.response["Error"]["Code"] == "throttlingException"


def test_unknown_path_gets_404_with_request_id(emu: BedrockEmulator) -> None:
    """A path that is no Bedrock operation is answered 404 UnknownOperationException."""
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        connection.request("POST", "/guardrail/abc/version/1/apply", b"{}")
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()

    assert response.status == 404
    assert response.getheader("x-amzn-errortype", "").startswith("UnknownOperationException:")
    assert len(response.getheader("x-amzn-requestid", "")) == 36
    assert body == {"message": "The requested operation is unknown."}
    assert emu.requests[0].operation is None


def test_prompt_tokens_count_text_only() -> None:
    """Input tokens count words of text and system prompts, not image bytes or roles."""
    request = {
        "system": [{"text": "Be brief."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Describe this picture"},
                    {"image": {"format": "png", "source": {"bytes": "aGVsbG8gd29ybGQ="}}},
                ],
            }
        ],
    }

    assert prompt_tokens(json.dumps(request).encode()) == 5
    assert prompt_tokens(b"") == 1
    assert prompt_tokens(b"not json at all") == 4


def test_scripted_response_rejects_bad_arguments() -> None:
    """A ScriptedResponse with an impossible status or negative delay raises ValueError."""
    with pytest.raises(ValueError, match="status"):
        ScriptedResponse(status=42)
    with pytest.raises(ValueError, match="delay_seconds"):
        ScriptedResponse(delay_seconds=-1)
