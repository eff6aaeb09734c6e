"""The on-disk spool: events waiting for PostHog, kept in one SQLite file.

Rows are keyed by the event uuid, so writing the same event twice keeps one row. Several
processes may share a file (the workers of a pre-forking server): a worker claims rows with a
lease (``claimed_by``, ``claimed_until``) in one statement, so no two processes send the same
row at the same time; a claim is released when the send fails and expires by itself when its
process dies. Rows are deleted once PostHog accepted them.

The spool is bounded: rows older than ``max_age_seconds`` and, past ``max_bytes``, the oldest
rows are evicted; evictions are counted and logged (at most one warning a minute).

Every method may be called from any thread; a lock serialises use of the connection.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_AGE_SECONDS = 72 * 3600.0
_EVICTION_LOG_INTERVAL = 60.0

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
"""


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
        self.on_evict: Callable[[int], None] | None = None
        self._lock = threading.Lock()
        self._last_eviction_log = float("-inf")
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        with self._lock:
            self._connect()

    def _connect(self) -> sqlite3.Connection:
        """The open connection, opened (and the schema created) on first use."""
        if self._closed:
            raise sqlite3.ProgrammingError("the spool is closed")
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
            self._connection = connection

        return self._connection

    def after_fork(self) -> None:
        """Forget the parent's connection and lock (called in a forked child only).

        SQLite connections must not cross ``fork()``; the child opens its own on first use.
        """
        self._lock = threading.Lock()
        self._connection = None

    def close(self) -> None:
        """Close the connection; later calls raise ``sqlite3.ProgrammingError``."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
            self._connection = None
            self._closed = True

    def put(self, events: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Store wire-format events (those already stored are kept as they are).

        Returns:
            The number of rows added and the number of rows evicted to respect the bounds.
        """
        now = time.time()
        rows = []
        for event in events:
            payload = json.dumps(event, separators=(",", ":"))
            rows.append((str(event["uuid"]), payload, len(payload), now))
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                before = connection.total_changes
                connection.executemany(
                    "INSERT OR IGNORE INTO events (uuid, payload, size, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    rows,
                )
                added = connection.total_changes - before
                evicted = self._evict(connection, now)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        self._note_evictions(evicted)

        return added, evicted

    def claim(self, limit: int, owner: str, lease_seconds: float) -> list[dict[str, Any]]:
        """Lease up to ``limit`` unclaimed rows, oldest first, and return their events."""
        now = time.time()
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                evicted = self._evict(connection, now)
                claimed = connection.execute(
                    "UPDATE events SET claimed_by = ?, claimed_until = ? WHERE uuid IN ("
                    "SELECT uuid FROM events WHERE claimed_until < ? "
                    "ORDER BY created_at, rowid LIMIT ?) RETURNING created_at, rowid, payload",
                    (owner, now + lease_seconds, now, limit),
                ).fetchall()
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        self._note_evictions(evicted)
        claimed.sort(key=lambda row: (row[0], row[1]))

        return [json.loads(row[2]) for row in claimed]

    def release(self, uuids: Sequence[str], owner: str) -> None:
        """Give back the lease on rows this owner claimed, so they can be sent again."""
        self._run_for_each(
            "UPDATE events SET claimed_by = NULL, claimed_until = 0 "
            "WHERE uuid = ? AND claimed_by = ?",
            [(uuid, owner) for uuid in uuids],
        )

    def delete(self, uuids: Sequence[str]) -> None:
        """Remove delivered (or abandoned) rows."""
        self._run_for_each("DELETE FROM events WHERE uuid = ?", [(uuid,) for uuid in uuids])

    def status(self) -> SpoolStatus:
        """Rows, bytes, the oldest row's age and the claimed rows, now."""
        now = time.time()
        with self._lock:
            rows, size, oldest, claimed = (
                self._connect()
                .execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created_at), "
                    "COALESCE(SUM(claimed_until >= ?), 0) FROM events",
                    (now,),
                )
                .fetchone()
            )

        return SpoolStatus(
            rows=int(rows),
            bytes=int(size),
            oldest_age_seconds=0.0 if oldest is None else max(0.0, now - float(oldest)),
            claimed=int(claimed),
        )

    def _run_for_each(self, statement: str, parameters: list[tuple[str, ...]]) -> None:
        if not parameters:
            return
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(statement, parameters)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def _evict(self, connection: sqlite3.Connection, now: float) -> int:
        """Delete rows past the age bound, then the oldest rows past the size bound."""
        before = connection.total_changes
        connection.execute("DELETE FROM events WHERE created_at < ?", (now - self.max_age_seconds,))
        (total,) = connection.execute("SELECT COALESCE(SUM(size), 0) FROM events").fetchone()
        excess = int(total) - self.max_bytes
        if excess > 0:
            connection.execute(
                "DELETE FROM events WHERE uuid IN (SELECT uuid FROM (SELECT uuid, "
                "SUM(size) OVER (ORDER BY created_at, rowid) - size AS before FROM events) "
                "WHERE before < ?)",
                (excess,),
            )

        return connection.total_changes - before

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
