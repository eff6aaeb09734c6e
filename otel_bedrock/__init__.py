"""otel-bedrock: every AWS Bedrock call becomes a PostHog event, through OpenTelemetry.

Zero-code: install the package, set ``POSTHOG_API_KEY`` and run the application under
``opentelemetry-instrument``. Embedded: call :func:`configure` once at start-up.
"""

from __future__ import annotations

from importlib.metadata import version

from otel_bedrock.errors import ConfigError, OtelBedrockError
from otel_bedrock.exporter import PostHogSpanExporter
from otel_bedrock.identity import identify
from otel_bedrock.processor import BedrockSpanProcessor
from otel_bedrock.setup import Pipeline, configure, instrument_botocore

__version__ = version("otel-bedrock")

__all__ = [
    "BedrockSpanProcessor",
    "ConfigError",
    "OtelBedrockError",
    "Pipeline",
    "PostHogSpanExporter",
    "__version__",
    "configure",
    "flush",
    "identify",
    "instrument_botocore",
]


def flush(timeout_millis: int = 30_000) -> bool:
    """Send the events of every finished Bedrock call now.

    Call it at the end of a serverless handler, before the runtime freezes the process: it
    exports the spans the tracer provider holds, then delivers their events to PostHog.
    Returns False if the time ran out first.
    """
    from opentelemetry import trace

    from otel_bedrock.exporter import flush_all

    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    exported = bool(force_flush(timeout_millis)) if force_flush is not None else True

    return flush_all(timeout_millis) and exported
