"""Converse responses and ConverseStream events, recorded and built, give the right facts."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from otel_bedrock.converse import ConverseStreamState, converse_usage, parse_converse
from otel_bedrock.families import ResponseFacts
from otel_bedrock.usage import Usage
from tests.conftest import BUNDLED, shared_files
from tests.families.recorded import (
    case,
    converse_response,
    load,
    recording,
    stream_events,
)

PA = "pydantic-ai__test_bedrock__test_"
OL = "openllmetry__test_"

# Usage and stop reason of every successful recorded Converse response, read by eye.
CONVERSE: dict[str, tuple[Usage, str]] = {
    f"{OL}bedrock_guardrails_metrics__test_titan_converse_guardrail__0.json": (
        Usage(28, 26),
        "guardrail_intervened",
    ),
    f"{OL}titan__test_titan_converse__0.json": (Usage(28, 26), "guardrail_intervened"),
    f"{PA}bedrock_anthropic_tool_with_thinking__0.json": (Usage(397, 130, 0, 0), "tool_use"),
    f"{PA}bedrock_anthropic_tool_with_thinking__1.json": (Usage(539, 106, 0, 0), "end_turn"),
    f"{PA}bedrock_cache_messages_with_document_as_last_content__1.json": (
        Usage(3, 121, 1712, 236),
        "end_turn",
    ),
    f"{PA}bedrock_cache_usage_includes_cache_tokens__0.json": (
        Usage(13, 5, 1504, 0),
        "end_turn",
    ),
    f"{PA}bedrock_empty_system_prompt__0.json": (Usage(7, 126), "end_turn"),
    f"{PA}bedrock_llama_tool_result_followed_by_text_accepted__0.json": (
        Usage(186, 2),
        "end_turn",
    ),
    f"{PA}bedrock_media_kind_delivered_in_tool_result_meta_document___0.json": (
        Usage(149, 19),
        "tool_use",
    ),
    f"{PA}bedrock_media_kind_delivered_in_tool_result_meta_document___1.json": (
        Usage(208, 16),
        "end_turn",
    ),
    f"{PA}bedrock_media_kind_delivered_in_tool_result_meta_image___1.json": (
        Usage(1626, 68),
        "end_turn",
    ),
    f"{PA}bedrock_media_kind_delivered_in_tool_result_mistral_document___1.json": (
        Usage(150, 34),
        "end_turn",
    ),
    f"{PA}bedrock_mistral_two_tool_returns_images_accepted__0.json": (
        Usage(2982, 3),
        "end_turn",
    ),
    f"{PA}bedrock_model__0.json": (Usage(7, 30), "end_turn"),
    f"{PA}bedrock_model_anthropic_model_without_tools__0.json": (
        Usage(21, 69, 0, 0),
        "end_turn",
    ),
    f"{PA}bedrock_model_instructions__0.json": (Usage(13, 71), "end_turn"),
    f"{PA}bedrock_model_instructions_only_then_message_history_claude-sonnet-4-5___0.json": (
        Usage(13, 12, 0, 0),
        "end_turn",
    ),
    f"{PA}bedrock_model_instructions_only_then_message_history_claude-sonnet-4-5___1.json": (
        Usage(32, 9, 0, 0),
        "end_turn",
    ),
    f"{PA}bedrock_model_instructions_only_then_message_history_nova-micro___0.json": (
        Usage(7, 10),
        "end_turn",
    ),
    f"{PA}bedrock_model_other_parameters__0.json": (Usage(13, 5), "max_tokens"),
    f"{PA}bedrock_model_performance_config__0.json": (Usage(13, 67), "end_turn"),
    f"{PA}bedrock_model_retry__1.json": (Usage(531, 76), "end_turn"),
    f"{PA}bedrock_model_structured_output__0.json": (Usage(571, 22), "tool_use"),
    f"{PA}bedrock_model_structured_output__1.json": (Usage(627, 67), "end_turn"),
    f"{PA}bedrock_model_thinking_part_anthropic__0.json": (Usage(42, 313, 0, 0), "end_turn"),
    f"{PA}bedrock_model_thinking_part_anthropic__1.json": (Usage(334, 432, 0, 0), "end_turn"),
    f"{PA}bedrock_model_thinking_part_anthropic_adaptive__1.json": (
        Usage(358, 574, 0, 0),
        "end_turn",
    ),
    f"{PA}bedrock_model_thinking_part_anthropic_adaptive_effort__0.json": (
        Usage(14, 280, 0, 0),
        "end_turn",
    ),
    f"{PA}bedrock_model_thinking_part_anthropic_adaptive_effort__1.json": (
        Usage(316, 573, 0, 0),
        "end_turn",
    ),
    f"{PA}bedrock_model_thinking_part_anthropic_legacy__0.json": (
        Usage(43, 306, 0, 0),
        "end_turn",
    ),
    f"{PA}bedrock_model_thinking_part_anthropic_legacy__1.json": (
        Usage(341, 501, 0, 0),
        "end_turn",
    ),
    f"{PA}bedrock_model_thinking_part_deepseek__0.json": (Usage(12, 693), "end_turn"),
    f"{PA}bedrock_model_thinking_part_redacted__0.json": (Usage(92, 176, 0, 0), "end_turn"),
    f"{PA}bedrock_model_thinking_part_redacted__1.json": (Usage(182, 258, 0, 0), "end_turn"),
    f"{PA}bedrock_model_with_code_execution_tool__0.json": (Usage(1002, 59), "tool_use"),
    f"{PA}bedrock_model_with_code_execution_tool__1.json": (Usage(1148, 59), "tool_use"),
    f"{PA}bedrock_model_with_extra_headers__0.json": (Usage(2, 32), "end_turn"),
    f"{PA}bedrock_model_with_instructions_only_claude-sonnet-4-5___0.json": (
        Usage(13, 12, 0, 0),
        "end_turn",
    ),
    f"{PA}bedrock_model_with_instructions_only_nova-micro___0.json": (Usage(7, 10), "end_turn"),
    f"{PA}bedrock_nova_tool_result_followed_by_document_accepted__0.json": (
        Usage(436, 193),
        "end_turn",
    ),
    f"{PA}bedrock_thinking_false_qwen_variant_silent_drop__0.json": (Usage(19, 2), "end_turn"),
    f"{PA}bedrock_thinking_high_openai_variant__0.json": (Usage(74, 110), "end_turn"),
    f"{PA}bedrock_thinking_high_qwen_variant__1.json": (Usage(39, 166), "end_turn"),
    f"{PA}bedrock_thinking_true_openai_variant__0.json": (Usage(74, 26), "end_turn"),
    f"{PA}bedrock_thinking_true_qwen_variant__0.json": (Usage(15, 86), "end_turn"),
    f"{PA}bedrock_writer_tool_result_followed_by_text_accepted__0.json": (
        Usage(88, 1),
        "end_turn",
    ),
    f"{PA}image_as_binary_content_input__0.json": (Usage(1839, 49), "end_turn"),
    f"{PA}text_document_url_input__1.json": (Usage(681, 157), "end_turn"),
    f"{PA}video_as_binary_content_input__0.json": (Usage(1839, 49), "end_turn"),
}

# Generated text of some of them: reasoning, tool use and tool results are not text.
CONVERSE_TEXT: dict[str, str | None] = {
    f"{OL}titan__test_titan_converse__0.json": "{ADDRESS} is the capital of {ADDRESS}.\xa0Is there "
    "anything else you would like to know about {ADDRESS} or {ADDRESS}?",
    f"{PA}bedrock_thinking_true_openai_variant__0.json": "ok",
    f"{PA}bedrock_thinking_true_qwen_variant__0.json": "\n\nok",
    f"{PA}bedrock_writer_tool_result_followed_by_text_accepted__0.json": "DONE",
    f"{PA}bedrock_model_structured_output__0.json": None,
    f"{PA}bedrock_model_with_code_execution_tool__0.json": None,
    f"{PA}bedrock_model_with_instructions_only_nova-micro___0.json": "Hello! How can I assist "
    "you today?",
    f"{PA}bedrock_model_with_instructions_only_claude-sonnet-4-5___0.json": "Hello! How can I "
    "help you today?",
}

# Usage, stop reason and text of every successful recorded ConverseStream response.
STREAMS: dict[str, tuple[Usage, str, str | None]] = {
    f"{OL}anthropic__test_anthropic_converse_stream_with_tool_use__0.json": (
        Usage(236, 58),
        "tool_use",
        "Okay, let me check the weather for Barcelona using the available tool:",
    ),
    f"{OL}bedrock_guardrails_metrics__test_titan_converse_stream_guardrail__0.json": (
        Usage(28, 22),
        "guardrail_intervened",
        "Hello, {ADDRESS} is the capital of {ADDRESS}. Would you like to know more about "
        "{ADDRESS}?",
    ),
    f"{OL}meta__test_meta_converse_stream__0.json": (
        Usage(52, 36),
        "end_turn",
        'Why did the OpenTelemetry metric go to therapy?\n\nBecause it was feeling a little "un'
        'tracked" and had a lot of "exposed" issues to work through.',
    ),
    f"{PA}bedrock_model_code_execution_tool_stream__0.json": (Usage(1002, 59), "tool_use", None),
    f"{PA}bedrock_model_iter_stream__0.json": (
        Usage(471, 91),
        "tool_use",
        "<thinking> To find the temperature of the capital of France, I need to first determine "
        "the capital of France and then get the current temperature in that city. The capital "
        'of France is Paris. I will use the "get_temperature" tool to find the current '
        "temperature in Paris.</thinking>\n",
    ),
    f"{PA}bedrock_model_iter_stream__1.json": (
        Usage(577, 18),
        "end_turn",
        "The current temperature in Paris, the capital of France, is 30°C.",
    ),
    f"{PA}bedrock_model_stream__0.json": (
        Usage(13, 82),
        "end_turn",
        "The capital of France is Paris. Paris is not only the capital city but also the most "
        "populous city in France, and it is a major center for culture, commerce, fashion, and "
        "international diplomacy. Known for its historical landmarks, such as the Eiffel Tower, "
        'the Louvre Museum, and Notre-Dame Cathedral, Paris is often referred to as "The City of '
        'Light" or "The City of Love."',
    ),
    f"{PA}bedrock_model_stream_empty_text_delta__0.json": (
        Usage(70, 43),
        "end_turn",
        "Hello! How can I help you today?",
    ),
    f"{PA}bedrock_model_stream_with_extra_headers__0.json": (
        Usage(2, 32),
        "end_turn",
        "Hello! How can I assist you today? Whether you have a question, need information, or "
        "just want to chat, I'm here to help.",
    ),
    f"{PA}bedrock_model_thinking_part_redacted_stream__0.json": (
        Usage(92, 253),
        "end_turn",
        "I notice you've sent what appears to be some kind of command or trigger string, but I "
        "don't respond to special codes or triggers. That string doesn't have any special "
        "meaning to me.\n\nIf you have a question you'd like to discuss or need assistance with "
        "something, I'd be happy to help in a straightforward conversation. What would you like "
        "to talk about today?",
    ),
    f"{PA}bedrock_model_thinking_part_stream__0.json": (
        Usage(36, 73),
        "end_turn",
        "Hello! It's nice to meet you. How can I help you today?",
    ),
    f"{PA}stream_cancel__0.json": (
        Usage(13, 85),
        "end_turn",
        "The capital of France is Paris. Paris is not only the capital city but also the most "
        "populous city in France, and it is a major center for culture, commerce, fashion, and "
        "international diplomacy. Known for its historical landmarks, such as the Eiffel Tower, "
        'the Louvre Museum, and Notre-Dame Cathedral, Paris is often referred to as "The City of '
        'Light" and is a global hub for art and history.',
    ),
}

CASE_NAMES = {
    "prompt_token_count": "input_tokens",
    "generation_token_count": "output_tokens",
    "cache_read_token_count": "cache_read_tokens",
    "cache_write_token_count": "cache_write_tokens",
}


def _successful(operation: str) -> set[str]:
    names = set()
    for path in (BUNDLED / "recordings").glob("*.json"):
        record = load(path)
        if record["operation"] == operation and record["response"]["status"] == 200:
            names.add(path.name)

    return names


def _stream_facts(record: dict[str, Any], collect_text: bool = True) -> ResponseFacts:
    state = ConverseStreamState(collect_text=collect_text)
    for event in stream_events(record):
        state.observe(event)

    return state.facts()


def _check_case(facts: ResponseFacts, properties: dict[str, Any]) -> None:
    for prop, field in CASE_NAMES.items():
        if prop in properties:
            assert getattr(facts.usage, field) == properties[prop], prop
    if "stop_reason" in properties:
        assert facts.stop_reason == properties["stop_reason"]


def test_every_converse_recording_has_expected_values() -> None:
    """Each successful bundled Converse and ConverseStream recording has an expectation here."""
    assert _successful("Converse") == set(CONVERSE)
    assert _successful("ConverseStream") == set(STREAMS)


@pytest.mark.parametrize("name", sorted(CONVERSE))
def test_recorded_converse(name: str) -> None:
    """A recorded Converse response, parsed by botocore, gives its usage and stop reason."""
    facts = parse_converse(converse_response(recording(name)))

    assert (facts.usage, facts.stop_reason) == CONVERSE[name]


@pytest.mark.parametrize("name", sorted(CONVERSE_TEXT))
def test_recorded_converse_text(name: str) -> None:
    """Only text blocks make a Converse response's text; tool-only answers have none."""
    assert parse_converse(converse_response(recording(name))).text == CONVERSE_TEXT[name]


