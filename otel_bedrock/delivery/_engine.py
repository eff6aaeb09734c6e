"""The delivery engine: a bounded memory queue, a worker thread, a spool writer, fork safety.

``send`` runs on the span processor's export thread and only takes a lock to append to the
queue. When the queue is full, ``send`` hands the whole queue (one reference, no copy) to the
spool writer's backlog and starts a new one, so the export thread never waits for SQLite; only
when the backlog is full too is an event dropped, counted and logged. The spool writer thread
writes the backlog to the spool as soon as it appears; it also moves the memory queue to the
spool every ``flush_interval`` while PostHog is failing or while one request has taken longer
than ``flush_interval``, and then writes the batch in flight ahead too, leased to this process,
so that a process killed during an outage or a hang loses no more than about
``flush_interval`` of events.

The worker thread sends batches: first what the spool holds (oldest first), then events that
failed without a spool, then the queue. A batch that fails for a reason that may pass (5xx,
429, 401, network) goes to the spool at once, and the worker backs off exponentially with
jitter, or as long as PostHog's ``Retry-After`` asks (capped at :data:`MAX_SERVER_WAIT`).

Fork: ``os.register_at_fork`` resets a child; servers that fork without running Python's fork
hooks (uWSGI without ``py-call-osafterfork``) are caught by a process id check in ``send``,
``flush``, ``shutdown`` and the exit handler.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import os
import random
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from otel_bedrock._once import first_time, warn_once
from otel_bedrock.delivery._counters import DeliveryCounters, format_counters, reset_if_forked
from otel_bedrock.delivery.spool import Spool
from otel_bedrock.delivery.transport import BatchOutcome, Transport, to_wire
from otel_bedrock.events import CaptureEvent

logger = logging.getLogger(__name__)

MAX_SERVER_WAIT = 300.0
"""Longest wait between attempts, whatever PostHog's ``Retry-After`` asks."""
SHORT_BUSY_TIMEOUT = 1.0
"""Seconds a spool write from memory waits for another process's write before giving up."""
_CLOSED_BUSY_TIMEOUT = 0.2
_WRITE_ROWS = 2000
"""Rows per spool transaction of the spool writer (keeps claims by the worker waiting little)."""
_WRITER_JOIN = 2.0

_Item = CaptureEvent | dict[str, Any]
ROW_BYTES_GUESS = 1024
"""Bytes an event is taken to need in the spool before this process has sent or stored any
(a completion event without content is under 1 KB)."""
FULL_SPOOL_SHARE = 0.9
"""Share of its size bound from which the spool counts as full (new events push out old),
unless a ``spool_reserve`` is given."""


@dataclass(frozen=True, slots=True)
class Pressure:
    """How well delivery keeps up, for a service that must decide whether to take more.

    Attributes:
        failing: The last attempt failed and PostHog has not answered well since.
        retry_in: Seconds until the next attempt (0 when one is due or under way).
        full: Nowhere left to put new events without losing others: what the spool holds,
            with what memory holds that would go there if PostHog failed, comes within the
            reserve (by default a tenth, see :data:`FULL_SPOOL_SHARE`) of the spool's size
            bound, or the spool writer's backlog is full; without a spool, the memory queue
            is full.
        room: About how many more events fit before ``full`` (in the spool, by the mean size
            of those stored or else sent so far, and in what memory takes before it drops);
            None when not known. A service that holds events of its own on their way here
            (the collector) counts them against it.
    """

    failing: bool
    retry_in: float
    full: bool
    room: int | None = None


