"""Who made a Bedrock call: the PostHog ``distinct_id`` of a span.

Sources, first match wins:

1. an attribute on the span itself (``posthog.distinct_id``, ``user.id``, ``enduser.id``, then
   the names of the ``identity_keys`` setting, read by the exporter);
2. OpenTelemetry baggage with one of the same keys (propagated from an upstream service, for
   example in a W3C ``baggage`` header);
3. :func:`identify`, our context manager;
4. PostHog's own context (``posthog.identify_context``);
5. one of the same attributes on the span that encloses the call (read by
   :class:`~otel_bedrock.processor.BedrockSpanProcessor`).

Sources 2 to 5 are read on the application's thread when the call starts and written onto the
span as ``bedrock.context.distinct_id``, so that the exporter, on its own thread, needs only
the span, and an attribute set on the span itself still wins.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import baggage
from posthog.contexts import get_context_distinct_id

from otel_bedrock.attributes import CONTEXT_DISTINCT_ID, IDENTITY_KEYS

_distinct_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "otel_bedrock_distinct_id", default=None
)


@contextmanager
def identify(distinct_id: str) -> Iterator[None]:
    """Attribute every Bedrock call made inside the block to ``distinct_id``.

    Works across threads only where the context is copied (``contextvars.copy_context``,
    asyncio tasks), as any context variable does.

    Raises:
        ValueError: if ``distinct_id`` is empty.
    """
    if not isinstance(distinct_id, str) or not distinct_id.strip():
        raise ValueError("identify() needs a non-empty distinct_id string")
    token = _distinct_id.set(distinct_id)
    try:
        yield
    finally:
        _distinct_id.reset(token)


def current_distinct_id() -> str | None:
    """The distinct id that the current context names, or None. Called on the caller's thread."""
    for key in IDENTITY_KEYS:
        value = baggage.get_baggage(key)
        if isinstance(value, str) and value:
            return value
    explicit = _distinct_id.get()
    if explicit:
        return explicit

    from_posthog = get_context_distinct_id()

    return from_posthog if isinstance(from_posthog, str) and from_posthog else None


def distinct_id_from_attributes(
    attributes: Mapping[str, Any], extra_keys: Sequence[str] = ()
) -> str | None:
    """The distinct id named by span attributes, or None.

    ``extra_keys`` (the ``identity_keys`` setting) are read after the standard keys and before
    the identity the caller's context gave.
    """
    for key in (*IDENTITY_KEYS, *extra_keys, CONTEXT_DISTINCT_ID):
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)

    return None