def test_deepseek_reasoning_after_text_is_left_out() -> None:
    """DeepSeek's reasoning block, which follows its text block, is not part of the text."""
    response = converse_response(recording(f"{PA}bedrock_model_thinking_part_deepseek__0.json"))
    blocks = response["output"]["message"]["content"]
    facts = parse_converse(response)

    assert facts.text == blocks[0]["text"]
    assert "reasoningContent" in blocks[1]


def test_error_body_gives_empty_facts() -> None:
    """The body of a failed Converse call gives no facts at all."""
    record = recording(f"{PA}bedrock_error__0.json")

    assert parse_converse(converse_response(record)) == ResponseFacts()


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_recorded_converse_stream(name: str) -> None:
    """Feeding every recorded ConverseStream event gives its usage, stop reason and text."""
    assert _stream_facts(recording(name)) == ResponseFacts(*STREAMS[name])


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_recorded_converse_stream_without_text(name: str) -> None:
    """With text collection off, a ConverseStream state keeps usage and stop reason only."""
    usage, stop, _ = STREAMS[name]

    assert _stream_facts(recording(name), collect_text=False) == ResponseFacts(usage, stop)


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name
        for p in shared_files("cases")
        if load(p)["operation"] == "Converse" and load(p)["expected"]["event"] != "bedrock_error"
    ),
)
def test_converse_case(name: str) -> None:
    """A shared Converse case's last response gives the counts and stop reason it expects."""
    record = case(name)

    _check_case(parse_converse(converse_response(record)), record["expected"]["properties"])


