"""Spans recorded from five Bedrock instrumentations read as the same calls, usage and cost.

The fixtures in ``tests/data/otlp`` are what each instrumentation exported for the same six
calls against the Bedrock emulator (see the README there). The expected numbers below are read
by hand from the replies the emulator served (``calls.json``), not computed by the code.
"""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from collector.dialects import (
    DIALECTS,
    LogContent,
    canonical,
    content_attributes,
    content_from_log,
    dialect_of,
    messages_from_log,
)
from collector.otlp import JSON, decode_logs, decode_traces
from collector.spans import ReceivedLog, ReceivedSpan, received_logs, received_spans
from otel_bedrock.calls import BedrockCall, describe
from otel_bedrock.pricing import Cost, CostStatus, PriceBook

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "otlp"
FOLDERS = ("botocore", "genai-bedrock", "openllmetry", "openllmetry-0.47", "openinference", "node")
SUCCESSES = ("invoke_claude", "invoke_llama", "invoke_stream", "converse", "converse_stream")
USER = "user-42"

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
LLAMA_8B = "meta.llama3-1-8b-instruct-v1:0"
SONNET_3 = "anthropic.claude-3-sonnet-20240229-v1:0"
SONNET_45 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
LLAMA_1B = "meta.llama3-2-1b-instruct-v1:0"
JOKE = (
    "Why did the OpenTelemetry metric go to therapy?\n\nBecause it was feeling a little "
    '"untracked" and had a lot of "exposed" issues to work through.'
)


@dataclasses.dataclass(frozen=True)
class Expected:
    """What a recorded call should read as: operation, model id, counts and total cost."""

    operation: str
    model: str
    usage: tuple[int | None, int | None, int | None, int | None]  # in, out, cache read, write
    cost: float | None


# The replies as served. Usage is (input, output, cache read, cache write), input exclusive of
# the cache as Bedrock counts it. Cost in USD from the per-million prices of each model:
#   haiku 3.5 ($0.80 in, $4 out, $1 cache write): 4 x 0.8 + 50 x 4 + 18131 x 1 = 18334.2 u$
#   llama 3.1 8B ($0.22, $0.22): (21 + 9) x 0.22 = 6.6 u$
#   claude 3 sonnet ($3, $15): 16 x 3 + 21 x 15 = 363 u$
#   sonnet 4.5 us. ($3.30, $16.50, $0.33 cache read): 13 x 3.3 + 5 x 16.5 + 1504 x 0.33 = 621.72 u$
#   llama 3.2 1B ($0.10, $0.10): (52 + 36) x 0.1 = 8.8 u$
TRUTH = {
    "invoke_claude": Expected("InvokeModel", HAIKU, (4, 50, 0, 18131), 0.0183342),
    "invoke_llama": Expected("InvokeModel", LLAMA_8B, (21, 9, None, None), 0.0000066),
    "invoke_stream": Expected(
        "InvokeModelWithResponseStream", SONNET_3, (16, 21, None, None), 0.000363
    ),
    "converse": Expected("Converse", SONNET_45, (13, 5, 1504, 0), 0.00062172),
    "converse_stream": Expected("ConverseStream", LLAMA_1B, (52, 36, None, None), 0.0000088),
}
# Where an instrumentation records less than the reply said (see tests/data/otlp/README.md).
# Without the Claude cache write: 4 x 0.8 + 50 x 4 = 203.2 u$.
# Without the sonnet 4.5 cache read: 13 x 3.3 + 5 x 16.5 = 125.4 u$.
GAPS: dict[str, dict[str, dict[str, Any]]] = {
    "botocore": {
        "invoke_claude": {"usage": (4, 50, None, None), "cost": 0.0002032},
    },
    "genai-bedrock": {
        # No record of the API called: without a reply id, InvokeModel reads as Converse.
        "invoke_llama": {"operation": "Converse"},
        "invoke_stream": {"operation": "ConverseStream"},
    },
    "openllmetry": {
        # Streams are not marked; the model id lost its geography.
        "invoke_stream": {"operation": "InvokeModel"},
        "converse": {"model": SONNET_45.removeprefix("us.")},
        "converse_stream": {"operation": "Converse"},
    },
    "openllmetry-0.47": {
        "invoke_claude": {"usage": (4, 50, None, None), "cost": 0.0002032},
        # message_start's placeholder count: 16 x 3 + 1 x 15 = 63 u$.
        "invoke_stream": {"operation": "InvokeModel", "usage": (16, 1, None, None), "cost": 6.3e-5},
        "converse": {
            "model": SONNET_45.removeprefix("us."),
            "usage": (13, 5, None, None),
            "cost": 0.0001254,
        },
        "converse_stream": {"operation": "Converse"},
    },
    "openinference": {
        # Anthropic InvokeModel: the reply's model name, given its provider back.
        "invoke_claude": {"model": "anthropic.claude-3-5-haiku-20241022"},
        "invoke_stream": {"model": "anthropic.claude-3-sonnet-20240229"},
    },
    "node": {
        "invoke_claude": {"usage": (4, 50, None, None), "cost": 0.0002032},
        # The output count of Claude streams is message_start's placeholder: dropped.
        "invoke_stream": {"usage": (16, None, None, None), "cost": None},
        "converse": {"usage": (13, 5, None, None), "cost": 0.0001254},
    },
}


