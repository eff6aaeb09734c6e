"""AI21 Jurassic-2 token lists count tokens; Jamba answers like OpenAI chat completions."""

from __future__ import annotations

from otel_bedrock.families import ResponseFacts, family_for
from otel_bedrock.usage import Usage


def test_jamba_body() -> None:
    """A Jamba body gives its usage, finish reason and message text."""
    body = {
        "id": "chat-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Shakshuka."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 17, "completion_tokens": 4, "total_tokens": 21},
    }

    facts = family_for("ai21").parse_body(body, "ai21.jamba-1-5-mini-v1:0")

    assert facts == ResponseFacts(Usage(17, 4), "stop", "Shakshuka.")


def test_j2_body_without_token_lists() -> None:
    """A Jurassic-2 body without token lists gives text and reason but no counts."""
    body = {"completions": [{"data": {"text": "Hola"}, "finishReason": {"reason": "length"}}]}

    facts = family_for("ai21").parse_body(body, "ai21.j2-ultra-v1")

    assert facts == ResponseFacts(Usage(), "length", "Hola")
