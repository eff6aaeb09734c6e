"""Llama bodies give their measured counts, stop reason and generation."""

from __future__ import annotations

from otel_bedrock.families import ResponseFacts, family_for
from otel_bedrock.usage import Usage

LLAMA = "meta.llama3-1-8b-instruct-v1:0"


def test_llama_body() -> None:
    """A Llama body's prompt and generation counts become input and output tokens."""
    body = {
        "generation": "Spinach frittata.",
        "prompt_token_count": 21,
        "generation_token_count": 6,
        "stop_reason": "stop",
    }

    assert family_for("meta").parse_body(body, LLAMA) == ResponseFacts(
        Usage(21, 6), "stop", "Spinach frittata."
    )


def test_llama_stream_without_metrics_keeps_running_counts() -> None:
    """Without metrics, the first chunk's prompt count and the last running count are kept."""
    state = family_for("meta").new_stream_state(LLAMA)
    state.observe_chunk({"generation": "A", "prompt_token_count": 8, "generation_token_count": 1})
    state.observe_chunk(
        {
            "generation": "B",
            "prompt_token_count": None,
            "generation_token_count": 2,
            "stop_reason": "length",
        }
    )

    assert state.facts() == ResponseFacts(Usage(8, 2), "length", None)
