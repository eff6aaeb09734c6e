"""The ``posthog`` span exporter: finished Bedrock spans in, PostHog events out.

It does all the work from span data alone (usage, model, cost, identity, errors), so it gives
complete events in every mode: behind our processor, named by ``OTEL_TRACES_EXPORTER=posthog``,
or from an OpenTelemetry declarative configuration file where no custom processor runs.
Spans that are not Bedrock Runtime model calls are ignored.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_bedrock._once import warn_once
from otel_bedrock.calls import BedrockCall, SpanData, describe
from otel_bedrock.config import Settings, load_settings
from otel_bedrock.delivery import Delivery, PostHogDelivery
from otel_bedrock.errors import ConfigError
from otel_bedrock.events import CaptureEvent, to_events
from otel_bedrock.keycheck import check_project_key
from otel_bedrock.pricing import UNPRICED, Cost, PriceBook

logger = logging.getLogger(__name__)


class PostHogSpanExporter(SpanExporter):
    """Turns Bedrock spans into PostHog events.

    Keyword arguments are settings (see :mod:`otel_bedrock.config`); what they leave out comes
    from the environment. ``delivery`` replaces the delivery the settings describe;
    ``delivery_options`` (such as ``batch_size``) adjust it. ``export`` is called on the span
    processor's export thread.

    Raises:
        ConfigError: at construction, when a setting is bad or no project API key is given.
    """

    def __init__(
        self,
        api_key: str | None = None,
        host: str | None = None,
        *,
        settings: Settings | None = None,
        delivery: Delivery | None = None,
        delivery_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.settings = settings or load_settings(api_key=api_key, host=host, **options)
        key = self.settings.posthog_api_key if delivery is not None else project_key(self.settings)
        if self.settings.verify_key and key is not None:
            check_project_key(key, self.settings.posthog_host)
        self._prices = PriceBook(self.settings.prices_file)
        self._profiles = dict(self.settings.inference_profiles)
        self.delivery = delivery or delivery_for(
            str(key), self.settings, **(delivery_options or {})
        )
        self.created = time.monotonic()
        _live_exporters.add(self)
        logger.info(
            "posthog_exporter_ready host=%s schema=%s content_capture=%s",
            self.settings.posthog_host,
            self.settings.event_schema,
            self.settings.content_capture,
        )

    def preload_prices(self) -> None:
        """Load the price data now instead of while exporting the first Bedrock span."""
        self._prices.preload()

    def events_for(self, span: SpanData) -> list[CaptureEvent]:
        """The PostHog events for one finished span (none for non-Bedrock spans).

        Any object that reads like a finished span will do (spans received over OTLP too).
        """
        call = describe(span, self._profiles, self.settings.identity_keys)
        if call is None:
            return []
        if not self.settings.content_capture:
            call = _without_content(call)

        return to_events(call, self._cost(call), self.settings.event_schema)

    def _cost(self, call: BedrockCall) -> Cost | None:
        """The call's cost, or None when there is no complete usage to put a price on."""
        if call.usage_status == "missing" and call.error is not None:
            return None
        if not call.on_demand_standard:
            warn_once(
                logger,
                f"variant:{call.model.base_id}:{call.service_tier}:{call.latency_mode}",
                "model_unpriced model_id=%s service_tier=%s latency=%s reason=price tables hold "
                "standard on-demand prices only",
                call.model.raw,
                call.service_tier,
                call.latency_mode,
            )
            return UNPRICED
        cost = self._prices.cost(call.model, call.usage)
        if (
            cost.status == "unpriced"
            and call.usage_status != "measured"
            and self._prices.prices_for(call.model) is not None
        ):
            return None

        return cost

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Queue the events of each Bedrock span for delivery."""
        for span in spans:
            try:
                events = self.events_for(span)
            except Exception:  # noqa: BLE001 - one bad span must not lose the batch
                warn_once(
                    logger,
                    "span_unreadable",
                    "bedrock_span_unreadable span=%s",
                    span.name,
                    exc_info=True,
                )
                continue
            for event in events:
                self.delivery.send(event)

        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Deliver queued events now; False if some were still queued when time ran out."""
        return self.delivery.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Send what is queued and stop delivery."""
        self.delivery.shutdown()


def delivery_for(api_key: str, settings: Settings, **options: Any) -> PostHogDelivery:
    """Delivery to PostHog as the settings ask (queue, spool and shutdown budget), with
    ``options`` of :class:`PostHogDelivery` on top."""
    return PostHogDelivery(
        api_key,
        settings.posthog_host,
        spool_path=settings.spool_path,
        max_queue=settings.max_queue,
        shutdown_timeout=settings.shutdown_timeout,
        spool_max_bytes=int(settings.spool_max_mb * 1024 * 1024),
        spool_max_age_seconds=settings.spool_max_age_hours * 3600,
        **options,
    )


def project_key(settings: Settings) -> str:
    """The PostHog project API key of the settings.

    Raises:
        ConfigError: when none is given.
    """
    if settings.posthog_api_key is None:
        raise ConfigError(
            "otel-bedrock configuration: POSTHOG_API_KEY is not set; give the PostHog "
            "project API key (phc_...) in the environment or as api_key"
        )

    return settings.posthog_api_key


_live_exporters: weakref.WeakSet[PostHogSpanExporter] = weakref.WeakSet()


def live_exporters() -> list[PostHogSpanExporter]:
    """The exporters of this process that are not yet collected, oldest first."""
    return sorted(_live_exporters, key=lambda exporter: exporter.created)


def flush_all(timeout_millis: int = 30_000) -> bool:
    """Deliver the queued events of every exporter in this process."""
    return all([exporter.force_flush(timeout_millis) for exporter in live_exporters()])


def _without_content(call: BedrockCall) -> BedrockCall:
    if call.prompt is None and call.generation is None and call.prompt_messages is None:
        return call

    return dataclasses.replace(
        call, prompt=None, prompt_messages=None, generation=None, content_truncated=False
    )