@pytest.mark.parametrize(
    "name",
    ["converse-stream-guardrail-no-message-start.json", "converse-stream-tool-fragments.json"],
)
def test_converse_stream_case(name: str) -> None:
    """A shared ConverseStream case gives the counts and stop reason it expects."""
    record = case(name)

    _check_case(_stream_facts(record), record["expected"]["properties"])


def test_guardrail_stream_keeps_zero_output() -> None:
    """A blocked stream with no messageStart reports its output count of 0 as 0."""
    facts = _stream_facts(case("converse-stream-guardrail-no-message-start.json"))

    assert facts == ResponseFacts(Usage(30, 0), "guardrail_intervened", None)


def test_tool_fragments_are_not_text() -> None:
    """Tool input fragments are not collected as text."""
    facts = _stream_facts(case("converse-stream-tool-fragments.json"))

    assert facts == ResponseFacts(Usage(60, 18), "tool_use", None)


def test_stream_abandoned_early_has_no_usage() -> None:
    """A stream read for two events only has no usage and no stop reason."""
    state = ConverseStreamState(collect_text=True)
    events = stream_events(case("converse-stream-early-break.json"))
    for _ in range(2):
        state.observe(next(events))

    assert state.facts() == ResponseFacts(Usage(), None, "Spinach")


