"""Delivery counters as OpenTelemetry metrics, when the application has a meter provider."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_bedrock.testing import CaptureEmulator
from tests.delivery.helpers import delivery, make_events


def sent_so_far(reader: InMemoryMetricReader) -> int:
    """The ``sent`` point of ``otel_bedrock.delivery.events`` (0 before any)."""
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != "otel_bedrock.delivery.events":
                    continue
                for point in metric.data.data_points:
                    if dict(point.attributes or {}) == {"outcome": "sent"}:
                        return int(point.value)
    return 0


@pytest.fixture(scope="module")
def reader() -> Iterator[InMemoryMetricReader]:
    """A reader on the global meter provider, which a process can set only once."""
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    yield reader


def test_sent_events_show_as_a_counter(
    reader: InMemoryMetricReader, posthog: CaptureEmulator, spool_file: Path
) -> None:
    """Events PostHog accepted add to otel_bedrock.delivery.events{outcome="sent"}."""
    sender = delivery(posthog.url, spool_file)
    before = sent_so_far(reader)

    for event in make_events(3):
        sender.send(event)
    assert sender.flush(5)

    assert sent_so_far(reader) - before == 3
    sender.shutdown()


def test_counter_keeps_the_counts_of_a_delivery_that_is_gone(
    reader: InMemoryMetricReader, posthog: CaptureEmulator, spool_file: Path
) -> None:
    """A delivery that is shut down and collected leaves its sent events in the counter."""
    sender = delivery(posthog.url, spool_file)
    before = sent_so_far(reader)
    for event in make_events(2):
        sender.send(event)
    assert sender.flush(5)
    sender.shutdown()

    del sender
    gc.collect()

    assert sent_so_far(reader) - before == 2
