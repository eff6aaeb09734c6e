"""The span processor: who made each Bedrock call, decided when the call starts.

Identity lives in the caller's context (baggage, :func:`otel_bedrock.identify`, PostHog's
context, or the attributes of the span that encloses the call), which is gone by the time the
exporter runs on its own thread. :class:`BedrockSpanProcessor` reads it in ``on_start`` and
writes it onto the Bedrock span as ``bedrock.context.distinct_id``.
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_bedrock import attributes as attr
from otel_bedrock._once import warn_once
from otel_bedrock.identity import current_distinct_id, distinct_id_from_attributes

logger = logging.getLogger(__name__)


class BedrockSpanProcessor(SpanProcessor):
    """Stamps the caller's identity on Bedrock Runtime spans.

    ``on_start`` is called on the application's thread at the start of every span; it returns
    at once for spans that are not Bedrock Runtime calls.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Write the identity the caller's context names onto a starting Bedrock span."""
        values = span.attributes
        if values is None or values.get(attr.RPC_SERVICE) != attr.BEDROCK_RUNTIME_SERVICE:
            return
        try:
            distinct_id = current_distinct_id() or _enclosing_span_identity(parent_context)
        except Exception:  # noqa: BLE001 - a span start must never break the caller's request
            warn_once(
                logger,
                "identity_failed",
                "otel_bedrock_identity_failed; the call goes on, its event may be anonymous",
                exc_info=True,
            )
            return
        if distinct_id is not None:
            span.set_attribute(attr.CONTEXT_DISTINCT_ID, distinct_id)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do: the exporter reads everything from the finished span."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True


def _enclosing_span_identity(parent_context: Context | None) -> str | None:
    parent = trace.get_current_span(parent_context)
    values = getattr(parent, "attributes", None)

    return distinct_id_from_attributes(values) if values else None