def expected(folder: str, name: str) -> Expected:
    """The truth for a call, with the recorded instrumentation's gaps."""
    return dataclasses.replace(TRUTH[name], **GAPS.get(folder, {}).get(name, {}))


@cache
def spans(folder: str, name: str) -> tuple[ReceivedSpan, ...]:
    """The spans of one recorded call."""
    body = (FIXTURES / folder / f"{name}.traces.json").read_bytes()
    found, rejected = received_spans(decode_traces(body, JSON))
    assert rejected == 0

    return tuple(found)


def logs(folder: str, name: str) -> list[ReceivedLog]:
    """The log records of one recorded call."""
    body = (FIXTURES / folder / f"{name}.logs.json").read_bytes()

    return received_logs(decode_logs(body, JSON))


def only_span(folder: str, name: str) -> ReceivedSpan:
    (span,) = spans(folder, name)

    return span


def call_of(span: ReceivedSpan) -> BedrockCall:
    """What ``describe`` makes of a span in canonical form."""
    values = canonical(span)
    assert values is not None
    call = describe(span.with_attributes(values))
    assert call is not None

    return call


def recorded_call(folder: str, name: str) -> BedrockCall:
    return call_of(only_span(folder, name))


@cache
def prices() -> PriceBook:
    return PriceBook()


def cost_of(call: BedrockCall) -> Cost:
    return prices().cost(call.model, call.usage)


def usage_of(call: BedrockCall) -> tuple[int | None, ...]:
    usage = call.usage
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
    )


def all_calls(names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(folder, name) for folder in FOLDERS for name in names]


@pytest.mark.parametrize(
    ("folder", "dialect"),
    [
        ("botocore", "botocore"),
        ("genai-bedrock", "genai-bedrock"),
        ("openllmetry", "openllmetry"),
        ("openllmetry-0.47", "openllmetry"),
        ("openinference", "openinference"),
        ("node", "node"),
    ],
)
def test_each_instrumentation_is_recognised_by_its_scope(folder: str, dialect: str) -> None:
    """Every recorded span is attributed to the dialect of the instrumentation that made it."""
    names = (*SUCCESSES, "converse_error")

    assert {dialect_of(span) for name in names for span in spans(folder, name)} == {dialect}
    assert dialect in DIALECTS


@pytest.mark.parametrize(("folder", "name"), all_calls(SUCCESSES))
def test_operation_and_model(folder: str, name: str) -> None:
    """Each call reads as the Bedrock operation and model id it used, as far as recorded."""
    call = recorded_call(folder, name)
    truth = expected(folder, name)

    assert (call.operation, call.model.raw) == (truth.operation, truth.model)
    assert call.stream == (truth.operation in ("InvokeModelWithResponseStream", "ConverseStream"))


