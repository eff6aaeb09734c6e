"""Mistral on InvokeModel: text completions (``outputs``) and chat completions (``choices``).

Mistral bodies carry no token counts; the response headers and the stream's invocation
metrics supply them, measured, and this reader never estimates any.
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
    non_null_markers,
)
from otel_bedrock.families.openai import choice_stop, choice_text, openai_usage
from otel_bedrock.usage import Usage


def parse_mistral_body(body: Mapping[str, Any]) -> ResponseFacts:
    """Facts from a Mistral ``outputs`` or ``choices`` body."""
    output = first(body.get("outputs"))
    if output is not None:
        return ResponseFacts(Usage(), choice_stop(output), choice_text(output))
    choice = first(body.get("choices"))
    usage = openai_usage(body)
    if choice is None:
        return ResponseFacts(usage)

    return ResponseFacts(usage, choice_stop(choice), choice_text(choice))


class MistralStreamState(BaseStreamState):
    """Mistral stream chunks: ``outputs[0]`` or ``choices[0]`` pieces with a final stop."""

    __slots__ = ()

    markers = (METRICS_MARKER, *non_null_markers("stop_reason", "finish_reason"))

    def _observe(self, chunk: Mapping[str, Any]) -> None:
        item = first(chunk.get("outputs")) or first(chunk.get("choices"))
        if item is None:
            return
        self._add_text(choice_text(item))
        self._set_stop(choice_stop(item))


class MistralFamily(BaseFamily):
    """Mistral models (``mistral.*``)."""

    name = "mistral"
    stream_state = MistralStreamState

    def _parse_body(self, body: Mapping[str, Any], base_id: str | None) -> ResponseFacts:
        return parse_mistral_body(body)
