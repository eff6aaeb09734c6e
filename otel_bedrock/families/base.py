"""Shared machinery of the family readers: safe accessors and the two base classes.

:class:`BaseFamily` guards body parsing so that nothing escapes into the application;
:class:`BaseStreamState` reads the ``amazon-bedrock-invocationMetrics`` object that Bedrock
appends to the last chunk of every InvokeModel stream, whatever the family, and lets the usage
in it win over what the family's own chunks said.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from otel_bedrock.families import ResponseFacts, StreamState
from otel_bedrock.usage import Usage, from_invocation_metrics

logger = logging.getLogger(__name__)

EMPTY_FACTS = ResponseFacts()
METRICS_KEY = "amazon-bedrock-invocationMetrics"
METRICS_MARKER = b"amazon-bedrock-invocationMetrics"

_failures_logged: set[str] = set()


def non_null_markers(*keys: str) -> tuple[bytes, ...]:
    """Byte strings matching ``"key":"`` and ``"key": "``, that is a key with a string value."""
    markers: list[bytes] = []
    for key in keys:
        markers.append(f'"{key}":"'.encode())
        markers.append(f'"{key}": "'.encode())

    return tuple(markers)


def mapping(value: Any) -> Mapping[str, Any] | None:
    """Return ``value`` when it is a mapping, else None."""
    return value if isinstance(value, Mapping) else None


def first(value: Any) -> Mapping[str, Any] | None:
    """Return the first item of a list when it is a mapping, else None."""
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        return value[0]

    return None


def dig(value: Any, *keys: str) -> Any:
    """Follow ``keys`` through nested mappings; None as soon as one step is missing."""
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)

    return value


def string(value: Any) -> str | None:
    """Return ``value`` when it is a string, else None."""
    return value if isinstance(value, str) else None


def reason(value: Any) -> str | None:
    """Return ``value`` when it is a non-empty string, else None (a stop reason)."""
    return value if isinstance(value, str) and value else None


def length(value: Any) -> int | None:
    """Return the length of a list, else None (token lists that count tokens)."""
    return len(value) if isinstance(value, list) else None


def block_text(blocks: Any) -> str | None:
    """Join the ``text`` of the content blocks in ``blocks``; None when none has text.

    Blocks of other kinds (tool use, reasoning, images) are skipped.
    """
    if not isinstance(blocks, list):
        return None
    parts = [
        block["text"]
        for block in blocks
        if isinstance(block, Mapping) and isinstance(block.get("text"), str)
    ]

    return "".join(parts) if parts else None


def log_failure(where: str) -> None:
    """Log, once per process and place, that a reader failed on an unexpected shape."""
    if where in _failures_logged:
        return
    _failures_logged.add(where)
    logger.warning("bedrock_body_unreadable reader=%s", where, exc_info=True)


class BaseFamily:
    """A family reader; subclasses implement :meth:`_parse_body`.

    Instances hold no per-call state and are shared by all threads.
    """

    name: str = "base"
    stream_state: ClassVar[type[BaseStreamState]]

    def parse_body(self, body: Mapping[str, Any], base_id: str | None) -> ResponseFacts:
        """Read an InvokeModel JSON response body; a body it cannot read gives empty facts."""
        if not isinstance(body, Mapping):
            return EMPTY_FACTS
        try:
            return self._parse_body(body, base_id)
        except Exception:  # noqa: BLE001 - a parser on the request path must never raise
            log_failure(f"{self.name}.body")
            return EMPTY_FACTS

    def new_stream_state(self, base_id: str | None, collect_text: bool = False) -> StreamState:
        """Return a fresh state for one InvokeModelWithResponseStream response."""
        return self.stream_state(collect_text)

    def _parse_body(self, body: Mapping[str, Any], base_id: str | None) -> ResponseFacts:
        raise NotImplementedError


class BaseStreamState:
    """Facts of one InvokeModel stream, built up chunk by chunk.

    Subclasses implement :meth:`_observe` and record what they find in ``_usage``,
    ``_stop_reason`` and (through :meth:`_add_text`) the text. Usage from the invocation
    metrics of the last chunk is authoritative; counts it lacks come from ``_usage``.
    Called on the application's thread as it reads the stream; not shared between threads.
    """

    __slots__ = ("_metrics", "_parts", "_stop_reason", "_usage", "collect_text")

    markers: tuple[bytes, ...] = (METRICS_MARKER,)
    collect_text: bool

    def __init__(self, collect_text: bool = False) -> None:
        """Start an empty state; text is kept only when ``collect_text`` is true."""
        self.collect_text = collect_text
        self._metrics = Usage()
        self._usage = Usage()
        self._stop_reason: str | None = None
        self._parts: list[str] = []

    def observe_chunk(self, chunk: Mapping[str, Any]) -> None:
        """Take in one decoded JSON chunk; unreadable chunks are ignored."""
        if not isinstance(chunk, Mapping):
            return
        try:
            metrics = chunk.get(METRICS_KEY)
            if isinstance(metrics, Mapping):
                self._metrics = from_invocation_metrics(metrics)
            self._observe(chunk)
        except Exception:  # noqa: BLE001 - a bad chunk must not break the stream
            log_failure(f"{type(self).__name__}.chunk")

    def facts(self) -> ResponseFacts:
        """Return what the chunks seen so far say."""
        text = "".join(self._parts) if self._parts else None

        return ResponseFacts(self._metrics.merged_over(self._usage), self._stop_reason, text)

    def _observe(self, chunk: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _take_usage(self, usage: Usage) -> None:
        self._usage = usage.merged_over(self._usage)

    def _set_stop(self, value: Any) -> None:
        stop = reason(value)
        if stop is not None:
            self._stop_reason = stop

    def _add_text(self, value: Any) -> None:
        if self.collect_text and isinstance(value, str):
            self._parts.append(value)
