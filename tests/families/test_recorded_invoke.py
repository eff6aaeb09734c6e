"""Every recorded InvokeModel and InvokeModelWithResponseStream exchange parses to what it shows."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from otel_bedrock.families import ResponseFacts, family_for
from otel_bedrock.usage import Usage
from tests.conftest import shared_files, shared_path
from tests.families.recorded import chunk_payloads, invoke_body, load, recording


@dataclass(frozen=True)
class Expected:
    provider: str | None
    base_id: str | None
    usage: Usage
    stop_reason: str | None
    text_start: str | None
    text_end: str | None = None


_CLAUDE_CACHE_WRITE = Usage(4, 50, 0, 18131)
_CLAUDE_CACHE_READ = Usage(4, 50, 18131, 0)
_HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
_TITAN = "amazon.titan-text-express-v1"
OL = "openllmetry__test_"

# Values read from the recordings' bodies by eye (counts agree with the x-amzn-bedrock headers).
BODIES: dict[str, Expected] = {
    f"{OL}ai21__test_ai21_j2_completion_string_content__0.json": Expected(
        "ai21",
        "ai21.j2-mid-v1",
        Usage(26, 42),
        "endoftext",
        "\n'Amazon Bedrock es la manera más fácil",
        "con modelos base (FMs)'.",
    ),
    f"{OL}anthropic__test_anthropic_2_completion__0.json": Expected(
        "anthropic",
        "anthropic.claude-v2:1",
        Usage(),
        "stop_sequence",
        " Here's a silly joke about opentelemetry:",
        "or have a different request.",
    ),
    f"{OL}anthropic__test_anthropic_3_completion_complex_content__0.json": Expected(
        "anthropic",
        "anthropic.claude-3-sonnet-20240229-v1:0",
        Usage(16, 29),
        "end_turn",
        "Why did the data packet cross the road? To get to the other side with "
        "OpenTelemetry's distributed tracing!",
    ),
    f"{OL}anthropic__test_prompt_cache__0.json": Expected(
        "anthropic",
        _HAIKU,
        _CLAUDE_CACHE_WRITE,
        "max_tokens",
        "I'll provide a comprehensive overview",
        "2. Variables and data types",
    ),
    f"{OL}bedrock_prompt_caching_metrics__test_prompt_cache__0.json": Expected(
        "anthropic",
        _HAIKU,
        _CLAUDE_CACHE_WRITE,
        "max_tokens",
        "I'll provide a comprehensive overview",
        "2. Variables and data types",
    ),
    f"{OL}bedrock_prompt_caching_metrics__test_prompt_cache__1.json": Expected(
        "anthropic",
        _HAIKU,
        _CLAUDE_CACHE_READ,
        "max_tokens",
        "I'll provide a comprehensive overview",
        "2. Variables and data types",
    ),
    f"{OL}bedrock_guardrails_metrics__test_titan_invoke_model_guardrail__0.json": Expected(
        "amazon",
        _TITAN,
        Usage(28, 197),
        "FINISH",
        "\nOnce upon a time, a young girl named Lily",
        "new wonders in the world.",
    ),
    f"{OL}bedrock_metrics__test_invoke_model_metrics__0.json": Expected(
        "amazon",
        _TITAN,
        Usage(9, 17),
        "FINISH",
        "\nWhat do you call a bear with no teeth?\nA gummy bear.",
    ),
    f"{OL}titan__test_titan_completion__0.json": Expected(
        "amazon",
        _TITAN,
        Usage(30, 29),
        "FINISH",
        ': "Amazon Bedrock es la forma más sencilla',
        'con modelos base (FM)".',
    ),
    f"{OL}cohere__test_cohere_completion__0.json": Expected(
        "cohere",
        "cohere.command-text-v14",
        Usage(),
        "COMPLETE",
        " What does an open-source project say to a cloud provider?",
        "feel free to ask for a clarification.",
    ),
    f"{OL}imported_model__test_imported_model_completion__0.json": Expected(
        None,
        None,
        Usage(6, 100),
        "length",
        " I'm a high school student.",
        "when we get down to really",
    ),
    # The guardrail rewrote this body and left only inputTokens in its usage.
    f"{OL}nova__test_nova_completion__0.json": Expected(
        "amazon",
        "amazon.nova-lite-v1:0",
        Usage(input_tokens=30),
        "end_turn",
        "We set off into the dense forest,",
        "etched into the trunk of a nearby tree.",
    ),
}

STREAMS: dict[str, Expected] = {
    f"{OL}anthropic__test_anthropic_3_completion_streaming__0.json": Expected(
        "anthropic",
        "anthropic.claude-3-sonnet-20240229-v1:0",
        Usage(16, 21),
        "end_turn",
        "Why did the distributed tracing span cross the road? To get to the other service!",
    ),
    f"{OL}titan__test_titan_invoke_stream__0.json": Expected(
        "amazon",
        _TITAN,
        Usage(28, 188),
        "FINISH",
        "\nOnce upon a time, a little girl named Emily",
        "wonder to the adventure.",
    ),
    f"{OL}bedrock_guardrails_metrics__test_titan_invoke_stream_guardrail__0.json": Expected(
        "amazon",
        _TITAN,
        Usage(28, 188),
        "FINISH",
        "\nOnce upon a time, a little girl named Emily",
        "wonder to the adventure.",
    ),
    f"{OL}nova__test_nova_invoke_stream__0.json": Expected(
        "amazon",
        "amazon.nova-lite-v1:0",
        Usage(30, 55, 0, 0),
        "end_turn",
        "On their first night in the wilderness, the friends gathered around the campfire, "
        "sharing stories and laughter. As they settled in for the night, they couldn't resist "
        "checking the mysterious string {Account Number} they found in their survival kit.",
    ),
}


def _check(facts: ResponseFacts, expected: Expected) -> None:
    assert facts.usage == expected.usage
    assert facts.stop_reason == expected.stop_reason
    assert facts.text is not None
    if expected.text_end is None:
        assert facts.text == expected.text_start
    else:
        assert facts.text.startswith(expected.text_start or "")
        assert facts.text.endswith(expected.text_end)


def _names(operation: str) -> set[str]:
    return {p.name for p in shared_files("recordings") if load(p)["operation"] == operation}


def test_every_invoke_recording_has_expected_values() -> None:
    """Each recorded InvokeModel and stream exchange has a hand-read expectation here."""
    shared_path("recordings")
    assert _names("InvokeModel") == set(BODIES)
    assert _names("InvokeModelWithResponseStream") == set(STREAMS)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_recorded_body(name: str) -> None:
    """A recorded InvokeModel body gives the counts, stop reason and text it holds."""
    expected = BODIES[name]
    family = family_for(expected.provider)

    _check(family.parse_body(invoke_body(recording(name)), expected.base_id), expected)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_recorded_stream_with_text(name: str) -> None:
    """Feeding every decoded chunk of a recorded stream gives its usage, stop reason and text."""
    expected = STREAMS[name]
    state = family_for(expected.provider).new_stream_state(expected.base_id, collect_text=True)
    for payload in chunk_payloads(recording(name)):
        state.observe_chunk(json.loads(payload))

    _check(state.facts(), expected)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_recorded_stream_markers_suffice(name: str) -> None:
    """Decoding only chunks that hold a marker gives the same usage and stop reason."""
    expected = STREAMS[name]
    state = family_for(expected.provider).new_stream_state(expected.base_id)
    decoded = 0
    for payload in chunk_payloads(recording(name)):
        if any(marker in payload for marker in state.markers):
            decoded += 1
            state.observe_chunk(json.loads(payload))
    facts = state.facts()

    assert facts == ResponseFacts(expected.usage, expected.stop_reason, None)
    assert decoded <= 3
