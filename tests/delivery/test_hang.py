"""A PostHog that accepts connections and never answers: events reach the spool anyway."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest

from otel_bedrock.delivery.spool import Spool
from otel_bedrock.testing import CaptureEmulator
from tests.conftest import eventually
from tests.delivery.helpers import delivery, make_events, received


def _spool_uuids(path: Path) -> Counter[str]:
    spool = Spool(path)
    try:
        with spool._lock:
            rows = spool._connect().execute("SELECT uuid FROM events").fetchall()
    finally:
        spool.close()

    return Counter(str(uuid) for (uuid,) in rows)


def test_hanging_posthog_moves_memory_to_the_spool(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """While one request hangs, the batch in flight and the queue behind it reach the spool."""
    first, later = make_events(10), make_events(25)
    posthog.hang()
    sender = delivery(posthog.url, spool_file, flush_interval=0.05, timeout=30)
    for event in first:
        sender.send(event)
    assert eventually(lambda: posthog.stalled == 1)
    for event in later:
        sender.send(event)

    assert eventually(lambda: sum(_spool_uuids(spool_file).values()) == 35)
    assert _spool_uuids(spool_file) == Counter(event.uuid for event in [*first, *later])
    assert sender.counters.snapshot() == {
        "sent": 0,
        "retried": 0,
        "spooled": 25,
        "evicted": 0,
        "dropped": 0,
    }

    posthog.hang(False)
    assert eventually(lambda: len(posthog.events) == 35, timeout=10)
    assert sender.flush(5)
    sender.shutdown()
    assert Counter(received(posthog)) == Counter(event.uuid for event in [*first, *later])
    assert sum(_spool_uuids(spool_file).values()) == 0


def test_shutdown_without_spool_counts_the_hanging_batch(
    posthog: CaptureEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a spool, a batch PostHog never answered is counted dropped at shutdown, once."""
    events = make_events(5)
    posthog.hang()
    sender = delivery(posthog.url, None, shutdown_timeout=0.1, timeout=30)
    for event in events:
        sender.send(event)
    assert eventually(lambda: posthog.stalled == 1)

    with caplog.at_level(logging.ERROR, logger="otel_bedrock.delivery"):
        sender.shutdown()
    assert sender.counters.dropped == 5
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("posthog_events_dropped count=5 reason=in_flight_at_shutdown")

    posthog.hang(False)
    worker = sender._engine._worker
    assert worker is not None
    assert eventually(lambda: not worker.is_alive())
    assert sender.counters.snapshot() == {
        "sent": 0,
        "retried": 0,
        "spooled": 0,
        "evicted": 0,
        "dropped": 5,
    }
    assert received(posthog) == []
