"""The delivery engine: a bounded memory queue, one worker thread, the spool, and fork safety.

``send`` runs on the span processor's export thread and only takes a lock to append to the
queue; when the queue is full it writes the event to the spool. The worker thread sends
batches: first what the spool holds (oldest first), then events that failed without a spool,
then the queue. A batch that fails for a reason that may pass (5xx, 429, 401, network) goes
to the spool at once, and the worker backs off exponentially with jitter, or as long as
PostHog's ``Retry-After`` asks.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import random
import threading
import time
import uuid
import weakref
from collections import deque
from typing import Any

from otel_bedrock._once import first_time, warn_once
from otel_bedrock.delivery._counters import DeliveryCounters, format_counters
from otel_bedrock.delivery.spool import Spool
from otel_bedrock.delivery.transport import BatchOutcome, Transport, to_wire
from otel_bedrock.events import CaptureEvent

logger = logging.getLogger(__name__)

_Item = CaptureEvent | dict[str, Any]


def _as_wire(item: _Item) -> dict[str, Any]:
    return item if isinstance(item, dict) else to_wire(item)


class Engine:
    """Queue, worker and spool of one delivery; see :class:`PostHogDelivery` for the options."""

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
    ) -> None:
        self.transport = transport
        self.spool = spool
        self.counters = counters
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.lease_seconds = lease_seconds
        self.spool_poll_interval = spool_poll_interval
        self.log_interval = log_interval
        self.closed = False
        if spool is not None:
            spool.on_evict = functools.partial(counters.add, "evicted")
            atexit.register(_mirror_at_exit, weakref.ref(self))
        self._reset()
        os.register_at_fork(after_in_child=functools.partial(_reset_in_child, weakref.ref(self)))

    def _reset(self) -> None:
        """Fresh state: used at construction and in a forked child."""
        self._cond = threading.Condition()
        self._queue: deque[CaptureEvent] = deque()
        self._retry: deque[dict[str, Any]] = deque()
        self._inflight: list[_Item] = []
        self._first_queued = 0.0
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._failures = 0
        self._backoff_until = 0.0
        self._server_wait = False
        self._spool_due = self.spool is not None
        self._next_spool_poll = 0.0
        self._flush_gen = 0
        self._drained_gen = 0
        self._mirrored = False
        self._last_log = time.monotonic()
        self._last_logged = self.counters.snapshot()

    def after_fork_in_child(self) -> None:
        """Start empty in a forked child: the parent keeps (and sends) what it had queued."""
        self.counters.reset_after_fork()
        if self.spool is not None:
            self.spool.after_fork()
        self.transport.after_fork()
        self._reset()

    # -- the export thread ------------------------------------------------------------------

    def send(self, event: CaptureEvent) -> None:
        """Queue one event, or spool it when the queue is full; never waits for I/O."""
        if not self.closed:
            with self._cond:
                if self._worker is None:
                    self._start_worker()
                size = len(self._queue)
                if size < self.max_queue:
                    self._queue.append(event)
                    if size == 0:
                        self._first_queued = time.monotonic()
                        self._cond.notify()
                    elif size + 1 == self.batch_size:
                        self._cond.notify()
                    return
        self._overflow(event)

    def _overflow(self, event: CaptureEvent) -> None:
        """Write an event that found no room in memory to the spool, or count it dropped."""
        reason = "closed" if self.closed else "queue_full"
        if self.spool is None:
            self.counters.add("dropped")
            warn_once(
                logger,
                f"posthog_event_dropped:{reason}",
                "posthog_event_dropped reason=%s max_queue=%s uuid=%s; no spool is configured",
                reason,
                self.max_queue,
                event.uuid,
            )
            return
        try:
            self.spool.put([to_wire(event)])
        except Exception:  # noqa: BLE001 - the export thread must go on
            self.counters.add("dropped")
            warn_once(
                logger,
                "posthog_spool_write_failed",
                "posthog_event_dropped reason=spool_write_failed path=%s uuid=%s",
                self.spool.path,
                event.uuid,
                exc_info=True,
            )
            return
        self.counters.add("spooled")
        self._spool_due = True
        warn_once(
            logger,
            f"posthog_event_spooled:{reason}",
            "posthog_event_spooled reason=%s max_queue=%s path=%s",
            reason,
            self.max_queue,
            self.spool.path,
        )

    # -- flush and shutdown (any thread) ----------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait until memory is sent and the spool offered nothing more, or ``timeout`` passed."""
        with self._cond:
            if self.closed:
                return not self._queue and not self._retry
            if self._worker is None:
                self._start_worker()
            self._flush_gen += 1
            generation = self._flush_gen
            if not self._server_wait:
                # Try now, once, rather than wait out a backoff the flush did not cause.
                self._backoff_until = min(self._backoff_until, time.monotonic())
            self._cond.notify_all()

            return self._cond.wait_for(lambda: self._drained_gen >= generation, timeout)

    def shutdown(self, timeout: float) -> None:
        """Flush for ``timeout``, stop the worker, and spool what is left in memory."""
        if self.closed:
            return
        delivered = self.flush(timeout)
        with self._cond:
            self.closed = True
            self._stopping = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=0.5)
        busy = worker is not None and worker.is_alive()
        with self._cond:
            # A batch still in flight is spooled too; if it succeeds later, its rows go.
            self._mirrored = self._mirrored or busy
            left = [*self._retry, *(self._inflight if busy else []), *self._queue]
            self._retry.clear()
            self._queue.clear()
        if left:
            self._spool_leftovers([_as_wire(item) for item in left])
        if self.spool is not None and not busy:
            self.spool.close()
        logger.info(
            "posthog_delivery_stopped delivered=%s host=%s %s",
            delivered,
            self.transport.host,
            format_counters(self.counters.snapshot()),
        )

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

    def mirror_to_spool(self) -> None:
        """Copy what memory holds to the spool, keeping it queued (at interpreter exit).

        If the process ends without ``shutdown``, the next process with the spool sends the
        copies; if ``shutdown`` follows, each copy is deleted as its event is delivered.
        """
        if self.closed or self.spool is None:
            return
        with self._cond:
            items = [*self._retry, *self._inflight, *self._queue]
            self._mirrored = True
        if items:
            try:
                self.spool.put([_as_wire(item) for item in items])
            except Exception:  # best effort at exit
                logger.debug("posthog_spool_mirror_failed", exc_info=True)

    # -- the worker thread ------------------------------------------------------------------

    def _start_worker(self) -> None:
        """Start the worker (with ``_cond`` held)."""
        self._worker = threading.Thread(
            target=self._run, name="otel-bedrock-posthog-delivery", daemon=True
        )
        self._worker.start()

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
        log_due = self._last_log + self.log_interval
        if now < self._backoff_until:
            self._cond.wait(min(self._backoff_until, log_due) - now)
            return False, False, 0
        flushing = self._flush_gen > self._drained_gen
        spool_due = self.spool is not None and (self._spool_due or now >= self._next_spool_poll)
        batch_due = len(self._queue) >= self.batch_size or (
            bool(self._queue) and now >= self._first_queued + self.flush_interval
        )
        if flushing or spool_due or batch_due or self._retry:
            return True, self.spool is not None and (flushing or spool_due), self._flush_gen
        deadline = log_due
        if self._queue:
            deadline = min(deadline, self._first_queued + self.flush_interval)
        if self.spool is not None:
            deadline = min(deadline, self._next_spool_poll)
        self._cond.wait(max(0.0, deadline - now))

        return False, False, 0

    def _step(self, check_spool: bool, generation: int) -> None:
        """Send one batch: from the spool first, then from memory; or note a drained flush."""
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
            elif flushing and not self._queue:
                self._drained_gen = max(self._drained_gen, generation)
                self._cond.notify_all()
            self._inflight = batch
        if batch:
            try:
                self._settle(self.transport.deliver([_as_wire(item) for item in batch]), False)
            finally:
                with self._cond:
                    self._inflight = []

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
        self._settle(self.transport.deliver(rows), True)

        return True

    def _settle(self, outcome: BatchOutcome, from_spool: bool) -> None:
        """Count a batch's outcome and put its events where they belong."""
        self.counters.add("sent", len(outcome.sent))
        self.counters.add("dropped", len(outcome.dropped))
        for event_uuid, reason in outcome.dropped:
            logger.error("posthog_event_dropped uuid=%s reason=%s", event_uuid, reason)
        finished = outcome.sent + [event_uuid for event_uuid, _ in outcome.dropped]
        if self.spool is not None and finished and (from_spool or self._mirrored):
            self._quietly(self.spool.delete, finished)
        if not outcome.retry:
            if self._failures:
                logger.info("posthog_delivery_recovered failed_attempts=%s", self._failures)
            self._failures = 0
            self._server_wait = False
            return
        self.counters.add("retried", len(outcome.retry))
        if from_spool:
            assert self.spool is not None
            release = functools.partial(self.spool.release, owner=self._owner)
            self._quietly(release, [str(event["uuid"]) for event in outcome.retry])
        else:
            self._keep(outcome.retry)
        if outcome.unauthorized and first_time(f"posthog_unauthorized:{self.transport.host}"):
            logger.error(
                "posthog_unauthorized host=%s: PostHog refused the project API key; set "
                "POSTHOG_API_KEY to the project key (phc_...) of the project, not a personal "
                "key (phx_). Events are kept%s and are delivered once the key is fixed and the "
                "process restarted.",
                self.transport.host,
                "" if self.spool is None else f" in the spool {self.spool.path}",
            )
        self._back_off(outcome)

    def _quietly(self, action: Any, uuids: list[str]) -> None:
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
                self._spool_due = True
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

    def _back_off(self, outcome: BatchOutcome) -> None:
        self._failures += 1
        if outcome.retry_after is not None and outcome.retry_after >= 0:
            delay = outcome.retry_after
            self._server_wait = True
        else:
            delay = self.base_backoff * 2 ** min(self._failures - 1, 30)
            delay = min(self.max_backoff, delay * random.uniform(0.8, 1.2))
            self._server_wait = False
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        logger.log(
            level,
            "posthog_batch_failed count=%s error=%s retry_in=%.2fs attempt=%s host=%s",
            len(outcome.retry),
            outcome.error,
            delay,
            self._failures,
            self.transport.host,
        )
        with self._cond:
            self._backoff_until = time.monotonic() + delay

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


def _mirror_at_exit(ref: weakref.ref[Engine]) -> None:
    engine = ref()
    if engine is not None:
        engine.mirror_to_spool()
