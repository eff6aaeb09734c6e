"""Models of providers with no reader of their own: try the shapes Bedrock models use.

A body or a stream's first readable chunk is matched to a known shape by the keys it has
(``choices``, ``generation``, ``results``, ``output``...). Whatever the shape, the stream's
invocation metrics still give measured usage, and the response headers give it for
InvokeModel, so an unknown family loses at most the stop reason and the text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from otel_bedrock.families import ResponseFacts
from otel_bedrock.families.ai21 import parse_j2_body
from otel_bedrock.families.amazon import (
    NovaStreamState,
    TitanStreamState,
    parse_nova_body,
    parse_titan_body,
)
from otel_bedrock.families.anthropic import AnthropicStreamState, parse_claude_body
from otel_bedrock.families.base import EMPTY_FACTS, BaseFamily, BaseStreamState, mapping, reason
from otel_bedrock.families.cohere import CohereStreamState, parse_cohere_body
from otel_bedrock.families.meta import MetaStreamState, parse_llama_body
from otel_bedrock.families.mistral import MistralStreamState, parse_mistral_body
from otel_bedrock.families.openai import OpenAIStyleStreamState, parse_openai_body
from otel_bedrock.usage import Usage, count

# A body's telling key -> the reader for that shape, tried in this order.
_BODY_SHAPES: tuple[tuple[str, Callable[[Mapping[str, Any]], ResponseFacts]], ...] = (
    ("choices", parse_openai_body),
    ("content", parse_claude_body),
    ("completion", parse_claude_body),
    ("generation", parse_llama_body),
    ("output", parse_nova_body),
    ("results", parse_titan_body),
    ("inputTextTokenCount", parse_titan_body),
    ("outputs", parse_mistral_body),
    ("generations", parse_cohere_body),
    ("completions", parse_j2_body),
)

# A chunk's telling key -> the stream state for that shape.
_CHUNK_SHAPES: tuple[tuple[str, type[BaseStreamState]], ...] = (
    ("choices", OpenAIStyleStreamState),
    ("type", AnthropicStreamState),
    ("completion", AnthropicStreamState),
    ("generation", MetaStreamState),
    ("outputText", TitanStreamState),
    ("messageStart", NovaStreamState),
    ("contentBlockDelta", NovaStreamState),
    ("messageStop", NovaStreamState),
    ("metadata", NovaStreamState),
    ("outputs", MistralStreamState),
    ("generations", CohereStreamState),
    ("is_finished", CohereStreamState),
)


def parse_any_body(body: Mapping[str, Any]) -> ResponseFacts:
    """Facts from a body of unknown shape: the first known shape it matches, else loose keys."""
    for key, parse in _BODY_SHAPES:
        if key in body:
            return parse(body)
    usage = mapping(body.get("usage"))
    loose = Usage()
    if usage is not None:
        loose = Usage(
            input_tokens=count(usage.get("input_tokens", usage.get("inputTokens"))),
            output_tokens=count(usage.get("output_tokens", usage.get("outputTokens"))),
        )
    stop = reason(body.get("stop_reason")) or reason(body.get("finish_reason"))
    text = body.get("generated_text", body.get("text"))

    return ResponseFacts(
        loose, stop or reason(body.get("stopReason")), text if isinstance(text, str) else None
    )


def _all_markers() -> tuple[bytes, ...]:
    seen: dict[bytes, None] = {}
    for _, state in _CHUNK_SHAPES:
        seen.update(dict.fromkeys(state.markers))

    return tuple(seen)


class GenericStreamState:
    """A stream of unknown shape: the first chunk read picks the reader for all the rest.

    A chunk that matches no known shape still yields its invocation metrics.
    """

    __slots__ = ("_inner", "collect_text")

    markers: tuple[bytes, ...] = _all_markers()
    collect_text: bool

    def __init__(self, collect_text: bool = False) -> None:
        """Start an empty state; text is kept only when ``collect_text`` is true."""
        self.collect_text = collect_text
        self._inner: BaseStreamState | None = None

    def observe_chunk(self, chunk: Mapping[str, Any]) -> None:
        """Take in one decoded JSON chunk; unreadable chunks are ignored."""
        if not isinstance(chunk, Mapping):
            return
        if self._inner is None:
            state: type[BaseStreamState] = OpenAIStyleStreamState
            for key, candidate in _CHUNK_SHAPES:
                if key in chunk:
                    state = candidate
                    break
            self._inner = state(self.collect_text)
        self._inner.observe_chunk(chunk)

    def facts(self) -> ResponseFacts:
        """Return what the chunks seen so far say."""
        return self._inner.facts() if self._inner is not None else EMPTY_FACTS


class GenericFamily(BaseFamily):
    """Any model whose provider has no reader of its own."""

    name = "generic"

    def new_stream_state(
        self, base_id: str | None, collect_text: bool = False
    ) -> GenericStreamState:
        """Return a fresh state that picks its reader from the first chunk."""
        return GenericStreamState(collect_text)

    def _parse_body(self, body: Mapping[str, Any], base_id: str | None) -> ResponseFacts:
        return parse_any_body(body)
