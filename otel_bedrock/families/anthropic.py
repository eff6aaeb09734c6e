"""Anthropic Claude on InvokeModel: the messages API and the legacy text completions API.

Messages bodies carry ``usage`` with ``input_tokens`` (cache-exclusive, as Bedrock counts),
``output_tokens``, ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` (a cache
write). Legacy completion bodies (``anthropic.claude-v2``) carry ``completion`` and
``stop_reason`` and no usage at all: their counts come from the response headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_bedrock.families import ResponseFacts
from otel_bedrock.families.base import (
    METRICS_MARKER,
    BaseFamily,
    BaseStreamState,
    block_text,
    mapping,
    non_null_markers,
    reason,
    string,
)
from otel_bedrock.usage import Usage, count


def claude_usage(usage: Mapping[str, Any] | None, with_output: bool = True) -> Usage:
    """Usage from a Claude ``usage`` object; ``with_output`` False skips ``output_tokens``."""
    if usage is None:
        return Usage()

    return Usage(
        input_tokens=count(usage.get("input_tokens")),
        output_tokens=count(usage.get("output_tokens")) if with_output else None,
        cache_read_tokens=count(usage.get("cache_read_input_tokens")),
        cache_write_tokens=count(usage.get("cache_creation_input_tokens")),
        cache_write_1h_tokens=_one_hour_writes(usage.get("cache_creation")),
    )


def _one_hour_writes(creation: Any) -> int | None:
    """Tokens written with the one-hour lifetime, from Claude's ``cache_creation`` object."""
    if not isinstance(creation, Mapping):
        return None

    return count(creation.get("ephemeral_1h_input_tokens"))


def parse_claude_body(body: Mapping[str, Any]) -> ResponseFacts:
    """Facts from a Claude messages or legacy completion body."""
    if "completion" in body and "content" not in body:
        return ResponseFacts(
            Usage(), reason(body.get("stop_reason")), string(body.get("completion"))
        )

    return ResponseFacts(
        claude_usage(mapping(body.get("usage"))),
        reason(body.get("stop_reason")),
        block_text(body.get("content")),
    )


class AnthropicStreamState(BaseStreamState):
    """Claude stream: ``message_start``, ``content_block_delta``, ``message_delta`` chunks.

    ``message_start`` gives input and cache counts (its ``output_tokens`` is a placeholder and
    is ignored), ``message_delta`` the stop reason and the final output count. Legacy
    completion streams send ``completion`` and ``stop_reason`` in every chunk.
    """

    __slots__ = ()

    markers = (
        b"message_start",
        b"message_delta",
        METRICS_MARKER,
        *non_null_markers("stop_reason"),
    )

    def _observe(self, chunk: Mapping[str, Any]) -> None:
        kind = chunk.get("type")
        if kind == "content_block_delta":
            delta = mapping(chunk.get("delta"))
            if delta is not None:
                self._add_text(delta.get("text"))
        elif kind == "message_start":
            message = mapping(chunk.get("message"))
            if message is not None:
                self._take_usage(claude_usage(mapping(message.get("usage")), with_output=False))
        elif kind == "message_delta":
            delta = mapping(chunk.get("delta"))
            if delta is not None:
                self._set_stop(delta.get("stop_reason"))
            self._take_usage(claude_usage(mapping(chunk.get("usage"))))
        elif "completion" in chunk:
            self._add_text(chunk.get("completion"))
            self._set_stop(chunk.get("stop_reason"))


class AnthropicFamily(BaseFamily):
    """Claude models (``anthropic.*``)."""

    name = "anthropic"
    stream_state = AnthropicStreamState

    def _parse_body(self, body: Mapping[str, Any], base_id: str | None) -> ResponseFacts:
        return parse_claude_body(body)
