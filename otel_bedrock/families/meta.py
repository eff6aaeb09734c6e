"""Meta Llama on InvokeModel: ``generation`` with measured token counts.

Bodies carry ``generation``, ``prompt_token_count``, ``generation_token_count`` and
``stop_reason``. Stream chunks carry the same keys: the prompt count in the first chunk, a
running generation count in each, the stop reason in the last.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_bedrock.families import ResponseFacts
from otel_bedrock.families.base import (
    METRICS_MARKER,
    BaseFamily,
    BaseStreamState,
    non_null_markers,
    reason,
    string,
)
from otel_bedrock.usage import Usage, count


def llama_usage(body: Mapping[str, Any]) -> Usage:
    """Usage from Llama's ``prompt_token_count`` and ``generation_token_count``."""
    return Usage(
        input_tokens=count(body.get("prompt_token_count")),
        output_tokens=count(body.get("generation_token_count")),
    )


def parse_llama_body(body: Mapping[str, Any]) -> ResponseFacts:
    """Facts from a Llama InvokeModel body."""
    return ResponseFacts(
        llama_usage(body), reason(body.get("stop_reason")), string(body.get("generation"))
    )


class MetaStreamState(BaseStreamState):
    """Llama stream: every chunk has ``generation`` and the count keys, often null."""

    __slots__ = ()

    markers = (METRICS_MARKER, *non_null_markers("stop_reason"))

    def _observe(self, chunk: Mapping[str, Any]) -> None:
        self._add_text(chunk.get("generation"))
        self._take_usage(llama_usage(chunk))
        self._set_stop(chunk.get("stop_reason"))


class MetaFamily(BaseFamily):
    """Llama models (``meta.*``)."""

    name = "meta"
    stream_state = MetaStreamState

    def _parse_body(self, body: Mapping[str, Any], base_id: str | None) -> ResponseFacts:
        return parse_llama_body(body)
