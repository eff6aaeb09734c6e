"""Amazon models: Titan Text (and Titan embeddings) and Nova.

The model segment after ``amazon.`` picks the reader: ``titan-*`` or ``nova-*``. When the base
id is unknown, the body's shape decides.

Titan bodies carry ``inputTextTokenCount`` and ``results[0]`` with ``tokenCount``,
``outputText`` and ``completionReason``; Titan streams send ``outputText`` in each chunk,
``inputTextTokenCount`` in the first and ``totalOutputTextTokenCount`` with
``completionReason`` in the last. Nova bodies mirror Converse: ``output.message.content``,
``stopReason`` and ``usage`` (``inputTokens``, ``outputTokens``, ``cacheReadInputTokenCount``,
``cacheWriteInputTokenCount``); Nova streams send Converse-like events as chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_bedrock.families import ResponseFacts, StreamState
from otel_bedrock.families.base import (
    METRICS_MARKER,
    BaseFamily,
    BaseStreamState,
    block_text,
    dig,
    first,
    mapping,
    reason,
    string,
)
from otel_bedrock.usage import Usage, count


def nova_usage(usage: Mapping[str, Any] | None) -> Usage:
    """Usage from a Nova ``usage`` object (both spellings of the cache keys)."""
    if usage is None:
        return Usage()

    read = _either(usage, "cacheReadInputTokenCount", "cacheReadInputTokens")
    write = _either(usage, "cacheWriteInputTokenCount", "cacheWriteInputTokens")

    return Usage(
        input_tokens=count(usage.get("inputTokens")),
        output_tokens=count(usage.get("outputTokens")),
        cache_read_tokens=count(read),
        cache_write_tokens=count(write),
    )


def _either(source: Mapping[str, Any], key: str, other: str) -> Any:
    value = source.get(key)

    return value if value is not None else source.get(other)


def parse_titan_body(body: Mapping[str, Any]) -> ResponseFacts:
    """Facts from a Titan Text (or Titan embeddings) body."""
    result = first(body.get("results"))
    usage = Usage(
        input_tokens=count(body.get("inputTextTokenCount")),
        output_tokens=count(result.get("tokenCount")) if result is not None else None,
    )
    if result is None:
        return ResponseFacts(usage)

    return ResponseFacts(
        usage, reason(result.get("completionReason")), string(result.get("outputText"))
    )


def parse_nova_body(body: Mapping[str, Any]) -> ResponseFacts:
    """Facts from a Nova InvokeModel body."""
    return ResponseFacts(
        nova_usage(mapping(body.get("usage"))),
        reason(body.get("stopReason")),
        block_text(dig(body, "output", "message", "content")),
    )


class TitanStreamState(BaseStreamState):
    """Titan Text stream chunks."""

    __slots__ = ()

    markers: tuple[bytes, ...] = (
        METRICS_MARKER,
        b"inputTextTokenCount",
        b"totalOutputTextTokenCount",
        b'"completionReason":"',
        b'"completionReason": "',
    )

    def _observe(self, chunk: Mapping[str, Any]) -> None:
        self._add_text(chunk.get("outputText"))
        self._take_usage(
            Usage(
                input_tokens=count(chunk.get("inputTextTokenCount")),
                output_tokens=count(chunk.get("totalOutputTextTokenCount")),
            )
        )
        self._set_stop(chunk.get("completionReason"))


class NovaStreamState(BaseStreamState):
    """Nova stream chunks, shaped like ConverseStream events (``contentBlockDelta``...)."""

    __slots__ = ()

    markers: tuple[bytes, ...] = (METRICS_MARKER, b"messageStop", b"metadata")

    def _observe(self, chunk: Mapping[str, Any]) -> None:
        delta = dig(chunk, "contentBlockDelta", "delta")
        if delta is not None:
            self._add_text(dig(delta, "text"))
            return
        stop = mapping(chunk.get("messageStop"))
        if stop is not None:
            self._set_stop(stop.get("stopReason"))
        metadata = mapping(chunk.get("metadata"))
        if metadata is not None:
            self._take_usage(nova_usage(mapping(metadata.get("usage"))))


class AmazonAnyStreamState(BaseStreamState):
    """A stream of an Amazon model whose kind is unknown: reads both Titan and Nova chunks."""

    __slots__ = ("_nova", "_titan")

    markers: tuple[bytes, ...] = (*TitanStreamState.markers, *NovaStreamState.markers[1:])

    def __init__(self, collect_text: bool = False) -> None:
        """Start an empty state; text is kept only when ``collect_text`` is true."""
        super().__init__(collect_text)
        self._titan = TitanStreamState(collect_text)
        self._nova = NovaStreamState(collect_text)

    def observe_chunk(self, chunk: Mapping[str, Any]) -> None:
        """Take in one decoded JSON chunk; unreadable chunks are ignored."""
        if not isinstance(chunk, Mapping):
            return
        reader = self._titan if "outputText" in chunk else self._nova
        reader.observe_chunk(chunk)

    def facts(self) -> ResponseFacts:
        """Return what the chunks seen so far say."""
        titan, nova = self._titan.facts(), self._nova.facts()

        return ResponseFacts(
            nova.usage.merged_over(titan.usage),
            nova.stop_reason or titan.stop_reason,
            nova.text if nova.text is not None else titan.text,
        )


def model_kind(base_id: str | None) -> str | None:
    """Return ``titan`` or ``nova`` from a base id such as ``amazon.nova-lite-v1:0``."""
    if not isinstance(base_id, str):
        return None
    _, _, model = base_id.partition(".")
    kind = model.split("-", 1)[0]

    return kind if kind in ("titan", "nova") else None


class AmazonFamily(BaseFamily):
    """Amazon's own models (``amazon.*``): Titan and Nova."""

    name = "amazon"
    stream_state = NovaStreamState

    def new_stream_state(self, base_id: str | None, collect_text: bool = False) -> StreamState:
        """Return a fresh stream state for the Titan or Nova model named by ``base_id``."""
        kind = model_kind(base_id)
        if kind == "titan":
            return TitanStreamState(collect_text)
        if kind == "nova":
            return NovaStreamState(collect_text)

        return AmazonAnyStreamState(collect_text)

    def _parse_body(self, body: Mapping[str, Any], base_id: str | None) -> ResponseFacts:
        kind = model_kind(base_id)
        if kind is None:
            kind = "nova" if "output" in body else "titan"

        return parse_nova_body(body) if kind == "nova" else parse_titan_body(body)
