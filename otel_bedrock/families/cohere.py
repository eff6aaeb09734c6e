"""Cohere Command on InvokeModel: ``command`` (generations) and ``command-r`` (chat).

Cohere bodies carry no measured token counts: the response headers and the stream's
invocation metrics supply them, and this reader never estimates any.
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
    string,
)
from otel_bedrock.usage import Usage


def parse_cohere_body(body: Mapping[str, Any]) -> ResponseFacts:
    """Facts from a Command (``generations``) or Command R (``text``) body."""
    generation = first(body.get("generations"))
    if generation is not None:
        return ResponseFacts(
            Usage(), reason(generation.get("finish_reason")), string(generation.get("text"))
        )

    return ResponseFacts(Usage(), reason(body.get("finish_reason")), string(body.get("text")))


class CohereStreamState(BaseStreamState):
    """Cohere stream chunks: ``text`` pieces, then ``finish_reason`` with ``is_finished``.

    Command R's closing ``stream-end`` chunk repeats the whole answer under ``response``;
    only top-level ``text`` pieces are collected, so nothing is counted twice.
    """

    __slots__ = ()

    markers = (METRICS_MARKER, *non_null_markers("finish_reason"))

    def _observe(self, chunk: Mapping[str, Any]) -> None:
        self._add_text(chunk.get("text"))
        generation = first(chunk.get("generations"))
        if generation is not None:
            self._add_text(generation.get("text"))
            self._set_stop(generation.get("finish_reason"))
        self._set_stop(chunk.get("finish_reason"))
        response = mapping(chunk.get("response"))
        if response is not None and self._stop_reason is None:
            self._set_stop(response.get("finish_reason"))


class CohereFamily(BaseFamily):
    """Cohere Command models (``cohere.*``)."""

    name = "cohere"
    stream_state = CohereStreamState

    def _parse_body(self, body: Mapping[str, Any], base_id: str | None) -> ResponseFacts:
        return parse_cohere_body(body)
