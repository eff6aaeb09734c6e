"""Cohere bodies give stop reason and text, and never any estimated count."""

from __future__ import annotations

from otel_bedrock.families import ResponseFacts, family_for
from otel_bedrock.usage import Usage


def test_command_r_body() -> None:
    """A Command R chat body gives its text and finish reason and no counts."""
    body = {
        "response_id": "r1",
        "text": "Frittata.",
        "generation_id": "g1",
        "chat_history": [],
        "finish_reason": "COMPLETE",
    }

    facts = family_for("cohere").parse_body(body, "cohere.command-r-v1:0")

    assert facts == ResponseFacts(Usage(), "COMPLETE", "Frittata.")


def test_command_r_stream_does_not_repeat_the_final_response() -> None:
    """A Command R stream collects text pieces once and reads the stream-end finish reason."""
    state = family_for("cohere").new_stream_state("cohere.command-r-v1:0", collect_text=True)
    state.observe_chunk({"is_finished": False, "event_type": "text-generation", "text": "Fri"})
    state.observe_chunk({"is_finished": False, "event_type": "text-generation", "text": "ttata."})
    state.observe_chunk(
        {
            "is_finished": True,
            "event_type": "stream-end",
            "response": {"text": "Frittata.", "finish_reason": "COMPLETE"},
            "finish_reason": "COMPLETE",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 11, "outputTokenCount": 3},
        }
    )

    assert state.facts() == ResponseFacts(Usage(11, 3), "COMPLETE", "Frittata.")
