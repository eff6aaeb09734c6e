"""Claude bodies and stream chunks, including shapes absent from the recordings."""

from __future__ import annotations

from otel_bedrock.families import ResponseFacts, family_for
from otel_bedrock.usage import Usage

CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"


def test_thinking_and_tool_blocks_are_not_text() -> None:
    """Only text blocks of a messages body make the text; thinking and tool use do not."""
    body = {
        "type": "message",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "x"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "t1", "name": "find", "input": {"q": "eggs"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 30, "output_tokens": 12},
    }

    facts = family_for("anthropic").parse_body(body, CLAUDE)

    assert facts == ResponseFacts(Usage(30, 12), "tool_use", "Let me look.")


def test_tool_use_only_body_has_no_text() -> None:
    """A messages body made only of a tool_use block has usage and stop reason but no text."""
    body = {
        "content": [{"type": "tool_use", "id": "t1", "name": "find", "input": {}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 7},
    }

    assert family_for("anthropic").parse_body(body, CLAUDE) == ResponseFacts(
        Usage(5, 7), "tool_use", None
    )


def test_stream_without_metrics_uses_message_events() -> None:
    """Without invocation metrics, message_start and message_delta give every count."""
    state = family_for("anthropic").new_stream_state(CLAUDE)
    state.observe_chunk(
        {
            "type": "message_start",
            "message": {
                "usage": {
                    "input_tokens": 9,
                    "cache_read_input_tokens": 100,
                    "cache_creation_input_tokens": 20,
                    "output_tokens": 1,
                }
            },
        }
    )
    state.observe_chunk({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}})

    assert state.facts() == ResponseFacts(Usage(9, None, 100, 20), "max_tokens", None)

    state.observe_chunk(
        {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 64}}
    )

    assert state.facts() == ResponseFacts(Usage(9, 64, 100, 20), "max_tokens", None)


def test_metrics_win_over_message_events() -> None:
    """Counts in the invocation metrics replace those of the message events."""
    state = family_for("anthropic").new_stream_state(CLAUDE)
    state.observe_chunk({"type": "message_start", "message": {"usage": {"input_tokens": 9}}})
    state.observe_chunk({"type": "message_delta", "usage": {"output_tokens": 64}})
    state.observe_chunk(
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 10, "outputTokenCount": 65},
        }
    )

    assert state.facts().usage == Usage(10, 65)


def test_legacy_completion_stream() -> None:
    """A legacy completion stream joins its pieces and takes the last chunk's stop reason."""
    state = family_for("anthropic").new_stream_state("anthropic.claude-v2:1", collect_text=True)
    state.observe_chunk({"completion": " Hello", "stop_reason": None, "stop": None})
    state.observe_chunk(
        {
            "completion": " there.",
            "stop_reason": "stop_sequence",
            "stop": "\n\nHuman:",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 14, "outputTokenCount": 4},
        }
    )

    assert state.facts() == ResponseFacts(Usage(14, 4), "stop_sequence", " Hello there.")


def test_thinking_deltas_are_not_text() -> None:
    """Thinking and tool-input deltas of a Claude stream are not collected as text."""
    state = family_for("anthropic").new_stream_state(CLAUDE, collect_text=True)
    for delta in (
        {"type": "thinking_delta", "thinking": "hm"},
        {"type": "input_json_delta", "partial_json": "{"},
        {"type": "text_delta", "text": "Hi"},
    ):
        state.observe_chunk({"type": "content_block_delta", "delta": delta})

    assert state.facts().text == "Hi"
