"""The generic reader recognises common shapes of providers it does not know."""

from __future__ import annotations

from typing import Any

import pytest

from otel_bedrock.families import ResponseFacts, family_for
from otel_bedrock.usage import Usage

SHAPES: list[tuple[dict[str, Any], ResponseFacts]] = [
    (
        {
            "choices": [{"message": {"content": "A"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        },
        ResponseFacts(Usage(3, 1), "stop", "A"),
    ),
    (
        {
            "generation": "B",
            "prompt_token_count": 4,
            "generation_token_count": 2,
            "stop_reason": "stop",
        },
        ResponseFacts(Usage(4, 2), "stop", "B"),
    ),
    (
        {
            "content": [{"type": "text", "text": "C"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "output_tokens": 3},
        },
        ResponseFacts(Usage(5, 3), "end_turn", "C"),
    ),
    (
        {
            "output": {"message": {"content": [{"text": "D"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 6, "outputTokens": 4},
        },
        ResponseFacts(Usage(6, 4), "end_turn", "D"),
    ),
    (
        {"outputs": [{"text": "E", "stop_reason": "length"}]},
        ResponseFacts(Usage(), "length", "E"),
    ),
    (
        {"generated_text": "F", "usage": {"input_tokens": 7, "output_tokens": 5}},
        ResponseFacts(Usage(7, 5), None, "F"),
    ),
    ({"something": "else"}, ResponseFacts()),
]


@pytest.mark.parametrize(("body", "expected"), SHAPES)
def test_generic_body_shapes(body: dict[str, Any], expected: ResponseFacts) -> None:
    """A body of a known shape under an unknown provider gives the same facts as its family."""
    assert family_for(None).parse_body(body, None) == expected


def test_generic_stream_picks_reader_from_first_chunk() -> None:
    """A stream of unknown shape picks a reader from its first chunk and keeps it."""
    state = family_for(None).new_stream_state(None, collect_text=True)
    state.observe_chunk({"generation": "Hi", "prompt_token_count": 2, "stop_reason": None})
    state.observe_chunk(
        {
            "generation": "!",
            "stop_reason": "stop",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 2, "outputTokenCount": 2},
        }
    )

    assert state.facts() == ResponseFacts(Usage(2, 2), "stop", "Hi!")


def test_generic_stream_of_unknown_chunks_still_reads_metrics() -> None:
    """Chunks of no known shape still give the usage of the invocation metrics."""
    state = family_for(None).new_stream_state(None)
    state.observe_chunk({"token": {"text": "x"}})
    state.observe_chunk(
        {"amazon-bedrock-invocationMetrics": {"inputTokenCount": 9, "outputTokenCount": 1}}
    )

    assert state.facts() == ResponseFacts(Usage(9, 1), None, None)


def test_generic_markers_cover_every_family() -> None:
    """The generic stream's markers include the invocation metrics and the stop keys."""
    markers = family_for(None).new_stream_state(None).markers

    assert b"amazon-bedrock-invocationMetrics" in markers
    assert b"message_delta" in markers
    assert b'"stop_reason":"' in markers
    assert b'"finish_reason":"' in markers
