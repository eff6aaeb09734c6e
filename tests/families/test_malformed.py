"""No reader raises, whatever the body or chunk, and wrong types give no facts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from otel_bedrock.families import ResponseFacts, family_for
from otel_bedrock.usage import Usage

PROVIDERS = ["anthropic", "meta", "amazon", "cohere", "mistral", "ai21", "openai", None]
JUNK: list[Any] = [None, "x", "12x", -3, 1.5, True, [], {}, [1], [None], {"a": None}]

# One body of every shape the readers know, to be broken one value at a time.
SHAPES: list[dict[str, Any]] = [
    {
        "content": [{"type": "text", "text": "a"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 1,
            "output_tokens": 2,
            "cache_read_input_tokens": 3,
            "cache_creation_input_tokens": 4,
        },
    },
    {"completion": "a", "stop_reason": "stop_sequence"},
    {"generation": "a", "prompt_token_count": 1, "generation_token_count": 2, "stop_reason": "x"},
    {
        "inputTextTokenCount": 1,
        "results": [{"tokenCount": 2, "outputText": "a", "completionReason": "FINISH"}],
    },
    {
        "output": {"message": {"content": [{"text": "a"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 2, "cacheReadInputTokenCount": 3},
    },
    {"generations": [{"text": "a", "finish_reason": "COMPLETE"}]},
    {"text": "a", "finish_reason": "COMPLETE"},
    {"outputs": [{"text": "a", "stop_reason": "stop"}]},
    {
        "choices": [
            {"message": {"content": "a"}, "delta": {"content": "b"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2},
    },
    {
        "prompt": {"tokens": [{}]},
        "completions": [
            {"data": {"text": "a", "tokens": [{}]}, "finishReason": {"reason": "length"}}
        ],
    },
]
CHUNKS: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"usage": {"input_tokens": 1}}},
    {"type": "content_block_delta", "delta": {"text": "a"}},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
    {"messageStop": {"stopReason": "end_turn"}},
    {"metadata": {"usage": {"inputTokens": 1}}},
    {"contentBlockDelta": {"delta": {"text": "a"}}},
    {"amazon-bedrock-invocationMetrics": {"inputTokenCount": 1, "outputTokenCount": 2}},
    *SHAPES,
]


def _broken(value: Any) -> Iterator[Any]:
    """Yield copies of ``value`` with one nested value replaced by each piece of junk."""
    if isinstance(value, dict):
        for key, inner in value.items():
            for junk in JUNK:
                yield {**value, key: junk}
            for variant in _broken(inner):
                yield {**value, key: variant}
    elif isinstance(value, list) and value:
        for variant in _broken(value[0]):
            yield [variant, *value[1:]]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("body", JUNK)
def test_non_mapping_body_gives_empty_facts(provider: str | None, body: Any) -> None:
    """A body that is not a JSON object gives empty facts."""
    family = family_for(provider)

    assert family.parse_body(body, None) == ResponseFacts()
    assert family.parse_body(body, "amazon.nova-lite-v1:0") == ResponseFacts()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_broken_bodies_never_raise(provider: str | None, caplog: pytest.LogCaptureFixture) -> None:
    """Every body with one value of the wrong type parses without raising or logging."""
    family = family_for(provider)
    with caplog.at_level(logging.WARNING):
        for shape in SHAPES:
            for body in _broken(shape):
                for base_id in (None, "amazon.titan-text-express-v1", "amazon.nova-pro-v1:0"):
                    assert isinstance(family.parse_body(body, base_id), ResponseFacts)

    assert caplog.records == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_broken_chunks_never_raise(provider: str | None, caplog: pytest.LogCaptureFixture) -> None:
    """Every chunk with one value of the wrong type is taken in without raising or logging."""
    family = family_for(provider)
    with caplog.at_level(logging.WARNING):
        for base_id in (None, "amazon.titan-text-express-v1", "amazon.nova-pro-v1:0"):
            state = family.new_stream_state(base_id, collect_text=True)
            for junk in JUNK:
                state.observe_chunk(junk)
            for chunk in CHUNKS:
                for broken in _broken(chunk):
                    state.observe_chunk(broken)
            assert isinstance(state.facts(), ResponseFacts)

    assert caplog.records == []


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": "many", "output_tokens": -1},
        {"input_tokens": 1.5, "output_tokens": True},
        {"input_tokens": None, "output_tokens": [2]},
    ],
)
def test_counts_of_the_wrong_type_are_dropped(usage: dict[str, Any]) -> None:
    """Counts that are not non-negative whole numbers are reported as missing, not as 0."""
    body = {"content": [], "usage": usage}

    assert family_for("anthropic").parse_body(body, None).usage == Usage()


def test_broken_metrics_do_not_erase_good_counts() -> None:
    """Invocation metrics that are not an object leave the counts already seen in place."""
    state = family_for("meta").new_stream_state(None)
    state.observe_chunk({"generation": "", "prompt_token_count": 3, "generation_token_count": 1})
    state.observe_chunk({"amazon-bedrock-invocationMetrics": "oops", "stop_reason": "stop"})

    assert state.facts() == ResponseFacts(Usage(3, 1), "stop", None)
