"""AI21 Labs: Jurassic-2 (``j2-*``) completions and Jamba chat completions.

Jurassic-2 bodies list the prompt's tokens under ``prompt.tokens`` and the completion's under
``completions[0].data.tokens``: their lengths are measured counts. Jamba answers in the
OpenAI chat format with a ``usage`` object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_bedrock.families import ResponseFacts
from otel_bedrock.families.base import BaseFamily, dig, first, length, reason, string
from otel_bedrock.families.openai import OpenAIStyleStreamState, parse_openai_body
from otel_bedrock.usage import Usage


def parse_j2_body(body: Mapping[str, Any]) -> ResponseFacts:
    """Facts from a Jurassic-2 completion body."""
    completion = first(body.get("completions"))
    usage = Usage(
        input_tokens=length(dig(body, "prompt", "tokens")),
        output_tokens=length(dig(completion, "data", "tokens")),
    )
    if completion is None:
        return ResponseFacts(usage)

    return ResponseFacts(
        usage,
        reason(dig(completion, "finishReason", "reason")),
        string(dig(completion, "data", "text")),
    )


class AI21Family(BaseFamily):
    """AI21 models (``ai21.*``); only Jamba streams, in the OpenAI chunk format."""

    name = "ai21"
    stream_state = OpenAIStyleStreamState

    def _parse_body(self, body: Mapping[str, Any], base_id: str | None) -> ResponseFacts:
        if "completions" in body:
            return parse_j2_body(body)

        return parse_openai_body(body)