def test_stream_read_to_the_end_has_usage_and_stop_reason() -> None:
    """A stream read to its end gives its usage and stop reason, and no text unless asked."""
    state = ConverseStreamState()
    for event in stream_events(case("converse-stream-early-break.json")):
        state.observe(event)

    assert state.facts() == ResponseFacts(Usage(30, 4), "end_turn", None)
    assert state.collect_text is False


def test_older_cache_key_spelling_is_read() -> None:
    """Cache counts under the ``...TokenCount`` spelling alone are read too."""
    usage = {"inputTokens": 5, "outputTokens": 1, "cacheReadInputTokenCount": 100}

    assert converse_usage(usage) == Usage(5, 1, 100, None)
    assert converse_usage({"cacheWriteInputTokenCount": 7}) == Usage(None, None, None, 7)


def test_documented_cache_keys_win() -> None:
    """When both spellings are present, the documented ``...Tokens`` keys are used."""
    usage = {"cacheReadInputTokens": 3, "cacheReadInputTokenCount": 4, "cacheWriteInputTokens": 0}

    assert converse_usage(usage) == Usage(None, None, 3, 0)


@pytest.mark.parametrize(
    "response",
    [
        None,
        "x",
        [],
        {},
        {"usage": "x", "stopReason": 3, "output": []},
        {"usage": {"inputTokens": "many", "outputTokens": -2}, "output": {"message": "x"}},
        {"output": {"message": {"content": "text"}}},
        {"output": {"message": {"content": [None, "a", {"text": 3}]}}},
    ],
)
def test_malformed_response_gives_empty_facts(response: Any) -> None:
    """A malformed Converse response gives empty facts and does not raise."""
    assert parse_converse(response) == ResponseFacts()


