"""The on-disk spool: events waiting for PostHog, kept in one SQLite file.

Rows are keyed by the event uuid, so writing the same event twice keeps one row. Several
processes may share a file (the workers of a pre-forking server): a worker claims rows with a
lease (``claimed_by``, ``claimed_until``) inside one write transaction, so no two processes send
the same row at the same time; a claim is renewed while its rows are being sent, released when
the send fails or the process stops, and expires by itself when its process dies. Rows are
deleted once PostHog accepted them.

The spool is bounded: rows older than ``max_age_seconds`` and, past ``max_bytes``, the oldest
rows are evicted, never rows under a live claim; evictions are counted and logged (at most one
warning a minute). The total size and row count are kept in a one-row ``meta`` table that
triggers update in the same transaction, so writes never scan the whole table.

Every method may be called from any thread; a lock serialises use of the connection.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_AGE_SECONDS = 72 * 3600.0
BUSY_TIMEOUT = 10.0
_EVICTION_LOG_INTERVAL = 60.0
_AGE_CHECK_INTERVAL = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    uuid TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL,
    claimed_by TEXT,
    claimed_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_by_age ON events (created_at);
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (id, rows, bytes)
    SELECT 1, COUNT(*), COALESCE(SUM(size), 0) FROM events;
CREATE TRIGGER IF NOT EXISTS events_added AFTER INSERT ON events BEGIN
    UPDATE meta SET rows = rows + 1, bytes = bytes + NEW.size WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS events_removed AFTER DELETE ON events BEGIN
    UPDATE meta SET rows = rows - 1, bytes = bytes - OLD.size WHERE id = 1;
END;
"""


def _has_schema(connection: sqlite3.Connection) -> bool:
    """Whether the file already has the whole schema (its last object, and the meta row)."""
    (triggers,) = connection.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' "
        "AND name IN ('events_added', 'events_removed')"
    ).fetchone()
    if triggers != 2:
        return False
    row = connection.execute("SELECT 1 FROM meta WHERE id = 1").fetchone()

    return row is not None


