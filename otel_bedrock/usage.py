"""One token-usage value from any of Bedrock's ways of reporting it.

Bedrock reports usage in five dialects: the ``x-amzn-bedrock-*-token-count`` headers of
InvokeModel, per-family response bodies, the ``amazon-bedrock-invocationMetrics`` object at the
end of an InvokeModel stream, the ``usage`` object of Converse and the ``metadata`` event of
ConverseStream. Each parser here returns a :class:`Usage`; input tokens are cache-exclusive,
as Bedrock counts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, as Bedrock measured them.

    ``None`` means Bedrock did not report the count; ``0`` is a reported zero.
    ``input_tokens`` excludes cache reads and cache writes. ``cache_write_1h_tokens`` is the
    part of ``cache_write_tokens`` written with the one-hour lifetime, which costs more.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_1h_tokens: int | None = None

    @property
    def is_empty(self) -> bool:
        """True when no count at all was reported."""
        return self == _EMPTY

    def merged_over(self, other: Usage) -> Usage:
        """Return this usage with counts missing here taken from ``other``."""
        return Usage(
            input_tokens=_first(self.input_tokens, other.input_tokens),
            output_tokens=_first(self.output_tokens, other.output_tokens),
            cache_read_tokens=_first(self.cache_read_tokens, other.cache_read_tokens),
            cache_write_tokens=_first(self.cache_write_tokens, other.cache_write_tokens),
            cache_write_1h_tokens=_first(self.cache_write_1h_tokens, other.cache_write_1h_tokens),
        )


_EMPTY = Usage()


def _first(a: int | None, b: int | None) -> int | None:
    return a if a is not None else b


MAX_TOKENS = 1_000_000_000
"""More tokens than any model takes or gives in one call: a larger count is not a count."""


def count(value: Any) -> int | None:
    """Return ``value`` as a token count, or None when it is not an integer from 0 to
    :data:`MAX_TOKENS`."""
    if isinstance(value, bool):
        return None
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 12:
        number = int(value)  # not "²" or "١٢", and no 300-digit string
    elif isinstance(value, float) and value.is_integer():
        number = int(value)

    return number if number is not None and 0 <= number <= MAX_TOKENS else None


def from_headers(headers: Mapping[str, str]) -> Usage:
    """Usage from InvokeModel's ``x-amzn-bedrock-*`` response headers (lower-case names)."""
    return Usage(
        input_tokens=count(headers.get("x-amzn-bedrock-input-token-count")),
        output_tokens=count(headers.get("x-amzn-bedrock-output-token-count")),
        cache_read_tokens=count(headers.get("x-amzn-bedrock-cache-read-input-token-count")),
        cache_write_tokens=count(headers.get("x-amzn-bedrock-cache-write-input-token-count")),
    )


def from_invocation_metrics(metrics: Mapping[str, Any]) -> Usage:
    """Usage from an ``amazon-bedrock-invocationMetrics`` object at the end of a stream."""
    return Usage(
        input_tokens=count(metrics.get("inputTokenCount")),
        output_tokens=count(metrics.get("outputTokenCount")),
        cache_read_tokens=count(metrics.get("cacheReadInputTokenCount")),
        cache_write_tokens=count(metrics.get("cacheWriteInputTokenCount")),
    )


def from_converse(usage: Mapping[str, Any]) -> Usage:
    """Usage from Converse's ``usage`` object or ConverseStream's ``metadata.usage``."""
    return Usage(
        input_tokens=count(usage.get("inputTokens")),
        output_tokens=count(usage.get("outputTokens")),
        cache_read_tokens=count(usage.get("cacheReadInputTokens")),
        cache_write_tokens=count(usage.get("cacheWriteInputTokens")),
        cache_write_1h_tokens=_one_hour_writes(usage.get("cacheDetails")),
    )


def _one_hour_writes(details: Any) -> int | None:
    """Tokens written with the one-hour lifetime, from Converse's ``cacheDetails`` list."""
    if not isinstance(details, list):
        return None
    total = None
    for detail in details:
        if isinstance(detail, Mapping) and detail.get("ttl") == "1h":
            tokens = count(detail.get("inputTokens"))
            if tokens is not None:
                total = (total or 0) + tokens

    return total
