"""Observing Bedrock's event streams so that each streamed call ends its span exactly once.

:class:`ObservedStream` replaces the stream boto3 returns for ConverseStream
(``response["stream"]``) and InvokeModelWithResponseStream (``response["body"]``). It is a
transparent proxy: the application gets the same events in the same order, and
``isinstance(stream, EventStream)`` still holds. Its :class:`StreamOutcome` reads usage, stop
reason and text from every event and ends the span:

- when the stream is read to its end;
- when it raises (an exception sent by Bedrock in the middle of the stream, a cut connection);
- when the application calls ``close()``;
- when the application drops the stream, read or not;
- when the process exits with the stream still unfinished.

A stream may be read in several loops; breaking out of one does not end the span.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode
from wrapt import ObjectProxy

from otel_bedrock import attributes as attr
from otel_bedrock._once import warn_once
from otel_bedrock.converse import ConverseStreamState
from otel_bedrock.families import ResponseFacts, StreamState
from otel_bedrock.span_facts import converse_variant, stream_error_attributes

logger = logging.getLogger(__name__)

DescribeFacts = Callable[[ResponseFacts, str], dict[str, Any]]


_open_outcomes: set[StreamOutcome] = set()
_exit_handler_registered = False


def _track(outcome: StreamOutcome) -> None:
    """Remember an unfinished stream, so that it still gives its event if the process exits."""
    global _exit_handler_registered
    if not _exit_handler_registered:
        # Registered once a stream exists, so after the tracer provider's own exit handler,
        # and therefore run before it (last registered, first run): the spans ended here are
        # still exported.
        atexit.register(_finish_open_streams)
        _exit_handler_registered = True
    _open_outcomes.add(outcome)


def _finish_open_streams() -> None:
    """At exit, end the span of every stream the application still held unfinished."""
    for outcome in list(_open_outcomes):
        outcome.finish()


class StreamOutcome:
    """What one stream has shown so far; ends its span exactly once.

    Called on whichever thread reads the stream, or on the garbage collector's when the
    application drops it.
    """

    __slots__ = ("_describe", "_done", "_error", "_extra", "_lock", "_span", "_terminal")

    def __init__(self, span: Span, describe: DescribeFacts) -> None:
        self._span = span
        self._describe = describe
        self._terminal = False
        self._extra: dict[str, Any] = {}
        self._done = False
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def observe(self, event: Mapping[str, Any]) -> None:
        """Read one stream event; never raises."""
        raise NotImplementedError

    def facts(self) -> ResponseFacts:
        """What the events read so far say."""
        raise NotImplementedError

    def fail(self, error: BaseException) -> None:
        """Remember the error that ended the stream."""
        self._error = error

    def finish(self) -> None:
        """Write what is known onto the span and end it; later calls do nothing."""
        with self._lock:
            if self._done:
                return
            self._done = True
        _open_outcomes.discard(self)
        span = self._span
        try:
            values = self._describe(self.facts(), "stream")
            values.update(self._extra)
            values[attr.STREAM_COMPLETED] = self._error is None and self._terminal
            error = self._error
            if error is not None:
                values.update(stream_error_attributes(error))
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, str(error)))
            span.set_attributes(values)
        except Exception:  # noqa: BLE001 - describing the stream must not break the caller
            warn_once(logger, "stream_end", "bedrock_stream_unreadable", exc_info=True)
        finally:
            span.end()


class ConverseStreamOutcome(StreamOutcome):
    """Outcome of a ConverseStream call; its last event is ``metadata``."""

    __slots__ = ("_state",)

    def __init__(self, span: Span, describe: DescribeFacts, state: ConverseStreamState) -> None:
        super().__init__(span, describe)
        self._state = state

    def observe(self, event: Mapping[str, Any]) -> None:
        """Read one ConverseStream event; never raises."""
        try:
            self._state.observe(event)
            if "metadata" in event:
                self._terminal = True
                self._extra = converse_variant(event["metadata"])
        except Exception:  # noqa: BLE001 - a bad event must not break the caller's stream
            warn_once(logger, "stream_event", "bedrock_stream_event_unreadable", exc_info=True)

    def facts(self) -> ResponseFacts:
        """What the events read so far say."""
        return self._state.facts()


class InvokeStreamOutcome(StreamOutcome):
    """Outcome of an InvokeModelWithResponseStream call; its last chunk carries metrics."""

    __slots__ = ("_markers", "_state")

    def __init__(
        self, span: Span, describe: DescribeFacts, state: StreamState, extra: dict[str, Any]
    ) -> None:
        super().__init__(span, describe)
        self._state = state
        self._extra = extra
        # With text collection off, only chunks holding one of these are worth decoding.
        self._markers = () if state.collect_text else state.markers

    def observe(self, event: Mapping[str, Any]) -> None:
        """Read one stream event; never raises."""
        try:
            chunk = event.get("chunk")
            if not chunk:
                return
            raw = chunk.get("bytes", b"")
            if self._markers and not any(marker in raw for marker in self._markers):
                return
            decoded = json.loads(raw)
            if isinstance(decoded, dict):
                self._state.observe_chunk(decoded)
                if "amazon-bedrock-invocationMetrics" in decoded:
                    self._terminal = True
        except Exception:  # noqa: BLE001 - a bad event must not break the caller's stream
            warn_once(logger, "stream_event", "bedrock_stream_event_unreadable", exc_info=True)

    def facts(self) -> ResponseFacts:
        """What the chunks read so far say."""
        return self._state.facts()


class ObservedStream(ObjectProxy):  # type: ignore[type-arg]
    """Stands in for botocore's ``EventStream``: same events, and the span always ends.

    Iterated on the application's thread; everything else is the wrapped stream's.
    """

    def __init__(self, stream: Any, outcome: StreamOutcome) -> None:
        super().__init__(stream)
        self._self_outcome = outcome
        _track(outcome)

    def __del__(self) -> None:
        # The application dropped the stream: end the span and free the connection.
        _abandon(self.__wrapped__, self._self_outcome)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        outcome = self._self_outcome
        try:
            for event in self.__wrapped__:
                outcome.observe(event)
                yield event
        except GeneratorExit:
            # The application stopped this loop; it may read on in another one.
            raise
        except BaseException as error:
            outcome.fail(error)
            outcome.finish()
            raise
        outcome.finish()

    def close(self) -> None:
        """Close the underlying stream and end the span."""
        try:
            self.__wrapped__.close()
        finally:
            self._self_outcome.finish()


def _abandon(stream: Any, outcome: StreamOutcome) -> None:
    """Called when the application dropped a stream: nothing can read it any more."""
    try:
        stream.close()
    except Exception:  # noqa: BLE001 - closing a dead stream must not raise at collection
        warn_once(logger, "stream_close", "bedrock_stream_close_failed", exc_info=True)
    outcome.finish()
