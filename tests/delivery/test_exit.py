"""The exit handler, flush during an outage, and a spool that fails at exit."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import pytest

from otel_bedrock.delivery.spool import Spool
from otel_bedrock.testing import CaptureEmulator
from tests.delivery.helpers import delivery, make_event, make_events, received


def test_exit_copy_then_shutdown_sends_each_event_once(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """The exit copy is not sent by a sibling while shutdown sends the originals: once each."""
    exiting = delivery(posthog.url, spool_file, flush_interval=30, shutdown_timeout=10)
    sibling = delivery(posthog.url, spool_file, spool_poll_interval=0.02)
    warm_up = make_event(0)
    sibling.send(warm_up)
    assert sibling.flush(5)
    events = make_events(300)
    for event in events:
        exiting.send(event)
    posthog.set_delay(0.2)

    exiting._engine.at_exit()
    exiting.shutdown()
    posthog.set_delay(0)
    assert sibling.flush(5)
    sibling.shutdown()

    assert Counter(received(posthog)) == Counter(event.uuid for event in [warm_up, *events])
    assert exiting.counters.sent == 300
    assert sibling.counters.sent == 1
    assert Spool(spool_file).status().rows == 0


def test_flush_during_an_outage_returns_once_all_is_spooled(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """With PostHog down, flush(10) returns False as soon as every event is in the spool."""
    url = posthog.url
    posthog.stop()
    events = make_events(3)
    sender = delivery(url, spool_file, base_backoff=1.0, max_backoff=60.0)
    for event in events:
        sender.send(event)
    started = time.monotonic()

    assert sender.flush(10) is False
    elapsed = time.monotonic() - started
    assert Spool(spool_file).status().rows == 3
    sender.shutdown(0)

    assert elapsed < 2.0


def test_exit_copy_that_fails_is_flushed_and_reported(
    posthog: CaptureEmulator, spool_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A spool that fails at exit: the copy error is logged and what is unsent counted lost."""
    url = posthog.url
    posthog.stop()
    events = make_events(4)
    sender = delivery(url, spool_file, flush_interval=30, shutdown_timeout=0.3)
    assert sender.spool is not None
    sender.spool.close()
    for event in events:
        sender.send(event)

    with caplog.at_level(logging.ERROR, logger="otel_bedrock.delivery"):
        sender._engine.at_exit()
    sender.shutdown()

    errors = [r.getMessage().split(" ", 1)[0] for r in caplog.records if r.levelno >= 40]
    assert errors == ["posthog_spool_mirror_failed", "posthog_events_dropped"]
    assert sender.counters.dropped == 4


def test_exit_copy_that_fails_falls_back_to_delivery(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """A spool that fails at exit while PostHog answers: the exit handler delivers instead."""
    events = make_events(4)
    sender = delivery(posthog.url, spool_file, flush_interval=30)
    assert sender.spool is not None
    sender.spool.close()
    for event in events:
        sender.send(event)

    sender._engine.at_exit()

    assert Counter(received(posthog)) == Counter(event.uuid for event in events)
    assert sender.counters.sent == 4
    assert sender.counters.dropped == 0
    sender.shutdown()