def retry_delay(
    failures: int, base: float, cap: float, retry_after: float | None, jitter: float = 1.0
) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row.

    Exponential backoff from ``base`` up to ``cap``, times ``jitter``; a ``Retry-After`` may
    lengthen it, up to :data:`MAX_SERVER_WAIT` (non-finite values count as that cap).
    """
    delay: float = min(cap, base * 2.0 ** min(failures - 1, 30) * jitter)
    if retry_after is None:
        return delay
    asked = float(retry_after) if math.isfinite(retry_after) else MAX_SERVER_WAIT

    return min(MAX_SERVER_WAIT, max(asked, delay))


class Engine:
    """Queue, worker, spool writer and spool of one delivery; see :class:`PostHogDelivery`.

    Threads: ``send`` is called on the span processor's export thread; ``flush`` and
    ``shutdown`` on any thread; ``at_exit`` by the interpreter's exit handlers;
    ``after_fork_in_child`` in a forked child; ``_run_writer`` and what it calls on the spool
    writer thread; every other ``_``-method from ``_run`` on down on the worker thread only.
    """

    def __init__(
        self,
        transport: Transport,
        spool: Spool | None,
        counters: DeliveryCounters,
        *,
        max_queue: int,
        batch_size: int,
        flush_interval: float,
        base_backoff: float,
        max_backoff: float,
        lease_seconds: float,
        spool_poll_interval: float,
        log_interval: float,
        exit_timeout: float = 5.0,
        spool_reserve: int | None = None,
    ) -> None:
        self.transport = transport
        self.spool = spool
        self.counters = counters
        self.max_queue = max_queue
        self.max_backlog = max(2 * max_queue, 10 * batch_size)
        """Events waiting for the spool writer, beyond which new events are dropped."""
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.lease_seconds = lease_seconds
        self.spool_poll_interval = spool_poll_interval
        self.log_interval = log_interval
        self.exit_timeout = exit_timeout
        default_reserve = 0 if spool is None else round((1 - FULL_SPOOL_SHARE) * spool.max_bytes)
        self.spool_reserve = default_reserve if spool_reserve is None else spool_reserve
        """Bytes of the spool kept free for events already on their way (see ``pressure``)."""
        self.closed = False
        if spool is not None:
            spool.on_evict = functools.partial(counters.add, "evicted")
        atexit.register(_at_exit, weakref.ref(self))
        self._reset()
        os.register_at_fork(after_in_child=functools.partial(_reset_in_child, weakref.ref(self)))

    def _reset(self) -> None:
        """Fresh state: used at construction and in a forked child."""
        self._pid = os.getpid()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        """Wakes the worker and the threads waiting in ``flush``."""
        self._writer_cond = threading.Condition(lock)
        """Wakes the spool writer; shares the lock of ``_cond``."""
        self._queue: deque[CaptureEvent] = deque()
        self._backlog: deque[Iterable[_Item]] = deque()
        self._backlog_count = 0
        """Events in the backlog and in the writer's hands, until they are written."""
        self._spill_gen = 0
        self._retry: deque[dict[str, Any]] = deque()
        self._inflight: list[_Item] = []
        self._busy_since = 0.0
        self._inflight_spool = "none"
        """``none``, ``writing`` (the writer is writing it ahead) or ``written`` (leased)."""
        self._written_off = False
        self._first_queued = 0.0
        self._worker: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._stopping = False
        self._writer_stopping = False
        self._exiting = False
        self._exited = False
        self._clean_close = True
        self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._exit_owner = f"{self._owner}-exit"
        self._failures = 0
        self._backoff_until = 0.0
        self._server_wait = False
        self._spool_due = self.spool is not None
        self._next_spool_poll = 0.0
        self._next_memory_move = 0.0
        self._writer_retry_at = 0.0
        self._flush_gen = 0
        self._drained_gen = 0
        self._failed_gen = 0
        self._attempt_gen = 0
        self._mirrored = False
        self._last_log = time.monotonic()
        self._last_logged = self.counters.snapshot()

    def after_fork_in_child(self) -> None:
        """Start empty in a forked child: the parent keeps (and sends) what it had queued."""
        reset_if_forked()
        self.counters.reset_after_fork()
        if self.spool is not None:
            self.spool.after_fork()
        self.transport.after_fork()
        self._reset()

    def _check_fork(self) -> None:
        """Reset when this is a child forked without Python's fork hooks (uWSGI's default)."""
        if os.getpid() != self._pid:
            logger.debug("posthog_delivery_forked_without_hooks pid=%s", os.getpid())
            self.after_fork_in_child()

    # -- the export thread ------------------------------------------------------------------

    def send(self, event: CaptureEvent) -> None:
        """Queue one event, or hand the full queue to the spool writer; never waits for I/O."""
        self._check_fork()
        with self._cond:
            if self.closed:
                reason = "closed"
            else:
                if self._worker is None:
                    self._start_threads()
                size = len(self._queue)
                if size < self.max_queue:
                    self._queue.append(event)
                    if size == 0:
                        self._first_queued = time.monotonic()
                        self._cond.notify()
                        if self._busy_since or self._failures:
                            self._writer_cond.notify()
                    elif size + 1 == self.batch_size:
                        self._cond.notify()
                    return
                if self.spool is not None and self._backlog_count < self.max_backlog:
                    self._spill_queue(event)
                    return
                reason = "queue_full"
        if reason == "closed" and self.spool is not None:
            self._spool_after_close(event)
        else:
            self._drop_one(event, reason)

    def _spill_queue(self, event: CaptureEvent) -> None:
        """Give the full queue (or, without room for it, ``event``) to the writer; lock held."""
        if self._backlog_count + len(self._queue) <= self.max_backlog:
            self._backlog.append(self._queue)
            self._backlog_count += len(self._queue)
            self._queue = deque([event])
            self._first_queued = time.monotonic()
            self._cond.notify()
        else:
            self._backlog.append((event,))
            self._backlog_count += 1
        self._writer_cond.notify()

    def _spool_after_close(self, event: CaptureEvent) -> None:
        """Write an event that came after shutdown straight to the spool, or count it dropped."""
        assert self.spool is not None
        try:
            self.spool.put([to_wire(event)], busy_timeout=_CLOSED_BUSY_TIMEOUT)
        except Exception:  # noqa: BLE001 - the export thread must go on
            self._drop_one(event, "closed")
            return
        self.counters.add("spooled")

    def _drop_one(self, event: CaptureEvent, reason: str) -> None:
        self.counters.add("dropped")
        warn_once(
            logger,
            f"posthog_event_dropped:{reason}",
            "posthog_event_dropped reason=%s max_queue=%s uuid=%s spool=%s",
            reason,
            self.max_queue,
            event.uuid,
            None if self.spool is None else self.spool.path,
        )

    def pressure(self) -> Pressure:
        """Whether PostHog is failing and whether there is room for more; cheap, any thread."""
        with self._cond:
            failing = self._failures > 0
            retry_in = max(0.0, self._backoff_until - time.monotonic()) if failing else 0.0
            if self.spool is None:
                room = self.max_queue - max(len(self._queue), len(self._retry))
                full = room <= 0
            else:
                unwritten = len(self._queue) + len(self._retry) + self._backlog_count
                if self._inflight_spool != "written":
                    unwritten += len(self._inflight)
                row = self.spool.row_bytes or self.transport.event_bytes or ROW_BYTES_GUESS
                free = self.spool.max_bytes - self.spool_reserve - self.spool.used_bytes
                # What memory can still take before it drops, whatever the spool's room.
                absorbable = (
                    self.max_queue - len(self._queue) + self.max_backlog - self._backlog_count
                )
                room = min(math.floor(free / row) - unwritten, absorbable)
                full = self._backlog_count >= self.max_backlog or room <= 0

        return Pressure(failing=failing, retry_in=retry_in, full=full, room=max(0, room))

    # -- flush, shutdown and exit (any thread) ----------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait until memory is sent and the spool offered nothing more, or ``timeout`` passed.

        Returns False early when an attempt made during this flush failed and memory holds
        nothing that is not in the spool: waiting longer would only wait for PostHog.
        """
        self._check_fork()
        with self._cond:
            if self.closed:
                return self._clean_close
            if self._worker is None:
                self._start_threads()
            self._flush_gen += 1
            generation = self._flush_gen
            if not self._server_wait:
                # Try now, once, rather than wait out a backoff the flush did not cause.
                self._backoff_until = min(self._backoff_until, time.monotonic())
            self._cond.notify_all()
            self._cond.wait_for(
                lambda: self._drained_gen >= generation or self._all_spooled_in_outage(generation),
                timeout,
            )

            return self._drained_gen >= generation

    def _all_spooled_in_outage(self, generation: int) -> bool:
        """An attempt failed since flush ``generation`` began, and memory is all in the spool."""
        if self.spool is None or self._failed_gen < generation:
            return False
        in_memory = self._queue or self._retry or self._backlog_count
        inflight_only_here = self._inflight and self._inflight_spool != "written"

        return not in_memory and not inflight_only_here

    def shutdown(self, timeout: float) -> None:
        """Flush for ``timeout``, stop the threads, and spool what is left in memory."""
        self._check_fork()
        with self._cond:
            if self.closed:
                return
        delivered = self.flush(timeout)
        with self._cond:
            self.closed = True
            self._stopping = True
            self._writer_stopping = True
            self._cond.notify_all()
            self._writer_cond.notify_all()
            worker, writer = self._worker, self._writer
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=0.5)
        if writer is not None and writer is not threading.current_thread():
            writer.join(timeout=_WRITER_JOIN)
        busy = worker is not None and worker.is_alive()
        with self._cond:
            # With a spool, a batch still in flight is spooled too; if it succeeds later, its
            # rows go. Without one, it is counted dropped now: the process may end before its
            # answer comes.
            keep_inflight = busy and self.spool is not None
            self._mirrored = self._mirrored or keep_inflight
            written_off = list(self._inflight) if busy and self.spool is None else []
            self._written_off = bool(written_off)
            left = [
                *self._retry,
                *(self._inflight if keep_inflight else []),
                *self._take_backlog(),
                *self._queue,
            ]
            self._retry.clear()
            self._queue.clear()
            if not left and not busy and not any(self.counters.snapshot().values()):
                delivered = True  # it was never given an event: nothing is owed
            self._clean_close = delivered and not left and not busy
        if written_off:
            self.counters.add("dropped", len(written_off))
            logger.error(
                "posthog_events_dropped count=%s reason=in_flight_at_shutdown host=%s; PostHog "
                "had not answered (they may still arrive); configure a spool "
                "(OTEL_BEDROCK_SPOOL_PATH) to keep them",
                len(written_off),
                self.transport.host,
            )
        if left:
            self._spool_leftovers(self._wires(left))
        if self.spool is not None:
            try:
                self._release_claims()
                self.spool.release_owner(self._exit_owner)
            except Exception:  # the leases then expire by themselves
                logger.debug("posthog_spool_release_failed", exc_info=True)
            if not busy and not (writer is not None and writer.is_alive()):
                self.spool.close()
        logger.info(
            "posthog_delivery_stopped delivered=%s host=%s %s",
            delivered,
            self.transport.host,
            format_counters(self.counters.snapshot()),
        )

    def _take_backlog(self) -> list[_Item]:
        """Empty the backlog the writer has not taken yet (with the lock held)."""
        items = [item for chunk in self._backlog for item in chunk]
        self._backlog.clear()
        self._backlog_count -= len(items)

        return items

    def _release_claims(self) -> None:
        assert self.spool is not None
        self.spool.release_owner(self._owner)

    def _spool_leftovers(self, wires: list[dict[str, Any]]) -> None:
        if self.spool is not None:
            try:
                self.spool.put(wires)
            except Exception:  # reported as a loss below
                logger.warning("posthog_spool_write_failed path=%s", self.spool.path, exc_info=True)
            else:
                self.counters.add("spooled", len(wires))
                return
        self.counters.add("dropped", len(wires))
        logger.error(
            "posthog_events_dropped count=%s reason=unsent_at_shutdown spool=%s",
            len(wires),
            None if self.spool is None else self.spool.path,
        )

    def at_exit(self) -> None:
        """At interpreter exit: copy memory to the spool, or without one flush and report."""
        self._check_fork()
        if self.closed or self._exited:
            return
        self._exited = True
        if self.spool is not None and self.mirror_to_spool():
            return
        with self._cond:
            pending = self._queue or self._retry or self._inflight or self._backlog_count
        if not pending or self.flush(self.exit_timeout):
            return
        with self._cond:
            self.closed = True
            self._clean_close = False
            lost = len(self._queue) + len(self._retry) + len(self._inflight)
            lost += len(self._take_backlog())
            self._queue.clear()
            self._retry.clear()
        self.counters.add("dropped", lost)
        logger.error(
            "posthog_events_dropped count=%s reason=unsent_at_exit timeout=%s host=%s; "
            "configure a spool (OTEL_BEDROCK_SPOOL_PATH) to keep them",
            lost,
            self.exit_timeout,
            self.transport.host,
        )

    def mirror_to_spool(self) -> bool:
        """Copy what memory holds to the spool, keeping it queued, and give back our claims.

        The copies are leased to this process for ``lease_seconds``, so that no other process
        sends them while ``shutdown`` may still send the originals; ``shutdown`` deletes each
        copy as its event is delivered and gives back the lease on the rest. If the process
        ends without ``shutdown``, the copies are sent by the next process with the spool once
        the lease has run out. From then on the worker claims no spool rows.

        Returns:
            False when the copy could not be written (the exit handler then flushes instead).
        """
        if self.closed or self.spool is None:
            return True
        with self._cond:
            self._exiting = True
            items = [
                *self._retry,
                *self._inflight,
                *(item for chunk in self._backlog for item in chunk),
                *self._queue,
            ]
            self._mirrored = True
        try:
            if items:
                self.spool.put(
                    self._wires(items), claimed_by=self._exit_owner, lease=self.lease_seconds
                )
            self._release_claims()
        except Exception:  # the exit handler flushes instead
            logger.error(
                "posthog_spool_mirror_failed count=%s path=%s; flushing instead",
                len(items),
                self.spool.path,
                exc_info=True,
            )
            return False

        return True

    # -- the spool writer thread --------------------------------------------------------------

    def _start_threads(self) -> None:
        """Start the worker, and with a spool the spool writer (with ``_cond`` held)."""
        self._worker = threading.Thread(
            target=self._run, name="otel-bedrock-posthog-delivery", daemon=True
        )
        self._worker.start()
        if self.spool is not None:
            self._writer = threading.Thread(
                target=self._run_writer, name="otel-bedrock-posthog-spool-writer", daemon=True
            )
            self._writer.start()

    def _run_writer(self) -> None:
        while True:
            with self._cond:
                taken = self._next_spill()
            if taken is None:
                return
            items, inflight = taken
            try:
                self._write_spill(items, inflight)
            except Exception:  # the writer must survive anything
                logger.exception("posthog_spool_writer_error")

    def _next_spill(self) -> tuple[list[_Item], bool] | None:
        """Wait (lock held) for events to write; (events, whether they are the batch in flight).

        Returns None once the writer is to stop and its backlog is empty.
        """
        while True:
            now = time.monotonic()
            busy = self._busy_since > 0
            stuck = busy and now >= self._busy_since + self.flush_interval
            if stuck and self._inflight and self._inflight_spool == "none" and not self._exiting:
                self._inflight_spool = "writing"
                return list(self._inflight), True
            if self._backlog and now >= self._writer_retry_at:
                items = [item for chunk in self._backlog for item in chunk]
                self._backlog.clear()
                return items, False
            room = self._backlog_count + len(self._queue) <= self.max_backlog
            queue_due = room and (self._failures > 0 or stuck)
            if self._queue and queue_due and now >= self._next_memory_move:
                self._next_memory_move = now + self.flush_interval
                items = list(self._queue)
                self._queue.clear()
                self._backlog_count += len(items)
                return items, False
            if self._writer_stopping and not self._backlog:
                return None
            wakes = []
            if self._backlog:
                wakes.append(self._writer_retry_at)
            if busy and not stuck:
                wakes.append(self._busy_since + self.flush_interval)
            if self._queue and queue_due:
                wakes.append(self._next_memory_move)
            self._writer_cond.wait(max(0.0, min(wakes) - now) if wakes else None)

    def _write_spill(self, items: list[_Item], inflight: bool) -> None:
        """Write events to the spool in a few transactions; what fails waits for a retry."""
        assert self.spool is not None
        wires = self._wires(items)
        if inflight:
            self._write_inflight(wires)
            return
        lost = len(items) - len(wires)
        with self._cond:
            self._backlog_count -= lost
        for start in range(0, len(wires), _WRITE_ROWS):
            part = wires[start : start + _WRITE_ROWS]
            try:
                self.spool.put(part, busy_timeout=SHORT_BUSY_TIMEOUT)
            except Exception:  # noqa: BLE001 - they wait in memory and are tried again
                self._spill_failed(wires[start:])
                return
            self.counters.add("spooled", len(part))
            with self._cond:
                self._backlog_count -= len(part)
                self._spill_gen += 1
                self._spool_due = True
                self._cond.notify_all()

    def _spill_failed(self, wires: list[dict[str, Any]]) -> None:
        """Keep events the spool refused for another try, or count them lost after shutdown."""
        assert self.spool is not None
        warn_once(
            logger,
            "posthog_spool_write_failed",
            "posthog_spool_write_failed path=%s count=%s",
            self.spool.path,
            len(wires),
            exc_info=True,
        )
        with self._cond:
            if not self._writer_stopping:
                self._backlog.appendleft(wires)
                self._writer_retry_at = time.monotonic() + self.flush_interval
                return
            self._backlog_count -= len(wires)
            self._cond.notify_all()
        self.counters.add("dropped", len(wires))
        logger.error(
            "posthog_events_dropped count=%s reason=spool_write_failed_at_shutdown path=%s",
            len(wires),
            self.spool.path,
        )

    def _write_inflight(self, wires: list[dict[str, Any]]) -> None:
        """Write the batch in flight ahead, leased to this process, in case it is killed."""
        assert self.spool is not None
        try:
            self.spool.put(
                wires,
                busy_timeout=SHORT_BUSY_TIMEOUT,
                claimed_by=self._owner,
                lease=self.lease_seconds,
            )
        except Exception:  # the batch is still in memory
            logger.debug("posthog_inflight_write_failed", exc_info=True)
            state = "failed"
        else:
            state = "written"
        with self._cond:
            self._inflight_spool = state
            self._cond.notify_all()

    # -- the worker thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._maybe_log()
            with self._cond:
                ready, check_spool, generation = self._wait_ready()
            if self._stopping:
                return
            if not ready:
                continue
            try:
                self._step(check_spool, generation)
            except Exception:  # the worker must survive anything
                logger.exception("posthog_delivery_worker_error")
                self._back_off(BatchOutcome(error="worker error"))

    def _wait_ready(self) -> tuple[bool, bool, int]:
        """Wait (with ``_cond`` held) until there is work; (ready, check the spool, flush gen)."""
        if self._stopping:
            return False, False, 0
        now = time.monotonic()
        wake = self._last_log + self.log_interval
        if now < self._backoff_until:
            self._cond.wait(max(0.0, min(self._backoff_until, wake) - now))
            return False, False, 0
        flushing = self._flush_gen > self._drained_gen
        spool_on = self.spool is not None and not self._exiting
        spool_due = spool_on and (self._spool_due or now >= self._next_spool_poll)
        batch_due = len(self._queue) >= self.batch_size or (
            bool(self._queue) and now >= self._first_queued + self.flush_interval
        )
        if flushing or spool_due or batch_due or self._retry:
            return True, spool_on and (flushing or spool_due), self._flush_gen
        if self._queue:
            wake = min(wake, self._first_queued + self.flush_interval)
        if spool_on:
            wake = min(wake, self._next_spool_poll)
        self._cond.wait(max(0.0, wake - now))

        return False, False, 0

    def _wires(self, items: list[_Item]) -> list[dict[str, Any]]:
        """The wire form of each item; one that cannot be serialised is counted dropped."""
        wires = []
        for item in items:
            try:
                wires.append(item if isinstance(item, dict) else to_wire(item))
            except Exception as error:  # noqa: BLE001 - one bad event must not lose the rest
                self.counters.add("dropped")
                warn_once(
                    logger,
                    "posthog_event_dropped:unserialisable",
                    "posthog_event_dropped uuid=%s reason=unserialisable error=%s",
                    getattr(item, "uuid", None),
                    type(error).__name__,
                )

        return wires

    def _step(self, check_spool: bool, generation: int) -> None:
        """Send one batch: from the spool first, then from memory; or note a drained flush."""
        with self._cond:
            spilled = self._spill_gen
        if check_spool and self._send_from_spool():
            return
        with self._cond:
            now = time.monotonic()
            flushing = self._flush_gen > self._drained_gen
            batch: list[_Item] = []
            if self._retry:
                batch = [
                    self._retry.popleft() for _ in range(min(self.batch_size, len(self._retry)))
                ]
            elif self._queue and (
                flushing
                or len(self._queue) >= self.batch_size
                or now >= self._first_queued + self.flush_interval
            ):
                batch = [
                    self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                ]
                self._first_queued = now
            elif (
                flushing
                and not self._queue
                and not self._backlog_count
                and self._spill_gen == spilled
            ):
                self._drained_gen = max(self._drained_gen, generation)
                self._cond.notify_all()
            self._inflight = batch
            self._inflight_spool = "none"
        if batch:
            try:
                self._deliver(self._wires(batch), False)
            finally:
                with self._cond:
                    self._inflight = []
                    self._inflight_spool = "none"
                    self._written_off = False

    def _send_from_spool(self) -> bool:
        """Claim and send one batch of spooled events; False when none was claimable."""
        assert self.spool is not None
        try:
            rows = self.spool.claim(self.batch_size, self._owner, self.lease_seconds)
        except Exception:  # noqa: BLE001 - memory delivery goes on without the spool
            warn_once(
                logger, "posthog_spool_read_failed", "posthog_spool_read_failed", exc_info=True
            )
            rows = []
        if len(rows) < self.batch_size:
            self._spool_due = False
            self._next_spool_poll = time.monotonic() + self.spool_poll_interval
        if not rows:
            return False
        self._deliver(rows, True)

        return True

    def _renewer(self, wires: list[dict[str, Any]]) -> Callable[[], None]:
        """Renews the claim on spooled rows before a request, when a quarter lease has passed."""
        spool, uuids = self.spool, [str(wire["uuid"]) for wire in wires]
        last = time.monotonic()

        def renew() -> None:
            nonlocal last
            now = time.monotonic()
            if spool is not None and now - last >= self.lease_seconds / 4:
                last = now
                spool.renew(uuids, self._owner, self.lease_seconds)

        return renew

    def _deliver(self, wires: list[dict[str, Any]], from_spool: bool) -> None:
        """Send a batch and settle it; an unexpected failure keeps the batch for later."""
        if not wires:
            return
        with self._cond:
            self._busy_since = time.monotonic()
            self._attempt_gen = self._flush_gen
            self._writer_cond.notify()
        try:
            outcome = self.transport.deliver(wires, self._renewer(wires) if from_spool else None)
        except Exception as error:  # keep the events, try again later
            logger.exception("posthog_delivery_error count=%s", len(wires))
            outcome = BatchOutcome(retry=list(wires), error=type(error).__name__)
        with self._cond:
            self._busy_since = 0.0
            # The writer may be writing this batch ahead; settle it once that is done.
            self._cond.wait_for(lambda: self._inflight_spool != "writing", _WRITER_JOIN * 5)
            leased = from_spool or self._inflight_spool == "written"
            written_off = self._written_off and not from_spool
        if written_off:
            logger.info(
                "posthog_batch_answered_after_shutdown sent=%s retry=%s (counted dropped)",
                len(outcome.sent),
                len(outcome.retry),
            )
            return
        self._settle(outcome, leased)
        if leased and not from_spool and outcome.retry:
            # Written ahead while in flight: after the failure the spool is where they wait.
            self.counters.add("spooled", len(outcome.retry))

    def _settle(self, outcome: BatchOutcome, leased: bool) -> None:
        """Count a batch's outcome and put its events where they belong.

        ``leased``: the batch's rows are in the spool, claimed by this process.
        """
        self.counters.add("sent", len(outcome.sent))
        self.counters.add("dropped", len(outcome.dropped))
        for event_uuid, reason in outcome.dropped:
            key = f"posthog_event_dropped:{reason.split(' ', 1)[0]}"
            level = logging.ERROR if first_time(key) else logging.DEBUG
            logger.log(level, "posthog_event_dropped uuid=%s reason=%s", event_uuid, reason)
        finished = outcome.sent + [event_uuid for event_uuid, _ in outcome.dropped]
        if self.spool is not None and finished and (leased or self._mirrored):
            self._quietly(self.spool.delete, finished)
        if not outcome.retry:
            if self._failures:
                logger.info("posthog_delivery_recovered failed_attempts=%s", self._failures)
            self._failures = 0
            self._server_wait = False
            return
        self.counters.add("retried", len(outcome.retry))
        if leased:
            assert self.spool is not None
            release = functools.partial(self.spool.release, owner=self._owner)
            self._quietly(release, [str(event["uuid"]) for event in outcome.retry])
            self._spool_due = True
        else:
            self._keep(outcome.retry)
        announced = self._report_setup_error(outcome)
        self._back_off(outcome, quiet=announced)

    def _report_setup_error(self, outcome: BatchOutcome) -> bool:
        """One message per process for a refused key, a host that is not PostHog's, or a host
        that cannot be reached; True when one was logged now."""
        kept = "" if self.spool is None else f" in the spool {self.spool.path}"
        host = self.transport.host
        if outcome.unreachable and first_time(f"posthog_unreachable:{host}"):
            logger.warning(
                "posthog_unreachable host=%s error=%s: no connection to PostHog; check "
                "POSTHOG_HOST (for example https://us.i.posthog.com) and the network. Events "
                "are kept%s and sent again.",
                host,
                outcome.error,
                kept or " in memory",
            )
            return True
        if outcome.unauthorized and first_time(f"posthog_unauthorized:{host}"):
            logger.error(
                "posthog_unauthorized host=%s: PostHog refused the project API key; set "
                "POSTHOG_API_KEY to the project key (phc_...) of the project, not a personal "
                "key (phx_). Events are kept%s and are delivered once the key is fixed and the "
                "process restarted.",
                host,
                kept,
            )
        if outcome.misdirected and first_time(f"posthog_misdirected:{host}"):
            logger.error(
                "posthog_wrong_host host=%s answer=%s: this is not a PostHog ingestion host; "
                "set POSTHOG_HOST (for example https://us.i.posthog.com). Events are kept%s.",
                host,
                outcome.error,
                kept,
            )

        return False

    def _quietly(self, action: Callable[[list[str]], object], uuids: list[str]) -> None:
        try:
            action(uuids)
        except Exception:  # noqa: BLE001 - a lease expires and a re-send is idempotent
            warn_once(
                logger, "posthog_spool_update_failed", "posthog_spool_update_failed", exc_info=True
            )

    def _keep(self, wires: list[dict[str, Any]]) -> None:
        """Keep failed events for a later attempt: in the spool, else in memory (bounded)."""
        if self.spool is not None:
            try:
                self.spool.put(wires)
            except Exception:  # noqa: BLE001 - fall back to memory
                warn_once(
                    logger,
                    "posthog_spool_write_failed",
                    "posthog_spool_write_failed",
                    exc_info=True,
                )
            else:
                self.counters.add("spooled", len(wires))
                self._spool_due = True
                return
        if self.closed:
            # Shutdown has already taken what memory held: nobody would send these.
            self.counters.add("dropped", len(wires))
            logger.error("posthog_events_dropped count=%s reason=failed_after_shutdown", len(wires))
            return
        with self._cond:
            self._retry.extend(wires)
            excess = len(self._retry) - self.max_queue
            for _ in range(max(0, excess)):
                self._retry.popleft()
        if excess > 0:
            self.counters.add("dropped", excess)
            warn_once(
                logger,
                "posthog_retry_overflow",
                "posthog_events_dropped count=%s reason=retry_queue_full max_queue=%s",
                excess,
                self.max_queue,
            )

    def _back_off(self, outcome: BatchOutcome, quiet: bool = False) -> None:
        """Count a failed attempt and wait before the next; ``quiet``: the failure was just
        reported in other words, so its warning goes to DEBUG."""
        failures = self._failures + 1
        if outcome.misdirected:
            delay = self.max_backoff
        else:
            delay = retry_delay(
                failures,
                self.base_backoff,
                self.max_backoff,
                outcome.retry_after,
                random.uniform(0.8, 1.2),
            )
        with self._cond:
            # Failing and the wait are seen together by ``pressure``.
            self._failures = failures
            self._server_wait = outcome.retry_after is not None
            self._backoff_until = time.monotonic() + delay
            # Flushes asked for before this attempt began may give up now.
            self._failed_gen = self._attempt_gen
            self._cond.notify_all()
            self._writer_cond.notify()
        level = logging.WARNING if failures == 1 and not quiet else logging.DEBUG
        logger.log(
            level,
            "posthog_batch_failed count=%s error=%s retry_in=%.2fs attempt=%s host=%s",
            len(outcome.retry),
            outcome.error,
            delay,
            failures,
            self.transport.host,
        )

    def _maybe_log(self) -> None:
        """Log the counters at INFO, at most once per ``log_interval`` and only on change."""
        now = time.monotonic()
        if now - self._last_log < self.log_interval:
            return
        self._last_log = now
        snapshot = self.counters.snapshot()
        if snapshot != self._last_logged:
            self._last_logged = snapshot
            logger.info("posthog_delivery %s", format_counters(snapshot))


def _reset_in_child(ref: weakref.ref[Engine]) -> None:
    engine = ref()
    if engine is not None:
        engine.after_fork_in_child()


def _at_exit(ref: weakref.ref[Engine]) -> None:
    engine = ref()
    if engine is not None:
        engine.at_exit()
