"""Joining otel-bedrock to an application's OpenTelemetry setup.

:func:`configure` is the embedded mode: one call adds our processor and the PostHog exporter to
the application's tracer provider (or makes one) and instruments botocore with our hooks.
:func:`instrument_botocore` is shared with the zero-code distro.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_bedrock.config import Settings, load_settings
from otel_bedrock.exporter import PostHogSpanExporter
from otel_bedrock.hooks import BedrockHooks, install_botocore_wrappers
from otel_bedrock.processor import BedrockSpanProcessor

logger = logging.getLogger(__name__)

Hook = Callable[..., None]


class Pipeline:
    """What :func:`configure` set up; ``flush`` and ``shutdown`` act on it.

    Its methods may be called from any thread.
    """

    def __init__(self, provider: TracerProvider, exporter: PostHogSpanExporter) -> None:
        self.provider = provider
        self.exporter = exporter

    def flush(self, timeout_millis: int = 30_000) -> bool:
        """Export finished spans and deliver their events now (for serverless handlers).

        Returns False when the time ran out before everything was delivered.
        """
        exported = self.provider.force_flush(timeout_millis)

        return self.exporter.force_flush(timeout_millis) and exported

    def shutdown(self) -> None:
        """Flush, then stop the tracer provider's processors."""
        self.provider.shutdown()


def configure(tracer_provider: TracerProvider | None = None, **settings: Any) -> Pipeline:
    """Send a PostHog event for every Bedrock call this process makes.

    Args:
        tracer_provider: the application's SDK tracer provider. Default: the global one, or a
            new one made global when the application has none.
        **settings: settings such as ``api_key``, ``host``, ``capture_content``,
            ``event_schema``, ``prices_file``, ``inference_profiles``; the environment fills
            the rest.

    Raises:
        ConfigError: when a setting is bad or no PostHog project API key is given.
        TypeError: when the global tracer provider is not an SDK ``TracerProvider``.
    """
    global _configured
    provider = tracer_provider or _global_sdk_provider()
    if _configured is not None and _configured.provider is provider:
        logger.warning("otel_bedrock_already_configured; keeping the first configuration")
        return _configured
    resolved = load_settings(**settings)
    exporter = PostHogSpanExporter(settings=resolved)
    provider.add_span_processor(BedrockSpanProcessor())
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    instrument_botocore(resolved, tracer_provider=provider)
    _configured = Pipeline(provider, exporter)

    return _configured


_configured: Pipeline | None = None


def instrument_botocore(settings: Settings | None = None, **instrument_kwargs: Any) -> None:
    """Instrument botocore with our hooks, keeping hooks the application already gave it."""
    hooks = BedrockHooks(settings or load_settings())
    instrumentor = BotocoreInstrumentor()  # type: ignore[no-untyped-call]
    request_hook: Hook = hooks.request_hook
    response_hook: Hook = hooks.response_hook
    if instrumentor.is_instrumented_by_opentelemetry:
        request_hook = _chain(instrumentor.request_hook, request_hook)
        response_hook = _chain(instrumentor.response_hook, response_hook)
        instrumentor.uninstrument()
    instrumentor.instrument(
        request_hook=request_hook, response_hook=response_hook, **instrument_kwargs
    )
    install_botocore_wrappers()


def _chain(existing: Hook | None, ours: Hook) -> Hook:
    """Run the application's own hook, if any, then ours; earlier hooks of ours are dropped."""
    theirs = getattr(existing, "_application_hook", existing)
    if theirs is None or isinstance(getattr(theirs, "__self__", None), BedrockHooks):
        return ours

    def both(*args: Any) -> None:
        try:
            theirs(*args)
        finally:
            ours(*args)  # a failing hook of theirs must not cost the call its event

    both._application_hook = theirs  # type: ignore[attr-defined]

    return both


def _global_sdk_provider() -> TracerProvider:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    if type(current).__name__ != "ProxyTracerProvider":
        raise TypeError(
            f"the global tracer provider is a {type(current).__name__}, not an OpenTelemetry "
            "SDK TracerProvider; pass yours as configure(tracer_provider=...)"
        )
    provider = TracerProvider()
    trace.set_tracer_provider(provider)

    return provider
