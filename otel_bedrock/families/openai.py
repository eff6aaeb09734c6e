"""OpenAI-compatible bodies: gpt-oss, DeepSeek, Qwen, Writer Palmyra, Kimi, GLM and others.

These models answer InvokeModel with chat completions (``choices[0].message.content``) or
text completions (``choices[0].text``), a ``finish_reason`` or ``stop_reason``, and often a
``usage`` object with ``prompt_tokens`` and ``completion_tokens``. Reasoning text
(``reasoning_content``) is not part of the generated text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_bedrock.families import ResponseFacts
from otel_bedrock.families.base import (
    METRICS_MARKER,
    BaseFamily,
    BaseStreamState,
    first,
    mapping,
    non_null_markers,
    reason,
)
from otel_bedrock.usage import Usage, count


def openai_usage(body: Mapping[str, Any]) -> Usage:
    """Usage from an OpenAI-style ``usage`` object with ``prompt_tokens`` and friends."""
    usage = mapping(body.get("usage"))
    if usage is None:
        return Usage()

    return Usage(
        input_tokens=count(usage.get("prompt_tokens")),
        output_tokens=count(usage.get("completion_tokens")),
    )


def content_text(content: Any) -> str | None:
    """Text of a message ``content``: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts = [
        part["text"]
        for part in content
        if isinstance(part, Mapping)
        and isinstance(part.get("text"), str)
        and part.get("type", "text") == "text"
    ]

    return "".join(parts) if parts else None


def choice_text(choice: Mapping[str, Any]) -> str | None:
    """Text of one choice: ``message.content``, ``delta.content`` or ``text``."""
    for key in ("message", "delta"):
        message = mapping(choice.get(key))
        if message is not None:
            return content_text(message.get("content"))
    text = choice.get("text")

    return text if isinstance(text, str) else None


def choice_stop(choice: Mapping[str, Any]) -> str | None:
    """Stop reason of one choice: ``finish_reason``, else ``stop_reason``."""
    stop = reason(choice.get("finish_reason"))

    return stop if stop is not None else reason(choice.get("stop_reason"))


def parse_openai_body(body: Mapping[str, Any]) -> ResponseFacts:
    """Facts from an OpenAI-style chat or text completion body."""
    usage = openai_usage(body)
    choice = first(body.get("choices"))
    if choice is None:
        return ResponseFacts(usage)

    return ResponseFacts(usage, choice_stop(choice), choice_text(choice))


class OpenAIStyleStreamState(BaseStreamState):
    """OpenAI-style stream chunks: ``choices[0]`` deltas or texts, maybe a ``usage`` chunk."""

    __slots__ = ()

    markers = (
        METRICS_MARKER,
        b'"usage"',
        *non_null_markers("finish_reason", "stop_reason"),
    )

    def _observe(self, chunk: Mapping[str, Any]) -> None:
        self._take_usage(openai_usage(chunk))
        choice = first(chunk.get("choices"))
        if choice is None:
            return
        self._add_text(choice_text(choice))
        self._set_stop(choice_stop(choice))


class OpenAIStyleFamily(BaseFamily):
    """Models that speak OpenAI's chat or text completions format on Bedrock."""

    name = "openai-style"
    stream_state = OpenAIStyleStreamState

    def _parse_body(self, body: Mapping[str, Any], base_id: str | None) -> ResponseFacts:
        return parse_openai_body(body)