@pytest.mark.parametrize(("folder", "name"), all_calls(SUCCESSES))
def test_token_counts(folder: str, name: str) -> None:
    """Input (cache-exclusive), output, cache read and cache write are Bedrock's counts."""
    call = recorded_call(folder, name)
    truth = expected(folder, name)

    # A cache count of 0 and an absent one both mean no cache tokens.
    assert [n or 0 for n in usage_of(call)] == [n or 0 for n in truth.usage]
    assert call.usage_status == ("measured" if None not in truth.usage[:2] else "partial")


@pytest.mark.parametrize(("folder", "name"), all_calls(SUCCESSES))
def test_cost(folder: str, name: str) -> None:
    """The cost in USD is the one computed by hand from the reply's counts."""
    cost = cost_of(recorded_call(folder, name))
    truth = expected(folder, name)

    if truth.cost is None:
        assert cost.status is CostStatus.UNPRICED
    else:
        assert cost.status is CostStatus.PRICED
        assert cost.total_usd == pytest.approx(truth.cost, abs=1e-12)


def complete_in_both(folder: str, name: str) -> bool:
    """True when neither this folder's instrumentation nor botocore lost counts of the call."""
    return all("usage" not in GAPS.get(f, {}).get(name, {}) for f in (folder, "botocore"))


@pytest.mark.parametrize(
    ("folder", "name"),
    [(folder, name) for folder, name in all_calls(SUCCESSES) if complete_in_both(folder, name)],
)
def test_same_call_same_usage_and_cost_as_botocore(folder: str, name: str) -> None:
    """Where neither records less than the reply, a dialect matches upstream botocore exactly."""
    call = recorded_call(folder, name)
    reference = recorded_call("botocore", name)

    assert [n or 0 for n in usage_of(call)] == [n or 0 for n in usage_of(reference)]
    assert call.model.base_id == reference.model.base_id or folder == "openinference"
    assert cost_of(call) == cost_of(reference)


@pytest.mark.parametrize("folder", FOLDERS)
def test_identity(folder: str) -> None:
    """The user named the way each ecosystem names it becomes the distinct id of every call."""
    for name in (*SUCCESSES, "converse_error"):
        assert recorded_call(folder, name).distinct_id == USER


@pytest.mark.parametrize(
    ("folder", "stop_reasons"),
    [
        ("botocore", ("max_tokens", "stop", "end_turn", "end_turn", "end_turn")),
        ("node", ("max_tokens", "stop", "end_turn", "end_turn", "end_turn")),
        ("openinference", ("max_tokens", "stop", "end_turn", "end_turn", "end_turn")),
        # The GenAI conventions' finish reasons replace Bedrock's.
        ("genai-bedrock", ("length", "stop", "stop", "stop", "stop")),
        ("openllmetry", ("length", "stop", "stop", "stop", "stop")),
        ("openllmetry-0.47", (None, None, None, None, None)),
    ],
)
def test_stop_reasons(folder: str, stop_reasons: tuple[str | None, ...]) -> None:
    """The stop reason of each call, in the words the instrumentation recorded."""
    assert tuple(recorded_call(folder, name).stop_reason for name in SUCCESSES) == stop_reasons


@pytest.mark.parametrize(
    ("folder", "region", "request_id"),
    [
        ("botocore", "us-east-1", "af89f847-79d1-4408-ae4c-5c663d1095a5"),
        ("node", "us-east-1", "af89f847-79d1-4408-ae4c-5c663d1095a5"),
        ("genai-bedrock", None, None),
        ("openllmetry", None, None),
        ("openinference", None, None),
    ],
)
def test_region_and_request_id(folder: str, region: str | None, request_id: str | None) -> None:
    """Region and request id come through where the instrumentation records them."""
    call = recorded_call(folder, "converse_stream")

    assert (call.region, call.request_id) == (region, request_id)


@pytest.mark.parametrize(
    ("folder", "http_status"),
    [
        ("botocore", 400),
        ("node", 400),
        ("genai-bedrock", None),
        ("openllmetry", None),
        ("openllmetry-0.47", None),
        ("openinference", None),
    ],
)
def test_refused_call(folder: str, http_status: int | None) -> None:
    """A 400 ValidationException reads as a failed Converse call with no usage."""
    call = recorded_call(folder, "converse_error")

    assert call.operation == "Converse"
    assert call.error is not None
    assert (call.error.type, call.error.name) == ("ValidationException", "ValidationException")
    assert call.error.http_status == http_status
    assert call.error.message is not None
    assert call.error.message.endswith("starts with a user message.")
    assert call.usage_status == "missing"