def serialise(event: dict[str, Any]) -> str:
    """Compact JSON for one event; values JSON does not know are written as their text."""
    return json.dumps(event, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class SpoolStatus:
    """What a spool holds.

    Attributes:
        rows: Events waiting.
        bytes: Their serialised size.
        oldest_age_seconds: Age of the oldest row, 0 when empty.
        claimed: Rows currently leased by a process that is sending them.
    """

    rows: int
    bytes: int
    oldest_age_seconds: float
    claimed: int


class Spool:
    """A SQLite file of events waiting for delivery.

    Args:
        path: The file; its folder is created when missing.
        max_bytes: Largest total size of the stored events.
        max_age_seconds: Rows older than this are evicted.

    Raises:
        ValueError: when a bound is not positive.
        sqlite3.Error: when the file cannot be opened as a spool.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if max_age_seconds <= 0:
            raise ValueError(f"max_age_seconds must be positive, got {max_age_seconds}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self.evicted = 0
        self.used_bytes = 0
        """Size of the stored events as of the last write or claim by this process."""
        self._put_rows = 0
        self._put_bytes = 0
        self.on_evict: Callable[[int], None] | None = None
        self._age_check_interval = min(_AGE_CHECK_INTERVAL, max_age_seconds / 10)
        self._next_age_check = float("-inf")
        self._lock = threading.Lock()
        self._last_eviction_log = float("-inf")
        self._connection: sqlite3.Connection | None = None
        self._inherited: list[sqlite3.Connection] = []
        self._closed = False
        with self._lock:
            connection = self._connect()
            (stored,) = connection.execute("SELECT bytes FROM meta WHERE id = 1").fetchone()
            self.used_bytes = int(stored)
        # A fork in the middle of a transaction would leave SQLite's per-process lock state
        # held in the child for good: wait for the transaction to end before forking.
        ref = weakref.ref(self)
        os.register_at_fork(
            before=functools.partial(_at_fork, ref, "before"),
            after_in_parent=functools.partial(_at_fork, ref, "parent"),
            after_in_child=functools.partial(_at_fork, ref, "child"),
        )

    def _connect(self) -> sqlite3.Connection:
        """The open connection, opened (and the schema created) on first use."""
        if self._closed:
            raise sqlite3.ProgrammingError("the spool is closed")
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            try:
                (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
                if str(mode).lower() != "wal":
                    connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                if not _has_schema(connection):
                    connection.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
            except BaseException:
                connection.close()
                raise
            self._connection = connection

        return self._connection

    def after_fork(self) -> None:
        """Set the parent's connection and lock aside (called in a forked child only).

        SQLite connections must not cross ``fork()``; the child opens its own on first use.
        The parent's connection object stays referenced, never closed here: closing it in the
        child could disturb the parent's locks on the file.
        """
        self._lock = threading.Lock()
        if self._connection is not None:
            self._inherited.append(self._connection)
        self._connection = None

    def _fork_step(self, step: str) -> None:
        """Hold the lock across ``fork()`` so that no transaction is open in the child."""
        if step == "before":
            self._lock.acquire()
        elif step == "parent":
            self._lock.release()
        else:
            self.after_fork()

    def close(self) -> None:
        """Close the connection; later calls raise ``sqlite3.ProgrammingError``."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
            self._connection = None
            self._closed = True

    def put(
        self,
        events: Sequence[dict[str, Any]],
        busy_timeout: float = BUSY_TIMEOUT,
        *,
        claimed_by: str | None = None,
        lease: float = 0.0,
    ) -> tuple[int, int]:
        """Store wire-format events (those already stored are kept as they are).

        Args:
            events: The events, each with a ``uuid``.
            busy_timeout: Seconds to wait for another process's write to end.
            claimed_by: Store the new rows already claimed by this owner (events that the
                owner may still be sending from memory), for ``lease`` seconds.
            lease: How long that claim lasts.

        Returns:
            The number of rows added and the number of rows evicted to respect the bounds.
        """
        now = time.time()
        until = now + lease if claimed_by is not None else 0.0
        rows = []
        for event in events:
            payload = serialise(event)
            rows.append((str(event["uuid"]), payload, len(payload), now, claimed_by, until))

        def insert(connection: sqlite3.Connection) -> int:
            before = connection.total_changes
            connection.executemany(
                "INSERT OR IGNORE INTO events "
                "(uuid, payload, size, created_at, claimed_by, claimed_until) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            # Each inserted row also changed ``meta`` through its trigger.
            return (connection.total_changes - before) // 2

        added, evicted = self._write(insert, now, busy_timeout)
        self._note_evictions(evicted)
        self._put_rows += len(rows)
        self._put_bytes += sum(size for _, _, size, *_ in rows)

        return added, evicted

    @property
    def row_bytes(self) -> float | None:
        """The mean size of the events this process has stored; None before the first."""
        return self._put_bytes / self._put_rows if self._put_rows else None

    def claim(self, limit: int, owner: str, lease_seconds: float) -> list[dict[str, Any]]:
        """Lease up to ``limit`` unclaimed rows, oldest first, and return their events."""
        now = time.time()

        def take(connection: sqlite3.Connection) -> list[tuple[str, str]]:
            found: list[tuple[str, str]] = connection.execute(
                "SELECT uuid, payload FROM events WHERE claimed_until < ? "
                "ORDER BY created_at, rowid LIMIT ?",
                (now, limit),
            ).fetchall()
            connection.executemany(
                "UPDATE events SET claimed_by = ?, claimed_until = ? WHERE uuid = ?",
                [(owner, now + lease_seconds, uuid) for uuid, _ in found],
            )
            return found

        claimed, evicted = self._write(take, now, BUSY_TIMEOUT, evict_first=True)
        self._note_evictions(evicted)

        return [json.loads(payload) for _, payload in claimed]

    def renew(self, uuids: Sequence[str], owner: str, lease_seconds: float) -> None:
        """Extend this owner's lease on rows it is still sending by ``lease_seconds`` from now."""
        until = time.time() + lease_seconds
        self._run_for_each(
            "UPDATE events SET claimed_until = ? WHERE uuid = ? AND claimed_by = ?",
            [(until, uuid, owner) for uuid in uuids],
        )

    def release(self, uuids: Sequence[str], owner: str) -> None:
        """Give back the lease on rows this owner claimed, so they can be sent again."""
        self._run_for_each(
            "UPDATE events SET claimed_by = NULL, claimed_until = 0 "
            "WHERE uuid = ? AND claimed_by = ?",
            [(uuid, owner) for uuid in uuids],
        )

    def release_owner(self, owner: str) -> None:
        """Give back every lease this owner holds (when its process stops sending)."""
        self._run_for_each(
            "UPDATE events SET claimed_by = NULL, claimed_until = 0 WHERE claimed_by = ?",
            [(owner,)],
        )

    def delete(self, uuids: Sequence[str]) -> None:
        """Remove delivered (or abandoned) rows."""
        self._run_for_each("DELETE FROM events WHERE uuid = ?", [(uuid,) for uuid in uuids])
        with self._lock:
            (stored,) = self._connect().execute("SELECT bytes FROM meta WHERE id = 1").fetchone()
            self.used_bytes = int(stored)

    def status(self) -> SpoolStatus:
        """Rows, bytes, the oldest row's age and the claimed rows, now."""
        now = time.time()
        with self._lock:
            connection = self._connect()
            rows, size = connection.execute("SELECT rows, bytes FROM meta WHERE id = 1").fetchone()
            (oldest,) = connection.execute("SELECT MIN(created_at) FROM events").fetchone()
            (claimed,) = connection.execute(
                "SELECT COUNT(*) FROM events WHERE claimed_until >= ?", (now,)
            ).fetchone()

        return SpoolStatus(
            rows=int(rows),
            bytes=int(size),
            oldest_age_seconds=0.0 if oldest is None else max(0.0, now - float(oldest)),
            claimed=int(claimed),
        )

    def _write(
        self,
        work: Callable[[sqlite3.Connection], Any],
        now: float,
        busy_timeout: float,
        evict_first: bool = False,
    ) -> tuple[Any, int]:
        """Run ``work`` and the eviction due in one write transaction; its result, evictions."""
        with self._lock:
            connection = self._connect()
            connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    # Evict before a claim (it would spare the rows just claimed), after a put.
                    evicted = self._evict(connection, now) if evict_first else 0
                    result = work(connection)
                    if not evict_first:
                        evicted = self._evict(connection, now)
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
            finally:
                if busy_timeout != BUSY_TIMEOUT:
                    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")

        return result, evicted

    def _run_for_each(self, statement: str, parameters: Sequence[tuple[Any, ...]]) -> None:
        if not parameters:
            return
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(statement, parameters)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    def _evict(self, connection: sqlite3.Connection, now: float) -> int:
        """Delete unclaimed rows past the age bound (checked every few seconds) or size bound."""
        evicted = 0
        if now >= self._next_age_check:
            self._next_age_check = now + self._age_check_interval
            before = connection.total_changes
            connection.execute(
                "DELETE FROM events WHERE created_at < ? AND claimed_until < ?",
                (now - self.max_age_seconds, now),
            )
            evicted += (connection.total_changes - before) // 2
        (total,) = connection.execute("SELECT bytes FROM meta WHERE id = 1").fetchone()
        self.used_bytes = int(total)
        excess = int(total) - self.max_bytes
        while excess > 0:
            oldest = connection.execute(
                "SELECT uuid, size FROM events WHERE claimed_until < ? "
                "ORDER BY created_at, rowid LIMIT 100",
                (now,),
            ).fetchall()
            if not oldest:
                break
            doomed = []
            for uuid, size in oldest:
                if excess <= 0:
                    break
                doomed.append((uuid,))
                excess -= int(size)
                self.used_bytes -= int(size)
            connection.executemany("DELETE FROM events WHERE uuid = ?", doomed)
            evicted += len(doomed)

        return evicted

    def _note_evictions(self, count: int) -> None:
        """Count evicted rows and warn about them, at most once a minute."""
        if count <= 0:
            return
        now = time.monotonic()
        with self._lock:
            self.evicted += count
            total = self.evicted
            due = now - self._last_eviction_log >= _EVICTION_LOG_INTERVAL
            if due:
                self._last_eviction_log = now
        if self.on_evict is not None:
            self.on_evict(count)
        level = logging.WARNING if due else logging.DEBUG
        logger.log(
            level,
            "posthog_spool_evicted count=%s evicted_total=%s path=%s max_bytes=%s "
            "max_age_seconds=%s",
            count,
            total,
            self.path,
            self.max_bytes,
            self.max_age_seconds,
        )


def _at_fork(ref: weakref.ref[Spool], step: str) -> None:
    spool = ref()
    if spool is not None:
        spool._fork_step(step)
