"""Fixtures for the collector: an intake delivering to the capture emulator, and spans made by
the real upstream botocore instrumentation against the Bedrock emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bedrock.config import load_settings
from otel_bedrock.delivery import PostHogDelivery
from otel_bedrock.testing import BedrockEmulator, CaptureEmulator
from tests.conftest import TEST_KEY, make_client

FAST_DELIVERY: dict[str, Any] = {
    "spool_path": None,
    "flush_interval": 0.02,
    "base_backoff": 0.05,
    "max_backoff": 0.2,
    "timeout": 2.0,
    "shutdown_timeout": 2.0,
}


@pytest.fixture
def make_intake(capture: CaptureEmulator) -> Iterator[Callable[..., Any]]:
    """Build an Intake that delivers to the capture emulator (reset first), or to
    ``posthog_url``, with fast delivery timings and no spool; shut down after the test. Calls
    wait for their other spans only when ``merge_wait`` is given."""
    from collector.pipeline import Intake

    built: list[Intake] = []

    def build(
        content_wait: float = 0.2,
        merge_wait: float = 0.0,
        delivery: dict[str, Any] | None = None,
        posthog_url: str | None = None,
        **settings: Any,
    ) -> Intake:
        capture.reset()
        url = posthog_url or capture.url
        resolved = load_settings(api_key=TEST_KEY, host=url, **settings)
        sender = PostHogDelivery(TEST_KEY, url, **{**FAST_DELIVERY, **(delivery or {})})
        intake = Intake(resolved, content_wait=content_wait, merge_wait=merge_wait, delivery=sender)
        built.append(intake)
        return intake

    yield build
    for intake in built:
        intake.shutdown(2.0)


class BotocoreSpans:
    """boto3 against the Bedrock emulator, traced by the upstream botocore instrumentation
    alone (no hooks of ours); finished spans and log records are kept in memory.

    Content log records are emitted when OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
    is true at call time.
    """

    def __init__(self, bedrock: BedrockEmulator) -> None:
        self.bedrock = bedrock
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test.app")
        self.log_exporter = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        BotocoreInstrumentor().instrument(
            tracer_provider=self.provider, logger_provider=self.logger_provider
        )
        self.client = make_client(bedrock.endpoint_url)

    def finished(self) -> list[ReadableSpan]:
        """The spans finished so far, and forget them."""
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans

    def finished_logs(self) -> list[ReadableLogRecord]:
        """The log records emitted so far, and forget them."""
        records = list(self.log_exporter.get_finished_logs())
        self.log_exporter.clear()
        return records

    def close(self) -> None:
        BotocoreInstrumentor().uninstrument()
        self.provider.shutdown()
        self.logger_provider.shutdown()


@pytest.fixture
def botocore_spans(bedrock: BedrockEmulator) -> Iterator[BotocoreSpans]:
    """Upstream botocore instrumentation against the emulator; uninstrumented afterwards."""
    bedrock.reset()
    spans = BotocoreSpans(bedrock)
    yield spans
    spans.close()