@pytest.mark.parametrize("folder", ["genai-bedrock", "openllmetry", "openllmetry-0.47"])
def test_content_from_gen_ai_span_attributes(folder: str) -> None:
    """Messages recorded on the span become our prompt, prompt messages and generation."""
    call = recorded_call(folder, "converse_stream")

    assert call.prompt_messages == (
        {"role": "system", "content": "You are an app that knows about everything."},
        {"role": "user", "content": "Tell me a joke about opentelemetry"},
    )
    assert call.prompt == (
        "You are an app that knows about everything.\nTell me a joke about opentelemetry"
    )
    assert call.generation == JOKE


def test_content_from_openinference_attributes() -> None:
    """OpenInference's message attributes, and its raw text input for prompt-only models."""
    chat = recorded_call("openinference", "converse_stream")
    completion = recorded_call("openinference", "invoke_llama")
    llama_prompt = json.loads((FIXTURES / "calls.json").read_text())[1]["request"]["prompt"]

    assert chat.prompt_messages == (
        {"role": "system", "content": "You are an app that knows about everything."},
        {"role": "user", "content": "Tell me a joke about opentelemetry"},
    )
    assert chat.generation == JOKE
    assert completion.prompt_messages == ({"role": "user", "content": llama_prompt},)
    assert completion.generation == "Cumin, coriander and turmeric."


@pytest.mark.parametrize("folder", ["botocore", "node"])
def test_no_content_on_spans_without_it(folder: str) -> None:
    """Spans that carry no message content give none."""
    call = recorded_call(folder, "converse_stream")

    assert (call.prompt, call.prompt_messages, call.generation) == (None, None, None)


@pytest.mark.parametrize("folder", ["botocore", "genai-bedrock"])
def test_content_log_records(folder: str) -> None:
    """Content log records give each message with its role, joined to the call's span."""
    span = only_span(folder, "converse_stream")
    pieces = [
        piece for record in logs(folder, "converse_stream") for piece in messages_from_log(record)
    ]
    ids = (span.context.trace_id, span.context.span_id)

    assert pieces == [
        LogContent(*ids, "system", "You are an app that knows about everything.", False),
        LogContent(*ids, "user", "Tell me a joke about opentelemetry", False),
        LogContent(*ids, "assistant", JOKE, True),
    ]


def test_content_log_records_become_our_content_attributes() -> None:
    """Joined to their span, botocore's content events give what the hooks write in-process."""
    span = only_span("botocore", "invoke_llama")
    pieces = [
        piece for record in logs("botocore", "invoke_llama") for piece in messages_from_log(record)
    ]
    values = canonical(span)
    assert values is not None
    call = describe(span.with_attributes({**values, **content_attributes(pieces)}))
    llama_prompt = json.loads((FIXTURES / "calls.json").read_text())[1]["request"]["prompt"]

    assert call is not None
    assert call.prompt_messages == ({"role": "user", "content": llama_prompt},)
    assert call.prompt == llama_prompt
    assert call.generation == "Cumin, coriander and turmeric."


def test_prompt_of_a_refused_call_from_logs() -> None:
    """A refused call's prompt arrives as an assistant message of the input."""
    (record,) = logs("botocore", "converse_error")
    span = only_span("botocore", "converse_error")

    assert messages_from_log(record) == (
        LogContent(span.context.trace_id, span.context.span_id, "assistant", "Hello", False),
    )
    assert content_from_log(record) == {
        "bedrock.prompt.messages": '[{"role": "assistant", "content": "Hello"}]',
        "bedrock.prompt": "Hello",
    }


def test_log_records_that_are_not_content_or_name_no_span() -> None:
    """Other log records, and content records without span ids, give nothing."""
    record = logs("botocore", "converse_stream")[1]

    assert messages_from_log(dataclasses.replace(record, event_name="app.started")) == ()
    assert messages_from_log(dataclasses.replace(record, span_id=None)) == ()
    assert content_from_log(dataclasses.replace(record, event_name="app.started")) is None


