"""Embedded mode: configure(), flush() and instrumenting next to the application's own hooks."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.sdk.trace import TracerProvider

import otel_bedrock
from otel_bedrock import setup
from otel_bedrock.config import load_settings
from otel_bedrock.testing import BedrockEmulator, CaptureEmulator
from tests.conftest import TEST_KEY, make_client

LLAMA = "meta.llama3-1-8b-instruct-v1:0"
BODY = json.dumps({"prompt": "Eggs?", "max_gen_len": 16})
MESSAGES = [{"role": "user", "content": [{"text": "Eggs?"}]}]


@pytest.fixture
def clean_instrumentation() -> Iterator[None]:
    """Leave botocore uninstrumented and configure() forgotten after the test."""
    yield
    if BotocoreInstrumentor().is_instrumented_by_opentelemetry:
        BotocoreInstrumentor().uninstrument()
    setup._configured = None


def test_flush_delivers_before_returning(
    bedrock: BedrockEmulator, capture: CaptureEmulator, clean_instrumentation: None
) -> None:
    """After pipeline.flush() returns, PostHog already has the event (serverless handlers)."""
    bedrock.reset()
    capture.reset()
    provider = TracerProvider()
    pipeline = otel_bedrock.configure(provider, api_key=TEST_KEY, host=capture.url)
    make_client(bedrock.endpoint_url).invoke_model(modelId=LLAMA, body=BODY)

    assert pipeline.flush(10_000) is True

    assert [event["event"] for event in capture.events] == ["bedrock_completion"]
    provider.shutdown()


def test_configure_twice_keeps_one_pipeline(
    capture: CaptureEmulator, clean_instrumentation: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A second configure() on the same provider warns and returns the first pipeline."""
    provider = TracerProvider()
    first = otel_bedrock.configure(provider, api_key=TEST_KEY, host=capture.url)

    with caplog.at_level(logging.WARNING):
        second = otel_bedrock.configure(provider, api_key=TEST_KEY, host=capture.url)

    assert second is first
    assert "otel_bedrock_already_configured" in caplog.text
    provider.shutdown()


def test_application_hooks_run_once_beside_ours_after_instrumenting_twice(
    bedrock: BedrockEmulator, clean_instrumentation: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Re-instrumenting keeps the application's hook once and ours once; no span ends twice."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    bedrock.reset()
    seen: list[str] = []

    def application_hook(span: Any, service: str, operation: str, params: Any) -> None:
        seen.append(operation)

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    BotocoreInstrumentor().instrument(tracer_provider=provider, request_hook=application_hook)
    settings = load_settings(api_key=TEST_KEY)
    setup.instrument_botocore(settings, tracer_provider=provider)
    setup.instrument_botocore(settings, tracer_provider=provider)

    with caplog.at_level(logging.WARNING):
        events = make_client(bedrock.endpoint_url).converse_stream(
            modelId=LLAMA, messages=MESSAGES
        )["stream"]
        list(events)

    assert seen == ["ConverseStream"]
    [span] = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["bedrock.stream.completed"] is True
    assert "ended span" not in caplog.text


def test_user_set_on_the_span_wins_over_the_callers_context(
    bedrock: BedrockEmulator, clean_instrumentation: None
) -> None:
    """A user.id the application's own hook puts on the span beats identify()."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_bedrock.calls import describe

    bedrock.reset()

    def application_hook(span: Any, service: str, operation: str, params: Any) -> None:
        span.set_attribute("user.id", "from-span")

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(otel_bedrock.BedrockSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(spans))
    BotocoreInstrumentor().instrument(tracer_provider=provider, request_hook=application_hook)
    setup.instrument_botocore(load_settings(api_key=TEST_KEY), tracer_provider=provider)

    with otel_bedrock.identify("from-context"):
        make_client(bedrock.endpoint_url).invoke_model(modelId=LLAMA, body=BODY)

    [span] = spans.get_finished_spans()
    call = describe(span)
    assert call is not None
    assert call.distinct_id == "from-span"


def test_failing_application_hook_does_not_skip_ours(
    bedrock: BedrockEmulator, clean_instrumentation: None
) -> None:
    """When the application's response hook raises, ours still records the call's usage."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    bedrock.reset()

    def application_hook(span: Any, service: str, operation: str, result: Any) -> None:
        raise RuntimeError("the application's hook failed")

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    BotocoreInstrumentor().instrument(tracer_provider=provider, response_hook=application_hook)
    setup.instrument_botocore(load_settings(api_key=TEST_KEY), tracer_provider=provider)

    with pytest.raises(RuntimeError):
        make_client(bedrock.endpoint_url).invoke_model(modelId=LLAMA, body=BODY)

    [span] = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["bedrock.usage.source"] == "headers"


def test_identity_failure_does_not_break_the_call(
    bedrock: BedrockEmulator,
    capture: CaptureEmulator,
    clean_instrumentation: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If PostHog's context cannot be read, the call succeeds and its event is anonymous."""
    from otel_bedrock import identity

    def broken() -> str:
        raise RuntimeError("context unavailable")

    monkeypatch.setattr(identity, "get_context_distinct_id", broken)
    bedrock.reset()
    capture.reset()
    provider = TracerProvider()
    pipeline = otel_bedrock.configure(provider, api_key=TEST_KEY, host=capture.url)

    make_client(bedrock.endpoint_url).invoke_model(modelId=LLAMA, body=BODY)

    assert pipeline.flush(10_000) is True
    [event] = capture.events
    assert event["event"] == "bedrock_completion"
    assert event["properties"]["$process_person_profile"] is False
    provider.shutdown()
