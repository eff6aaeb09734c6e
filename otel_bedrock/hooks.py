"""Request and response hooks for the upstream botocore instrumentation.

:class:`BedrockHooks` gives the ``request_hook`` and ``response_hook`` that
``BotocoreInstrumentor().instrument()`` accepts. They run on the application's thread, inside
the boto3 call, so they do no I/O, never raise, and write what they learn onto the span in one
``set_attributes`` call:

- request: the caller's identity and, when content capture is on, the prompt;
- InvokeModel: usage from the ``x-amzn-bedrock-*`` headers first, then the family's body;
- Converse: usage, cache tokens and stop reason from the response;
- streams: the upstream stream wrapper is replaced by :class:`ObservedStream`, which reads
  usage and stop reason from every model family, records errors raised in the middle of the
  stream, and ends the span exactly once: at the end of the stream, on error, on ``close()``,
  or when the application drops the stream before the end.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from wrapt import wrap_function_wrapper

from otel_bedrock import attributes as attr
from otel_bedrock import families, usage
from otel_bedrock.calls import aws_error_name
from otel_bedrock.config import Settings
from otel_bedrock.converse import ConverseStreamState, parse_converse
from otel_bedrock.families import ResponseFacts
from otel_bedrock.identity import current_distinct_id
from otel_bedrock.model_ids import ModelRef, resolve_model
from otel_bedrock.usage import Usage

logger = logging.getLogger(__name__)

SERVICE = "bedrock-runtime"
STREAM_OPERATIONS = frozenset({"ConverseStream", "InvokeModelWithResponseStream"})
_METRICS_MARKER = b"amazon-bedrock-invocationMetrics"
_failures_logged: set[str] = set()


class BedrockHooks:
    """The request and response hooks, bound to the settings they need.

    Both hooks are called by the botocore instrumentation on the application's thread.
    """

    def __init__(self, settings: Settings) -> None:
        self._capture = settings.content_capture
        self._max_chars = settings.max_content_chars
        self._profiles = dict(settings.inference_profiles)

    def request_hook(
        self, span: Span, service_name: str, operation_name: str, api_params: Mapping[str, Any]
    ) -> None:
        """Write identity, the stream flag and (if captured) the prompt onto a Bedrock span."""
        if service_name != SERVICE or not span.is_recording():
            return
        try:
            values: dict[str, Any] = {}
            if attr.POSTHOG_DISTINCT_ID not in (getattr(span, "attributes", None) or ()):
                distinct_id = current_distinct_id()
                if distinct_id is not None:
                    values[attr.POSTHOG_DISTINCT_ID] = distinct_id
            if operation_name in STREAM_OPERATIONS:
                values[attr.STREAM] = True
            if self._capture:
                self._clip(values, attr.PROMPT, prompt_text(operation_name, api_params))
            span.set_attributes(values)
        except Exception:
            _log_once("request_hook", operation_name)

    def response_hook(
        self, span: Span, service_name: str, operation_name: str, result: Any
    ) -> None:
        """Record usage, stop reason and errors; wrap streams so their span always ends."""
        if service_name != SERVICE:
            return
        try:
            failed = not isinstance(result, dict) or "Error" in result
            if failed:
                # Upstream ends the span of a failed stream call itself; what it recorded
                # (status message and error type) is read back by the exporter.
                if isinstance(result, dict) and span.is_recording():
                    span.set_attributes(client_error_attributes(result["Error"]))
                if operation_name in STREAM_OPERATIONS:
                    _end_failed_stream_call(span)
                return
            if not span.is_recording():
                return
            model = resolve_model(_request_model(span), self._profiles)
            if operation_name == "InvokeModel":
                self._on_invoke_model(span, result, model)
            elif operation_name == "Converse":
                self._write_facts(span, parse_converse(result), "converse")
            elif operation_name == "ConverseStream":
                self._observe_stream(span, result, "stream", ConverseStreamState(self._capture))
            elif operation_name == "InvokeModelWithResponseStream":
                family = families.family_for(model.provider)
                state = family.new_stream_state(model.base_id, self._capture)
                self._observe_stream(span, result, "body", state)
        except Exception:
            _log_once("response_hook", operation_name)

    def _on_invoke_model(self, span: Span, result: dict[str, Any], model: ModelRef) -> None:
        headers = result.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        from_headers = usage.from_headers(headers)
        facts = ResponseFacts()
        body = result.get("body")
        if isinstance(body, StreamingBody):
            raw = body.read()
            result["body"] = StreamingBody(io.BytesIO(raw), len(raw))
            facts = _parse_invoke_body(raw, model)
        merged = ResponseFacts(
            usage=from_headers.merged_over(facts.usage),
            stop_reason=facts.stop_reason,
            text=facts.text,
        )
        self._write_facts(span, merged, "headers" if not from_headers.is_empty else "body")

    def _write_facts(self, span: Span, facts: ResponseFacts, source: str) -> None:
        span.set_attributes(self.fact_attributes(facts, source))

    def fact_attributes(self, facts: ResponseFacts, source: str) -> dict[str, Any]:
        """Span attributes for what a response told us."""
        values = usage_attributes(facts.usage, source)
        if facts.stop_reason is not None:
            values[attr.STOP_REASON] = facts.stop_reason
            values[attr.GEN_AI_FINISH_REASONS] = (facts.stop_reason,)
        if self._capture and facts.text is not None:
            self._clip(values, attr.GENERATION, facts.text)

        return values

    def _observe_stream(
        self, span: Span, result: dict[str, Any], key: str, state: StreamState
    ) -> None:
        stream = result.get(key)
        if stream is None:
            return
        # The upstream wrapper parses three families and cannot end the span for the others;
        # observe the raw event stream instead and own the end of the span.
        raw = getattr(stream, "__wrapped__", stream)
        outcome = StreamOutcome(span, state, self)
        result[key] = ObservedStream(raw, outcome)

    def _clip(self, values: dict[str, Any], key: str, text: str | None) -> None:
        if text is None:
            return
        if len(text) > self._max_chars:
            text = text[: self._max_chars]
            values[attr.CONTENT_TRUNCATED] = True
        values[key] = text


StreamState = ConverseStreamState | families.StreamState


class StreamOutcome:
    """What one stream has shown so far; ends its span exactly once.

    Called on whichever thread iterates the stream, or on the garbage collector's when the
    application drops a stream it never finished.
    """

    __slots__ = ("_completed", "_done", "_error", "_hooks", "_is_converse", "_span", "_state")

    def __init__(self, span: Span, state: StreamState, hooks: BedrockHooks) -> None:
        self._span = span
        self._state = state
        self._hooks = hooks
        self._is_converse = isinstance(state, ConverseStreamState)
        self._completed = False
        self._done = False
        self._error: BaseException | None = None

    def observe(self, event: Mapping[str, Any]) -> None:
        """Read one stream event; never raises."""
        try:
            if self._is_converse:
                self._state.observe(event)  # type: ignore[union-attr]
                if "metadata" in event:
                    self._completed = True
                return
            chunk = event.get("chunk")
            if not chunk:
                return
            raw = chunk.get("bytes", b"")
            state = self._state
            if state.collect_text or any(marker in raw for marker in state.markers):  # type: ignore[union-attr]
                decoded = json.loads(raw)
                if isinstance(decoded, dict):
                    state.observe_chunk(decoded)  # type: ignore[union-attr]
            if _METRICS_MARKER in raw:
                self._completed = True
        except Exception:
            _log_once("stream_event", "")

    def fail(self, error: BaseException) -> None:
        """Remember the error that ended the stream."""
        self._error = error

    def finish(self, reached_end: bool = False) -> None:
        """Write what is known onto the span and end it; later calls do nothing."""
        if self._done:
            return
        self._done = True
        try:
            span = self._span
            values = self._hooks.fact_attributes(self._state.facts(), "stream")
            values[attr.STREAM_COMPLETED] = self._error is None and (self._completed or reached_end)
            error = self._error
            if error is not None:
                values.update(stream_error_attributes(error))
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, str(error)))
            span.set_attributes(values)
            span.end()
        except Exception:
            _log_once("stream_end", "")


class ObservedStream:
    """Stands in for botocore's ``EventStream``: same events, same order, span always ends.

    Iterated on the application's thread. Attributes it does not define come from the wrapped
    stream.
    """

    def __init__(self, stream: Any, outcome: StreamOutcome) -> None:
        self._stream = stream
        self._outcome = outcome
        # Ends the span, and frees the connection, when the application drops the stream.
        self._finalizer = weakref.finalize(self, _abandon, stream, outcome)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        outcome = self._outcome
        reached_end = False
        try:
            for event in self._stream:
                outcome.observe(event)
                yield event
            reached_end = True
        except GeneratorExit:
            raise
        except BaseException as error:
            outcome.fail(error)
            raise
        finally:
            outcome.finish(reached_end)

    def close(self) -> None:
        """Close the underlying stream and end the span."""
        try:
            self._stream.close()
        finally:
            self._outcome.finish()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def count_attempt(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Count one HTTP attempt on the current Bedrock span.

    Wraps botocore's ``Endpoint.create_request``, which botocore calls once per attempt,
    retries included, on the caller's thread. The count gives ``retry_attempts`` for calls that
    end without any response (connection refused, timeouts).
    """
    try:
        span = trace.get_current_span()
        values = getattr(span, "attributes", None)
        if values is not None and values.get(attr.RPC_SERVICE) == attr.BEDROCK_RUNTIME_SERVICE:
            span.set_attribute(attr.ATTEMPTS, values.get(attr.ATTEMPTS, 0) + 1)
    except Exception:
        _log_once("count_attempt", "")

    return wrapped(*args, **kwargs)