@pytest.mark.parametrize(
    ("folder", "change"),
    [
        ("botocore", {"attributes": {"rpc.service": "Bedrock Agent Runtime"}}),
        (
            "botocore",
            {"attributes": {"rpc.service": "Bedrock", "rpc.method": "ListFoundationModels"}},
        ),
        ("botocore", {"attributes": {"rpc.method": "CountTokens"}}),
        ("node", {"attributes": {"rpc.service": "S3", "rpc.method": "GetObject"}}),
        ("genai-bedrock", {"attributes": {"gen_ai.operation.name": "invoke_agent"}}),
        (
            "genai-bedrock",
            {"attributes": {"server.address": "bedrock-agent-runtime.us-east-1.amazonaws.com"}},
        ),
        ("openinference", {"name": "bedrock.retrieve_and_generate"}),
        ("openllmetry", {"scope": "opentelemetry.instrumentation.flask"}),
    ],
)
def test_spans_that_are_no_model_call(folder: str, change: dict[str, Any]) -> None:
    """Other services, agent runtime and control plane calls and unknown spans give None."""
    span = only_span(folder, "converse")
    attributes = {**span.attributes, **change.pop("attributes", {})}
    other = dataclasses.replace(span, attributes=attributes, **change)

    assert canonical(other) is None


def test_other_aws_sdk_instrumentations() -> None:
    """A span in the AWS SDK conventions from an unknown scope (a Java agent) is read too."""
    span = dataclasses.replace(
        only_span("node", "invoke_llama"), scope="io.opentelemetry.aws-sdk-2.2"
    )
    call = call_of(span)

    assert dialect_of(span) == "aws-sdk"
    assert (call.operation, call.model.raw, usage_of(call)) == (
        "InvokeModel",
        LLAMA_8B,
        (21, 9, None, None),
    )


def test_region_from_the_endpoint() -> None:
    """The region of a GenAI span comes from the Bedrock endpoint it called."""
    span = only_span("genai-bedrock", "converse")
    address = {"server.address": "bedrock-runtime.eu-west-1.amazonaws.com"}
    moved = dataclasses.replace(span, attributes={**span.attributes, **address})

    assert call_of(moved).region == "eu-west-1"


def test_a_user_set_on_the_span_wins_over_traceloop_association() -> None:
    """OpenLLMetry's association user is ours only when the span names no user itself."""
    span = only_span("openllmetry", "converse")
    named = dataclasses.replace(span, attributes={**span.attributes, "user.id": "user-7"})

    assert call_of(named).distinct_id == "user-7"


def test_openinference_prompt_count_without_the_cache() -> None:
    """OpenInference's prompt count includes cache reads and writes: they are taken out."""
    span = only_span("openinference", "converse")

    assert span.attributes["llm.token_count.prompt"] == 13 + 1504 + 0
    assert recorded_call("openinference", "converse").usage.input_tokens == 13


def test_one_record_with_a_whole_call() -> None:
    """The GenAI details event holds prompt and reply at once: one record gives all of it."""
    (record,) = logs("genai-bedrock", "converse_stream")
    system, user = (
        "You are an app that knows about everything.",
        "Tell me a joke about opentelemetry",
    )

    assert content_from_log(record) == {
        "bedrock.prompt.messages": json.dumps(
            [{"role": "system", "content": system}, {"role": "user", "content": user}]
        ),
        "bedrock.prompt": f"{system}\n{user}",
        "bedrock.generation": JOKE,
    }


@pytest.mark.parametrize("folder", ["genai-bedrock", "openllmetry", "openinference"])
def test_content_left_out_when_capture_is_off(folder: str) -> None:
    """With content off, no prompt or generation is read from the span into our names."""
    values = canonical(only_span(folder, "converse_stream"), content=False)

    assert values is not None
    assert {"bedrock.prompt", "bedrock.prompt.messages", "bedrock.generation"}.isdisjoint(values)
    assert values["rpc.method"] == expected(folder, "converse_stream").operation
