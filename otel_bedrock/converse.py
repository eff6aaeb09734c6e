"""Facts from Converse responses and ConverseStream events.

Converse speaks one format for every model family: ``usage`` (``inputTokens``,
``outputTokens``, ``cacheReadInputTokens``, ``cacheWriteInputTokens``), ``stopReason`` and
``output.message.content``, a list of blocks of which only ``text`` blocks make the generated
text (``toolUse``, ``reasoningContent``, ``toolResult`` and images do not). ConverseStream
sends the same facts as events: ``messageStart``, ``contentBlockStart``,
``contentBlockDelta``, ``contentBlockStop``, ``messageStop`` and ``metadata``.

Both readers run on the application's thread and never raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_bedrock.families import ResponseFacts
from otel_bedrock.families.base import EMPTY_FACTS, block_text, dig, log_failure, mapping, reason
from otel_bedrock.usage import Usage, count, from_converse

__all__ = ["ConverseStreamState", "converse_usage", "parse_converse"]


def converse_usage(usage: Any) -> Usage:
    """Usage from a Converse ``usage`` object, also reading the older ``...TokenCount`` keys.

    Some models report cache counts as ``cacheReadInputTokenCount`` and
    ``cacheWriteInputTokenCount`` besides, or instead of, the documented names.
    """
    if not isinstance(usage, Mapping):
        return Usage()
    parsed = from_converse(usage)
    if not _has_only_older_keys(usage):
        return parsed
    older = Usage(
        cache_read_tokens=count(usage.get("cacheReadInputTokenCount")),
        cache_write_tokens=count(usage.get("cacheWriteInputTokenCount")),
    )

    return parsed.merged_over(older)


def _has_only_older_keys(usage: Mapping[str, Any]) -> bool:
    read = "cacheReadInputTokenCount" in usage and "cacheReadInputTokens" not in usage
    write = "cacheWriteInputTokenCount" in usage and "cacheWriteInputTokens" not in usage

    return read or write


def parse_converse(response: Mapping[str, Any]) -> ResponseFacts:
    """Read the dict that boto3's ``converse()`` returns; anything unreadable gives empty facts.

    Args:
        response: the parsed Converse response (``output``, ``stopReason``, ``usage``...).
    """
    if not isinstance(response, Mapping):
        return EMPTY_FACTS
    try:
        return ResponseFacts(
            converse_usage(response.get("usage")),
            reason(response.get("stopReason")),
            block_text(dig(response, "output", "message", "content")),
        )
    except Exception:  # noqa: BLE001 - a parser on the request path must never raise
        log_failure("converse.response")
        return EMPTY_FACTS


class ConverseStreamState:
    """Facts of one ConverseStream response, built up event by event.

    Works whether or not ``messageStart`` came (a guardrail can block before it) and keeps a
    reported ``outputTokens`` of 0 as 0. Text is kept only when ``collect_text`` is true;
    tool input fragments and reasoning are never kept. Called on the application's thread as
    it reads the stream; not shared between threads.
    """

    __slots__ = ("_parts", "_stop_reason", "_usage", "collect_text")

    def __init__(self, collect_text: bool = False) -> None:
        """Start an empty state; text is kept only when ``collect_text`` is true."""
        self.collect_text = collect_text
        self._usage = Usage()
        self._stop_reason: str | None = None
        self._parts: list[str] = []

    collect_text: bool
    """Whether the generated text is kept."""

    def observe(self, event: Mapping[str, Any]) -> None:
        """Take in one event dict as boto3 yields it; unknown or unreadable events are ignored.

        Called for every event of the stream on the application's thread: text deltas, the
        bulk of a stream, return at once unless text is collected.
        """
        if type(event) is not dict and not isinstance(event, Mapping):
            return
        try:
            if "contentBlockDelta" in event:
                if self.collect_text:
                    text = dig(event, "contentBlockDelta", "delta", "text")
                    if isinstance(text, str):
                        self._parts.append(text)
                return
            self._observe(event)
        except Exception:  # noqa: BLE001 - a bad event must not break the stream
            log_failure("converse.stream_event")

    def facts(self) -> ResponseFacts:
        """Return what the events seen so far say."""
        text = "".join(self._parts) if self._parts else None

        return ResponseFacts(self._usage, self._stop_reason, text)

    def _observe(self, event: Mapping[str, Any]) -> None:
        stop = mapping(event.get("messageStop"))
        if stop is not None:
            stop_reason = reason(stop.get("stopReason"))
            if stop_reason is not None:
                self._stop_reason = stop_reason
            return
        metadata = mapping(event.get("metadata"))
        if metadata is not None:
            if "usage" in metadata:
                self._usage = converse_usage(metadata["usage"]).merged_over(self._usage)
