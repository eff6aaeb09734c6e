"""Outages, answers PostHog should not give, bad events and shutdown races: nothing unaccounted."""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from otel_bedrock.delivery._engine import MAX_SERVER_WAIT, retry_delay
from otel_bedrock.delivery.spool import Spool
from otel_bedrock.delivery.transport import to_wire
from otel_bedrock.testing import CaptureEmulator
from tests.conftest import eventually
from tests.delivery.helpers import delivery, make_event, make_events, received


def _spooled(path: Path) -> set[str]:
    """The uuids the spool file holds, read without claiming them (as ``claim`` would)."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT uuid FROM events").fetchall()
    finally:
        connection.close()

    return {str(uuid) for (uuid,) in rows}


def test_memory_queue_moves_to_spool_during_outage(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """While PostHog fails, events queued behind the backoff reach the spool within moments;
    all 50 count as spooled: 30 after their failed attempt, 20 from the queue."""
    url = posthog.url
    posthog.stop()
    first, later = make_events(30), make_events(20)
    sender = delivery(url, spool_file, base_backoff=30, max_backoff=30)
    for event in first:
        sender.send(event)
    assert eventually(lambda: Spool(spool_file).status().rows == 30)
    for event in later:
        sender.send(event)

    assert eventually(lambda: Spool(spool_file).status().rows == 50, timeout=1.0)
    assert _spooled(spool_file) == {event.uuid for event in [*first, *later]}
    assert sender.counters.spooled == 50
    assert sender.counters.retried == 30
    posthog.start()
    assert sender.flush(5)
    sender.shutdown()
    assert Counter(received(posthog)) == Counter(event.uuid for event in [*first, *later])


def test_overflow_never_waits_for_a_locked_spool(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """With the spool locked by another process, a burst over the queue returns at once."""
    events = make_events(200)
    sender = delivery(posthog.url, spool_file, max_queue=5, flush_interval=5)
    blocker = sqlite3.connect(spool_file, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    started = time.perf_counter()
    for event in events:
        sender.send(event)
    elapsed = time.perf_counter() - started
    blocker.execute("ROLLBACK")
    blocker.close()

    assert sender.flush(10)
    sender.shutdown()
    assert elapsed < 0.5
    assert Counter(received(posthog)) == Counter(event.uuid for event in events)
    assert sender.counters.dropped == 0


class _Opaque:
    def __str__(self) -> str:
        return "opaque-value"


def test_unserialisable_property_does_not_lose_the_batch(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """Values JSON does not know are sent as text; the whole batch arrives, nothing dropped."""
    events = make_events(10)
    odd = make_event(99, when=datetime(2025, 1, 1, tzinfo=UTC), thing=_Opaque())
    url = posthog.url
    posthog.stop()
    sender = delivery(url, spool_file)
    for event in [*events[:5], odd, *events[5:]]:
        sender.send(event)
    assert not sender.flush(0.3)
    posthog.start()

    assert sender.flush(5)
    sender.shutdown()
    assert Counter(received(posthog)) == Counter(event.uuid for event in [*events, odd])
    properties = next(e for e in posthog.events if e["uuid"] == odd.uuid)["properties"]
    assert properties["when"] == "2025-01-01 00:00:00+00:00"
    assert properties["thing"] == "opaque-value"
    assert sender.counters.dropped == 0


def test_cyclic_event_is_dropped_alone_and_counted(posthog: CaptureEmulator) -> None:
    """An event no serialiser can write is counted dropped; the rest of its batch arrives."""
    events = make_events(6)
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    bad = make_event(99, loop=cyclic)
    sender = delivery(posthog.url, None)
    for event in [*events[:3], bad, *events[3:]]:
        sender.send(event)

    assert sender.flush(5)
    sender.shutdown()
    assert Counter(received(posthog)) == Counter(event.uuid for event in events)
    assert sender.counters.dropped == 1
    assert sender.counters.sent == 6


def _race_once(posthog: CaptureEmulator, spool: Path | None) -> tuple[int, int]:
    """Four threads send while shutdown runs; (events unaccounted for, events counted dropped)."""
    posthog.reset()
    if spool is not None and spool.exists():
        Spool(spool).delete(sorted(_spooled(spool)))
    sender = delivery(posthog.url, spool, max_queue=50, shutdown_timeout=0.1)
    sent: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            event = make_event()
            with lock:
                sent.append(event.uuid)
            sender.send(event)

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    sender.shutdown()
    time.sleep(0.02)
    stop.set()
    for thread in threads:
        thread.join()
    time.sleep(0.3)
    kept = set() if spool is None else _spooled(spool)

    return len(set(sent) - set(received(posthog)) - kept), sender.counters.dropped


@pytest.mark.parametrize("with_spool", [True, False])
def test_sends_racing_shutdown_are_all_accounted(
    posthog: CaptureEmulator, spool_file: Path, with_spool: bool
) -> None:
    """Events sent by many threads while shutdown runs are received, spooled or counted dropped."""
    for _ in range(2):
        lost, dropped = _race_once(posthog, spool_file if with_spool else None)
        assert lost == dropped


def test_retry_after_zero_does_not_spin(posthog: CaptureEmulator, spool_file: Path) -> None:
    """A 429 with Retry-After: 0 is retried with the exponential backoff, not in a tight loop."""
    events = make_events(3)
    posthog.fail_next(429, 1000, retry_after=0)
    sender = delivery(posthog.url, spool_file, base_backoff=0.05, max_backoff=0.2)
    for event in events:
        sender.send(event)
    time.sleep(0.6)
    attempts = len(posthog.requests)
    posthog.reset()

    assert sender.flush(5)
    sender.shutdown()
    assert 2 <= attempts <= 8
    assert Counter(received(posthog)) == Counter(event.uuid for event in events)


def test_retry_delay_caps_the_server_wait() -> None:
    """Retry-After is capped at five minutes, infinite or NaN means the cap, 0 means backoff."""
    assert MAX_SERVER_WAIT == 300.0
    assert retry_delay(3, 1.0, 60.0, None) == 4.0
    assert retry_delay(3, 1.0, 60.0, 0.0) == 4.0
    assert retry_delay(1, 1.0, 60.0, 30.0) == 30.0
    assert retry_delay(1, 1.0, 60.0, 1e9) == 300.0
    assert retry_delay(1, 1.0, 60.0, math.inf) == 300.0
    assert retry_delay(1, 1.0, 60.0, math.nan) == 300.0


def test_long_split_chain_renews_its_claim(posthog: CaptureEmulator, spool_file: Path) -> None:
    """A 400 bisection longer than the lease keeps its rows claimed; each event arrives once."""
    events = make_events(8)
    bad = make_event(99)
    object.__setattr__(bad, "distinct_id", "")
    Spool(spool_file).put([to_wire(event) for event in [*events[:2], bad, *events[2:]]])
    posthog.set_delay(0.15)
    sender = delivery(posthog.url, spool_file, lease_seconds=0.4)
    done = threading.Thread(target=sender.flush, args=(10,))
    done.start()
    time.sleep(0.7)
    stolen = Spool(spool_file).claim(100, "another-process", 30)
    done.join()
    sender.shutdown()

    assert stolen == []
    assert Counter(received(posthog)) == Counter(event.uuid for event in events)
    assert sender.counters.dropped == 1


def test_shutdown_releases_claims_at_once(posthog: CaptureEmulator, spool_file: Path) -> None:
    """Rows claimed by a batch still in flight at shutdown can be claimed by others at once."""
    events = make_events(3)
    Spool(spool_file).put([to_wire(event) for event in events])
    posthog.set_delay(1.0)
    sender = delivery(posthog.url, spool_file, shutdown_timeout=0.2, lease_seconds=30)
    sender.shutdown()

    taken = Spool(spool_file).claim(100, "next-process", 30)
    assert sorted(row["uuid"] for row in taken) == sorted(event.uuid for event in events)


def test_exit_copy_releases_claims_and_stops_claiming(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """The exit copy gives back this process's claims and the worker claims no more rows."""
    events = make_events(3)
    Spool(spool_file).put([to_wire(event) for event in events])
    posthog.set_delay(0.5)
    sender = delivery(posthog.url, spool_file, lease_seconds=30, spool_poll_interval=0.05)
    assert not sender.flush(0.1)
    sender._engine.mirror_to_spool()
    later = make_events(2)
    Spool(spool_file).put([to_wire(event) for event in later])
    time.sleep(0.7)

    taken = Spool(spool_file).claim(100, "next-process", 30)
    assert {row["uuid"] for row in taken} >= {event.uuid for event in later}
    sender.shutdown()


