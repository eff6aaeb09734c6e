"""Mistral text and chat bodies give stop reason and text, and never any estimated count."""

from __future__ import annotations

from otel_bedrock.families import ResponseFacts, family_for
from otel_bedrock.usage import Usage


def test_text_completion_body() -> None:
    """A Mistral ``outputs`` body gives its text and stop reason and no counts."""
    body = {"outputs": [{"text": "Omelette.", "stop_reason": "length"}]}

    facts = family_for("mistral").parse_body(body, "mistral.mistral-7b-instruct-v0:2")

    assert facts == ResponseFacts(Usage(), "length", "Omelette.")


def test_chat_body_with_finish_reason() -> None:
    """A Mistral chat body may name its stop reason ``finish_reason``."""
    body = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Ok."},
                "finish_reason": "stop",
            }
        ]
    }

    facts = family_for("mistral").parse_body(body, "mistral.mistral-large-2407-v1:0")

    assert facts == ResponseFacts(Usage(), "stop", "Ok.")


def test_stream_of_outputs() -> None:
    """A Mistral stream joins ``outputs`` pieces and takes usage from the metrics."""
    state = family_for("mistral").new_stream_state("mistral.mixtral-8x7b-instruct-v0:1", True)
    state.observe_chunk({"outputs": [{"text": "Bon", "stop_reason": None}]})
    state.observe_chunk(
        {
            "outputs": [{"text": "jour", "stop_reason": "stop"}],
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 7, "outputTokenCount": 2},
        }
    )

    assert state.facts() == ResponseFacts(Usage(7, 2), "stop", "Bonjour")
