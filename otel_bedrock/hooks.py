"""Request and response hooks for the upstream botocore instrumentation.

:class:`BedrockHooks` gives the ``request_hook`` and ``response_hook`` that
``BotocoreInstrumentor().instrument()`` accepts. They run on the application's thread, inside
the boto3 call, so they do no I/O, never raise, and write what they learn onto the span in one
``set_attributes`` call:

- request: the caller's identity and, when content capture is on, the prompt;
- InvokeModel: usage from the ``x-amzn-bedrock-*`` headers first, then the family's body;
- Converse: usage, cache tokens and stop reason from the response;
- streams: the upstream stream wrapper, which parses three families and cannot end the span
  of the others, is replaced by :class:`~otel_bedrock.streams.ObservedStream`.

:func:`install_botocore_wrappers` counts each call's HTTP attempts, so that calls which never
got an answer still report their retries, and keeps the error of a stream call that failed
before streaming.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

from botocore.response import StreamingBody
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from wrapt import wrap_function_wrapper

from otel_bedrock import attributes as attr
from otel_bedrock import families, usage
from otel_bedrock._once import warn_once
from otel_bedrock.config import Settings
from otel_bedrock.content import clip_messages, prompt_messages
from otel_bedrock.converse import ConverseStreamState, parse_converse
from otel_bedrock.families import ResponseFacts
from otel_bedrock.identity import current_distinct_id
from otel_bedrock.model_ids import ModelRef, resolve_model
from otel_bedrock.span_facts import (
    client_error_attributes,
    converse_variant,
    usage_attributes,
    variant_attributes,
)
from otel_bedrock.streams import (
    ConverseStreamOutcome,
    InvokeStreamOutcome,
    ObservedStream,
    StreamOutcome,
)
from otel_bedrock.usage import Usage

logger = logging.getLogger(__name__)

SERVICE = "bedrock-runtime"
STREAM_OPERATIONS = frozenset({"ConverseStream", "InvokeModelWithResponseStream"})


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
        """Write identity and, when captured, the prompt onto a starting Bedrock span."""
        if service_name != SERVICE or not span.is_recording():
            return
        values: dict[str, Any] = {}
        try:
            known = getattr(span, "attributes", None) or {}
            if attr.CONTEXT_DISTINCT_ID not in known:  # our processor may have read it
                distinct_id = current_distinct_id()
                if distinct_id is not None:
                    values[attr.CONTEXT_DISTINCT_ID] = distinct_id
        except Exception:  # noqa: BLE001 - a hook must never break the caller's request
            _hook_failed("identity", operation_name)
        if self._capture:
            try:
                values.update(self._prompt_attributes(operation_name, api_params))
            except Exception:  # noqa: BLE001 - the request may not even be valid yet
                _hook_failed("prompt", operation_name)
        if values:
            span.set_attributes(values)

    def response_hook(
        self, span: Span, service_name: str, operation_name: str, result: Any
    ) -> None:
        """Record usage, stop reason and errors; wrap streams so their span always ends."""
        if service_name != SERVICE:
            return
        try:
            if not isinstance(result, dict) or "Error" in result:
                self._on_failure(span, operation_name, result)
            elif span.is_recording():
                self._on_success(span, operation_name, result)
        except Exception:  # noqa: BLE001 - a hook must never break the caller's request
            _hook_failed("response", operation_name)

    def fact_attributes(self, facts: ResponseFacts, source: str) -> dict[str, Any]:
        """Span attributes for what a response told us."""
        values = usage_attributes(facts.usage, source)
        if facts.stop_reason is not None:
            values[attr.STOP_REASON] = facts.stop_reason
            values[attr.GEN_AI_FINISH_REASONS] = (facts.stop_reason,)
        if self._capture and facts.text is not None:
            self._clip(values, attr.GENERATION, facts.text)

        return values

    def _on_failure(self, span: Span, operation: str, result: Any) -> None:
        # Upstream ends the span of a stream call that got an HTTP error itself, before this
        # hook: record_stream_call_error wrote the error onto it then.
        if isinstance(result, dict) and span.is_recording():
            span.set_attributes(client_error_attributes(result["Error"]))
        if operation in STREAM_OPERATIONS:
            _end_failed_stream_call(span)

    def _on_success(self, span: Span, operation: str, result: dict[str, Any]) -> None:
        model = resolve_model(_request_model(span), self._profiles)
        if operation == "InvokeModel":
            self._on_invoke_model(span, result, model)
        elif operation == "Converse":
            values = self.fact_attributes(parse_converse(result), "converse")
            values.update(converse_variant(result))
            _set_changed(span, values)
        elif operation == "ConverseStream":
            state = ConverseStreamState(self._capture)
            self._observe(
                result, "stream", ConverseStreamOutcome(span, self.fact_attributes, state)
            )
        elif operation == "InvokeModelWithResponseStream":
            family = families.family_for(model.provider)
            stream_state = family.new_stream_state(model.base_id, self._capture)
            extra = variant_attributes(
                result.get("serviceTier"), result.get("performanceConfigLatency")
            )
            outcome = InvokeStreamOutcome(span, self.fact_attributes, stream_state, extra)
            self._observe(result, "body", outcome)

    def _on_invoke_model(self, span: Span, result: dict[str, Any], model: ModelRef) -> None:
        headers = result.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        from_headers = usage.from_headers(headers)
        facts = ResponseFacts()
        body = result.get("body")
        if isinstance(body, StreamingBody) and self._body_adds_facts(span, from_headers):
            raw = body.read()
            result["body"] = StreamingBody(io.BytesIO(raw), len(raw))
            facts = _parse_invoke_body(raw, model)
        merged = ResponseFacts(
            usage=from_headers.merged_over(facts.usage),
            stop_reason=facts.stop_reason,
            text=facts.text,
        )
        source = "headers" if not from_headers.is_empty else "body"
        values = self.fact_attributes(merged, source)
        values.update(
            variant_attributes(result.get("serviceTier"), result.get("performanceConfigLatency"))
        )
        _set_changed(span, values)

    def _body_adds_facts(self, span: Span, from_headers: Usage) -> bool:
        """Whether the body can tell more than the headers and upstream's attributes did.

        Reading the body again costs the caller a copy and a JSON parse; it is skipped when
        the headers gave both counts, upstream recorded the stop reason, no text is captured
        and no cache write happened (only Claude's body splits writes by cache lifetime).
        """
        if self._capture or from_headers.input_tokens is None or from_headers.output_tokens is None:
            return True
        if from_headers.cache_write_tokens:
            return True
        known = getattr(span, "attributes", None) or {}

        return attr.GEN_AI_FINISH_REASONS not in known

    @staticmethod
    def _observe(result: dict[str, Any], key: str, outcome: StreamOutcome) -> None:
        raw = getattr(result.get(key), "__wrapped__", result.get(key))
        if raw is not None and not hasattr(raw, "__aiter__"):
            # Observe the raw event stream under upstream's wrapper, and own the span's end.
            # Asynchronous streams (aiobotocore) are left to upstream.
            result[key] = ObservedStream(raw, outcome)

    def _prompt_attributes(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        messages, truncated = clip_messages(prompt_messages(operation, params), self._max_chars)
        if not messages:
            return {}
        values: dict[str, Any] = {
            attr.PROMPT: "\n".join(message["content"] for message in messages),
            attr.PROMPT_MESSAGES: json.dumps(messages),
        }
        if truncated:
            values[attr.CONTENT_TRUNCATED] = True

        return values

    def _clip(self, values: dict[str, Any], key: str, text: str | None) -> None:
        if text is None:
            return
        if len(text) > self._max_chars:
            text = text[: self._max_chars]
            values[attr.CONTENT_TRUNCATED] = True
        values[key] = text


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
    except Exception:  # noqa: BLE001 - counting must never break the caller's request
        _hook_failed("count_attempt", "")

    return wrapped(*args, **kwargs)


def record_stream_call_error(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Write a failed stream call's error onto its span before upstream ends the span.

    Wraps the upstream Bedrock extension's ``on_error``, which ends the span of a
    ConverseStream or InvokeModelWithResponseStream call that got an HTTP error before the
    response hook runs; without this, the event of such a call would lack the AWS error name
    and the stack that the same error has on the other operations. Runs on the caller's
    thread while the ``ClientError`` propagates.
    """
    try:
        span, error = args[0], args[1]
        if instance._call_context.operation in STREAM_OPERATIONS and span.is_recording():
            response = getattr(error, "response", None) or {}
            span.set_attributes(client_error_attributes(response.get("Error") or {}))
            span.record_exception(error)
    except Exception:  # noqa: BLE001 - recording must never break the caller's request
        _hook_failed("stream_call_error", "")

    return wrapped(*args, **kwargs)


_wrappers_installed = False


def install_botocore_wrappers() -> None:
    """Wrap botocore and its instrumentation where hooks cannot reach; safe to call again.

    Each Bedrock span counts its HTTP attempts (:func:`count_attempt`), and a stream call that
    fails before streaming keeps its error (:func:`record_stream_call_error`).
    """
    global _wrappers_installed
    if _wrappers_installed:
        return
    wrap_function_wrapper("botocore.endpoint", "Endpoint.create_request", count_attempt)
    try:
        wrap_function_wrapper(
            "opentelemetry.instrumentation.botocore.extensions.bedrock",
            "_BedrockRuntimeExtension.on_error",
            record_stream_call_error,
        )
    except (ImportError, AttributeError):
        warn_once(
            logger,
            "stream_call_error_unwrapped",
            "otel_bedrock_upstream_changed: stream calls that fail before streaming will "
            "lack their AWS error name",
        )
    _wrappers_installed = True


def _end_failed_stream_call(span: Span) -> None:
    """End the span of a stream call that failed before any stream existed.

    The upstream instrumentation leaves stream spans open for the stream to end them; when the
    call itself raises there is no stream, so the span would never end. The hook runs while
    the exception propagates, so it is still visible here.
    """
    if not span.is_recording():
        return
    try:
        error = sys.exc_info()[1]
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
    finally:
        span.end()


def _set_changed(span: Span, values: dict[str, Any]) -> None:
    """Set the attributes whose value differs from what the span holds (upstream's, often)."""
    current = getattr(span, "attributes", None) or {}
    changed = {key: value for key, value in values.items() if current.get(key) != value}
    if changed:
        span.set_attributes(changed)


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


def _hook_failed(where: str, operation: str) -> None:
    warn_once(
        logger,
        f"hook:{where}",
        "otel_bedrock_hook_failed where=%s operation=%s; the call goes on, its event may lack "
        "facts",
        where,
        operation,
        exc_info=True,
    )