def test_inflight_batch_without_spool_is_counted_once(posthog: CaptureEmulator) -> None:
    """Without a spool, a batch in flight at shutdown is counted sent when it arrives, not lost."""
    events = make_events(3)
    posthog.set_delay(0.5)
    sender = delivery(posthog.url, None, shutdown_timeout=0.1)
    for event in events:
        sender.send(event)
    time.sleep(0.1)
    sender.shutdown()
    assert posthog.wait_for(3, timeout=5)
    time.sleep(0.1)

    assert Counter(received(posthog)) == Counter(event.uuid for event in events)
    assert sender.counters.sent == 3
    assert sender.counters.dropped == 0


def test_exit_without_spool_flushes(posthog: CaptureEmulator) -> None:
    """A process without a spool that exits without shutdown still delivers its queue."""
    child = textwrap.dedent(
        """
        import json, sys, uuid
        from datetime import UTC, datetime
        from otel_bedrock.delivery import PostHogDelivery
        from otel_bedrock.events import CaptureEvent

        sender = PostHogDelivery("phc_test", sys.argv[1], flush_interval=30)
        ids = [str(uuid.uuid4()) for _ in range(5)]
        for id_ in ids:
            sender.send(CaptureEvent("bedrock_completion", "user-1", {}, id_, datetime.now(UTC)))
        print(json.dumps(ids), flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", child, posthog.url],
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        check=True,
    )
    ids = json.loads(result.stdout)
    assert Counter(received(posthog)) == Counter(ids)


def test_flush_after_shutdown_reports_leftovers(spool_file: Path, posthog: CaptureEmulator) -> None:
    """flush() after a shutdown that spooled events returns False."""
    url = posthog.url
    posthog.stop()
    sender = delivery(url, spool_file, shutdown_timeout=0.1, base_backoff=30, max_backoff=30)
    for event in make_events(4):
        sender.send(event)
    sender.shutdown()

    assert sender.flush(1) is False


def test_any_2xx_counts_as_sent(posthog: CaptureEmulator, spool_file: Path) -> None:
    """A 202 answer counts its events as sent, once, without a retry."""
    events = make_events(4)
    posthog.fail_next(202, 1)
    sender = delivery(posthog.url, spool_file)
    for event in events:
        sender.send(event)

    assert sender.flush(5)
    sender.shutdown()
    assert [request.status for request in posthog.requests] == [202]
    assert sender.counters.sent == 4
    assert sender.counters.retried == 0


def test_404_is_a_setup_error_named_once(
    posthog: CaptureEmulator, spool_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 404 logs one error naming POSTHOG_HOST, keeps the events, and does not hammer."""
    events = make_events(5)
    posthog.fail_next(404, 1000)
    sender = delivery(
        posthog.url, spool_file, base_backoff=0.01, max_backoff=0.5, shutdown_timeout=0
    )
    with caplog.at_level(logging.ERROR, logger="otel_bedrock.delivery"):
        for event in events:
            sender.send(event)
        assert not sender.flush(0.8)
        sender.shutdown()

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "POSTHOG_HOST" in errors[0]
    assert len(posthog.requests) <= 3
    assert _spooled(spool_file) == {event.uuid for event in events}


def test_unreachable_host_is_named_once(
    posthog: CaptureEmulator, spool_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Failed connections log one warning naming POSTHOG_HOST, however many attempts fail."""
    url = posthog.url
    posthog.stop()
    sender = delivery(url, spool_file, base_backoff=0.01, max_backoff=0.02)
    with caplog.at_level(logging.DEBUG, logger="otel_bedrock.delivery"):
        for event in make_events(3):
            sender.send(event)
        assert eventually(lambda: sender.counters.retried >= 9)
        sender.shutdown(0)

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"posthog_unreachable host={url} error=ConnectionError")
    assert "POSTHOG_HOST" in warnings[0]