def test_malformed_events_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    """Malformed stream events are ignored without raising or logging."""
    state = ConverseStreamState(collect_text=True)
    with caplog.at_level(logging.WARNING):
        for event in [
            None,
            "x",
            {"contentBlockDelta": "x"},
            {"contentBlockDelta": {"delta": {"text": 5}}},
            {"contentBlockDelta": {"delta": {"toolUse": {"input": "{"}}}},
            {"contentBlockDelta": {"delta": {"reasoningContent": {"text": "hmm"}}}},
            {"messageStop": "x"},
            {"messageStop": {"stopReason": None}},
            {"metadata": {"usage": "x", "metrics": "y"}},
            {"throttlingException": {"message": "slow down"}},
        ]:
            state.observe(event)

    assert state.facts() == ResponseFacts()
    assert caplog.records == []


def test_one_hour_cache_writes_are_read_from_cache_details() -> None:
    """Converse's cacheDetails list gives the writes made with the one-hour lifetime."""
    usage = {
        "inputTokens": 10,
        "outputTokens": 2,
        "cacheWriteInputTokens": 1500,
        "cacheDetails": [{"ttl": "5m", "inputTokens": 500}, {"ttl": "1h", "inputTokens": 1000}],
    }

    assert converse_usage(usage) == Usage(10, 2, None, 1500, 1000)