_counter_installed = False


def install_attempt_counter() -> None:
    """Wrap botocore so each Bedrock span counts its HTTP attempts; safe to call again."""
    global _counter_installed
    if not _counter_installed:
        wrap_function_wrapper("botocore.endpoint", "Endpoint.create_request", count_attempt)
        _counter_installed = True


def _abandon(stream: Any, outcome: StreamOutcome) -> None:
    """Called when the application dropped a stream: nothing can read it any more."""
    try:
        stream.close()
    except Exception:
        _log_once("stream_close", "")
    outcome.finish()


def _end_failed_stream_call(span: Span) -> None:
    """End the span of a stream call that failed before any stream existed.

    The upstream instrumentation leaves stream spans open for the stream to end them; when the
    call itself raises there is no stream, so the span would never end. The hook runs while
    the exception propagates, so it is still visible here.
    """
    if not span.is_recording():
        return
    error = sys.exc_info()[1]
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)))
    span.end()


def usage_attributes(counts: Usage, source: str) -> dict[str, Any]:
    """Span attributes for measured usage; counts Bedrock did not report are left out."""
    values: dict[str, Any] = {}
    pairs = (
        (counts.input_tokens, attr.USAGE_INPUT_TOKENS, attr.GEN_AI_INPUT_TOKENS),
        (counts.output_tokens, attr.USAGE_OUTPUT_TOKENS, attr.GEN_AI_OUTPUT_TOKENS),
        (counts.cache_read_tokens, attr.USAGE_CACHE_READ_TOKENS, attr.GEN_AI_CACHE_READ_TOKENS),
        (
            counts.cache_write_tokens,
            attr.USAGE_CACHE_WRITE_TOKENS,
            attr.GEN_AI_CACHE_WRITE_TOKENS,
        ),
    )
    for value, ours, standard in pairs:
        if value is not None:
            values[ours] = value
            values[standard] = value
    if values:
        values[attr.USAGE_SOURCE] = source

    return values


