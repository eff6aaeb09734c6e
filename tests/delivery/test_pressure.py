"""Delivery pressure: whether PostHog is failing and whether new events still have room."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from otel_bedrock.delivery import Pressure
from otel_bedrock.delivery.spool import Spool
from otel_bedrock.events import CaptureEvent
from otel_bedrock.testing import CaptureEmulator
from tests.conftest import eventually
from tests.delivery.helpers import delivery, make_event, make_events, received


def test_healthy_delivery_has_no_pressure(posthog: CaptureEmulator) -> None:
    """While PostHog answers, delivery is neither failing nor full."""
    sender = delivery(posthog.url, None)
    for event in make_events(3):
        sender.send(event)

    assert sender.flush(5)
    assert sender.pressure() == Pressure(failing=False, retry_in=0.0, full=False, room=10_000)
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
    assert (waiting.full, waiting.room) == (False, 4)  # one event waits to be retried
    for number in range(1, 6):
        sender.send(make_event(number))
    assert (sender.pressure().full, sender.pressure().room) == (True, 0)

    posthog.start()
    assert sender.flush(5)
    assert sender.pressure() == Pressure(failing=False, retry_in=0.0, full=False, room=5)
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
    assert eventually(lambda: sender.counters.evicted > 0)

    posthog.start()
    assert sender.flush(5)
    after = sender.pressure()
    assert (after.failing, after.retry_in, after.full) == (False, 0.0, False)
    assert after.room is not None and after.room > 0
    sender.shutdown()


def test_a_sender_that_heeds_full_never_has_events_pushed_out(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """During an outage, a sender that adds a burst of events whenever ``full`` is false
    fills the spool to its reserve but never past its bound: ``full`` counts what memory and
    the spool writer still hold, not only what is written."""
    url = posthog.url
    posthog.stop()
    sender = delivery(
        url,
        spool_file,
        max_queue=5,
        spool_max_bytes=30_000,
        spool_reserve_bytes=6_000,  # room for two bursts of ten events of ~250 bytes
        base_backoff=30,
    )
    sent: list[CaptureEvent] = []
    reader = Spool(spool_file)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not sender.pressure().full:
            burst = make_events(10)
            for event in burst:
                sender.send(event)
            sent.extend(burst)
        elif reader.status().rows == len(sent):
            break  # all written, and still full: the spool is at its reserve
        else:
            time.sleep(0.01)
    reader.close()

    assert sender.pressure().full is True
    assert len(sent) >= 60  # about 24 kB of the 30 kB
    assert sender.counters.evicted == 0
    posthog.start()
    assert sender.flush(5)
    sender.shutdown()
    assert sorted(received(posthog)) == sorted(event.uuid for event in sent)


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


@pytest.mark.parametrize("reserve", [-1, 30_000, 40_000])
def test_a_reserve_outside_the_spool_is_refused_at_construction(
    spool_file: Path, reserve: int
) -> None:
    """A reserve that is negative, or leaves the spool no room, is a ValueError naming it."""
    with pytest.raises(ValueError, match="spool_reserve_bytes must be from 0 to below"):
        delivery(
            "http://127.0.0.1:1", spool_file, spool_max_bytes=30_000, spool_reserve_bytes=reserve
        )


def test_room_is_counted_in_events_of_the_size_sent_before_any_is_spooled(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """Before anything is spooled, the room is reckoned by the size of the events sent so
    far: events of 5 kB leave a 90 kB spool room for at most 18, not the 87 of 1 kB ones."""
    sender = delivery(posthog.url, spool_file, spool_max_bytes=100_000, spool_reserve_bytes=10_000)
    for number in range(5):
        sender.send(make_event(number, content="x" * 5_000))
    assert sender.flush(5)

    room = sender.pressure().room

    assert room is not None and 10 <= room <= 18
    sender.shutdown()
