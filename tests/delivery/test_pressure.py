"""Delivery pressure: whether PostHog is failing and whether new events still have room."""

from __future__ import annotations

import time
from pathlib import Path

from otel_bedrock.delivery import Pressure
from otel_bedrock.testing import CaptureEmulator
from tests.conftest import eventually
from tests.delivery.helpers import delivery, make_event, make_events


def test_healthy_delivery_has_no_pressure(posthog: CaptureEmulator) -> None:
    """While PostHog answers, delivery is neither failing nor full."""
    sender = delivery(posthog.url, None)
    for event in make_events(3):
        sender.send(event)

    assert sender.flush(5)
    assert sender.pressure() == Pressure(failing=False, retry_in=0.0, full=False)
    sender.shutdown()


def test_without_spool_a_full_queue_during_an_outage_is_full(posthog: CaptureEmulator) -> None:
    """PostHog down and no spool: failing with the backoff's wait, and full once the queue is."""
    url = posthog.url
    posthog.stop()
    sender = delivery(url, None, max_queue=5, base_backoff=30, max_backoff=30)
    sender.send(make_event(0))
    assert eventually(lambda: sender.pressure().failing)

    waiting = sender.pressure()
    assert 20 <= waiting.retry_in <= 30
    assert waiting.full is False
    for number in range(1, 6):
        sender.send(make_event(number))
    assert sender.pressure().full is True

    posthog.start()
    assert sender.flush(5)
    assert sender.pressure() == Pressure(failing=False, retry_in=0.0, full=False)
    sender.shutdown()


def test_with_spool_full_when_the_spool_reaches_its_bound(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """With a spool, an outage is full only once the spool is at 90% of its size bound."""
    url = posthog.url
    posthog.stop()
    sender = delivery(url, spool_file, max_queue=5, spool_max_bytes=10_000, base_backoff=30)
    sender.send(make_event(0))
    assert eventually(lambda: sender.pressure().failing)
    assert sender.pressure().full is False

    for event in make_events(60):  # about 15 kB of events: past the bound, oldest evicted
        sender.send(event)
    assert eventually(lambda: sender.pressure().full)
    assert sender.counters.evicted > 0

    posthog.start()
    assert sender.flush(5)
    assert sender.pressure() == Pressure(failing=False, retry_in=0.0, full=False)
    sender.shutdown()


def test_shutdown_keeps_to_the_budget_it_is_given(posthog: CaptureEmulator) -> None:
    """shutdown(timeout) spends at most that long, not shutdown_timeout, when PostHog is down."""
    url = posthog.url
    posthog.stop()
    sender = delivery(url, None, shutdown_timeout=30.0)
    sender.send(make_event(0))
    started = time.monotonic()

    sender.shutdown(0.2)

    assert time.monotonic() - started < 2.0
    assert sender.counters.dropped == 1
