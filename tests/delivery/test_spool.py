"""The SQLite spool: idempotent writes, claims between owners, eviction by size and age."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from otel_bedrock.delivery.spool import Spool


def _event(number: int, size: int = 10) -> dict[str, object]:
    return {"uuid": f"uuid-{number:03d}", "event": "e", "properties": {"text": "x" * size}}


def test_put_is_idempotent(spool_file: Path) -> None:
    """Writing the same uuid twice keeps one row."""
    spool = Spool(spool_file)

    assert spool.put([_event(1), _event(2)]) == (2, 0)
    assert spool.put([_event(1)]) == (0, 0)
    assert spool.status().rows == 2


def test_claims_are_exclusive_and_released(spool_file: Path) -> None:
    """Rows claimed by one owner are invisible to another until released, oldest first."""
    first, second = Spool(spool_file), Spool(spool_file)
    first.put([_event(number) for number in range(5)])

    claimed = first.claim(3, "a", 30)
    others = second.claim(10, "b", 30)
    assert [row["uuid"] for row in claimed] == ["uuid-000", "uuid-001", "uuid-002"]
    assert [row["uuid"] for row in others] == ["uuid-003", "uuid-004"]
    assert second.claim(10, "b", 30) == []
    assert first.status().claimed == 5

    first.release(["uuid-000"], "a")
    second.delete(["uuid-003", "uuid-004"])
    assert [row["uuid"] for row in second.claim(10, "b", 30)] == ["uuid-000"]
    assert first.status().rows == 3


def test_expired_claims_return(spool_file: Path) -> None:
    """A claim whose lease ran out (its process died) can be taken by another owner."""
    spool = Spool(spool_file)
    spool.put([_event(1)])
    assert len(spool.claim(1, "dead", 0.05)) == 1
    time.sleep(0.1)

    assert [row["uuid"] for row in spool.claim(1, "alive", 30)] == ["uuid-001"]


def test_eviction_by_size_counts_oldest(spool_file: Path) -> None:
    """Past max_bytes the oldest rows are evicted and counted."""
    spool = Spool(spool_file, max_bytes=1_000)
    evicted: list[int] = []
    spool.on_evict = evicted.append
    for number in range(10):
        spool.put([_event(number, size=200)])

    state = spool.status()
    assert state.bytes == 3 * 256
    assert state.rows == 3
    assert spool.evicted == 7
    assert sum(evicted) == 7
    assert [row["uuid"] for row in spool.claim(10, "a", 30)] == [
        "uuid-007",
        "uuid-008",
        "uuid-009",
    ]


def test_eviction_by_age(spool_file: Path) -> None:
    """Rows older than max_age_seconds are evicted and counted."""
    spool = Spool(spool_file, max_age_seconds=0.1)
    spool.put([_event(1), _event(2)])
    time.sleep(0.15)
    spool.put([_event(3)])

    assert spool.evicted == 2
    assert [row["uuid"] for row in spool.claim(10, "a", 30)] == ["uuid-003"]


def test_totals_are_kept_in_meta(spool_file: Path) -> None:
    """The meta table holds the rows and bytes, updated by puts, deletes and evictions."""
    spool = Spool(spool_file, max_bytes=1_000)
    spool.put([_event(number, size=200) for number in range(3)])
    spool.delete(["uuid-001"])
    spool.put([_event(9, size=200) for _ in range(2)])

    reader = sqlite3.connect(spool_file)
    try:
        meta = reader.execute("SELECT rows, bytes FROM meta").fetchone()
        actual = reader.execute("SELECT COUNT(*), SUM(size) FROM events").fetchone()
    finally:
        reader.close()
    assert meta == (3, 3 * 256)
    assert actual == (3, 3 * 256)
    assert spool.status().bytes == 3 * 256


def test_eviction_spares_live_claims(spool_file: Path) -> None:
    """Rows under a live claim are not evicted by the size bound; the oldest free ones are."""
    spool = Spool(spool_file, max_bytes=1_000)
    spool.put([_event(number, size=200) for number in range(3)])
    assert len(spool.claim(2, "sender", 30)) == 2
    for number in range(3, 6):
        spool.put([_event(number, size=200)])

    assert spool.evicted == 3
    uuids = [row["uuid"] for row in spool.claim(10, "other", 30)]
    assert uuids == ["uuid-005"]
    spool.release_owner("sender")
    assert [row["uuid"] for row in spool.claim(10, "other", 30)] == ["uuid-000", "uuid-001"]


def test_unserialisable_values_are_stored_as_text(spool_file: Path) -> None:
    """A datetime in an event is stored as its text instead of failing the whole put."""
    spool = Spool(spool_file)
    when = datetime(2025, 1, 2, tzinfo=UTC)

    assert spool.put([{"uuid": "u-1", "properties": {"when": when}}, _event(2)]) == (2, 0)
    rows = spool.claim(10, "a", 30)
    assert rows[0] == {"uuid": "u-1", "properties": {"when": "2025-01-02 00:00:00+00:00"}}


def test_opening_an_existing_spool_writes_nothing(spool_file: Path) -> None:
    """A spool file with its schema opens while another process holds the write lock."""
    Spool(spool_file).put([{"uuid": "u-1", "event": "e"}])
    blocker = sqlite3.connect(spool_file, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    try:
        spool = Spool(spool_file)
        status = spool.status()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    assert status.rows == 1
    assert time.monotonic() - started < 2.0
    spool.close()