def client_error_attributes(error: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes for the ``Error`` object of a failed response."""
    values: dict[str, Any] = {}
    code = error.get("Code")
    if isinstance(code, str) and code:
        values[attr.ERROR_CODE] = aws_error_name(code)
    message = error.get("Message") or error.get("message")
    if isinstance(message, str):
        values[attr.ERROR_MESSAGE] = message

    return values


# HTTP status that Bedrock documents for each exception it can send inside a stream.
_STREAM_ERROR_STATUS = {
    "ThrottlingException": 429,
    "ValidationException": 400,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "ModelStreamErrorException": 424,
    "ModelTimeoutException": 408,
}


def stream_error_attributes(error: BaseException) -> dict[str, Any]:
    """Span attributes for an error raised while the application read a stream."""
    if isinstance(error, ClientError):
        values = client_error_attributes(error.response.get("Error", {}))
        status = _STREAM_ERROR_STATUS.get(values.get(attr.ERROR_CODE, ""))
        if status is not None:
            values[attr.ERROR_HTTP_STATUS] = status
        return values

    return {attr.ERROR_CODE: type(error).__name__, attr.ERROR_MESSAGE: str(error)}


def prompt_text(operation: str, params: Mapping[str, Any]) -> str | None:
    """The text the application sent, for content capture."""
    if operation in ("Converse", "ConverseStream"):
        parts = [block.get("text") for block in params.get("system") or () if "text" in block]
        for message in params.get("messages") or ():
            parts.extend(block.get("text") for block in message.get("content") or ())
        return "\n".join(part for part in parts if isinstance(part, str)) or None
    body = params.get("body")
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", "replace")
    if not isinstance(body, str):
        return None
    try:
        decoded = json.loads(body)
    except ValueError:
        return body
    if isinstance(decoded, dict):
        for key in ("prompt", "inputText", "message"):
            if isinstance(decoded.get(key), str):
                return str(decoded[key])

    return body


def _parse_invoke_body(raw: bytes, model: ModelRef) -> ResponseFacts:
    try:
        decoded = json.loads(raw)
    except ValueError:
        return ResponseFacts()
    if not isinstance(decoded, dict):
        return ResponseFacts()

    return families.family_for(model.provider).parse_body(decoded, model.base_id)


def _request_model(span: Span) -> str:
    values = getattr(span, "attributes", None) or {}
    model = values.get(attr.GEN_AI_REQUEST_MODEL)

    return model if isinstance(model, str) else ""


def _log_once(where: str, detail: str) -> None:
    if where in _failures_logged:
        logger.debug("otel_bedrock_hook_failed where=%s operation=%s", where, detail, exc_info=True)
        return
    _failures_logged.add(where)
    logger.warning(
        "otel_bedrock_hook_failed where=%s operation=%s; the call goes on, its event may lack "
        "usage",
        where,
        detail,
        exc_info=True,
    )
