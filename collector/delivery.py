"""Delivery to PostHog in a process of its own, beside the one that receives OTLP.

Receiving (decoding, dialects, merging nested spans, events) and delivering (serialising,
gzip, HTTP, spool) each keep a core busy under load; in one Python process they would share
one. :class:`DeliveryProcess` runs the in-process exporter's own
:class:`~otel_bedrock.delivery.PostHogDelivery` in a child process and stands in for it in the
intake: ``send`` buffers, and a feeder thread passes the events to the child in chunks over a
pipe. The child answers each message with its delivery's pressure and counters, so
``pressure`` and ``counters`` cost the intake nothing; they are as of the last answer, at most
:data:`POLL_INTERVAL` old while no events flow. Messages are numbered and each answer names
the message it answers, so an answer that comes too late is recognised and set aside.

Nothing is lost between the two: a chunk stays in the parent until the child has answered
that it queued it, and a child that dies, or does not answer within :data:`ANSWER_TIMEOUT`,
is killed, started again and given the chunk again. The child ignores SIGINT and SIGTERM (the
collector's own shutdown tells it to stop); when the parent dies without a word, the pipe
closes and the child shuts its delivery down as usual: it delivers for ``shutdown_timeout``
and spools the rest (without a spool, the rest is counted dropped).

Known limits: events the child had queued but not yet delivered or spooled are lost when the
child itself is killed, and events still in the parent's buffer when the parent is killed (as
in one process, whose memory queue is lost with it).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import multiprocessing
import operator
import pickle
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from otel_bedrock._once import warn_once
from otel_bedrock.config import Settings
from otel_bedrock.delivery import Pressure
from otel_bedrock.delivery._counters import OUTCOMES
from otel_bedrock.errors import ConfigError
from otel_bedrock.events import CaptureEvent

logger = logging.getLogger(__name__)

CHUNK = 1_000
"""Events passed to the child in one message at most."""
POLL_INTERVAL = 0.25
"""Seconds between two looks at the child's state while no events flow."""
ANSWER_TIMEOUT = 30.0
"""Seconds the child has to answer a message about events; it takes them into its memory
queue, which takes milliseconds, so a child that has not answered by then is stuck."""
START_TIMEOUT = 60.0
"""Seconds the child gets to import and open its spool."""
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before each attempt to start a child in place of one that died (the last one
repeats)."""
_EXIT_GRACE = 10.0
"""Seconds the child gets beyond its delivery budget to answer ``shutdown`` and exit."""
_FIELDS = tuple(item.name for item in dataclasses.fields(CaptureEvent))
_as_tuple = operator.attrgetter(*_FIELDS)


@dataclass(frozen=True, slots=True)
class _State:
    """What the child answers to every message: which message, its delivery's pressure and
    counters, and for ``flush`` whether everything was delivered."""

    answers: int
    pressure: Pressure
    counters: dict[str, int]
    flushed: bool = True


class _Counters:
    """The child's delivery counters as of its last answer, plus those of children that died
    before it and events this process dropped itself; read like
    :class:`~otel_bedrock.delivery.DeliveryCounters`."""

    def __init__(self) -> None:
        zero = dict.fromkeys(OUTCOMES, 0)
        self._lock = threading.Lock()
        self._carried = dict(zero)
        self._current = dict(zero)

    def snapshot(self) -> dict[str, int]:
        """The current values, by outcome."""
        with self._lock:
            return {name: self._carried[name] + self._current[name] for name in OUTCOMES}

    def update(self, values: dict[str, int]) -> None:
        """Take the current child's counters."""
        with self._lock:
            self._current = values

    def child_ended(self) -> None:
        """Keep the counts of a child that ended; the next one starts from zero."""
        with self._lock:
            for name in OUTCOMES:
                self._carried[name] += self._current[name]
            self._current = dict.fromkeys(OUTCOMES, 0)

    def dropped(self, count: int) -> None:
        """Count events this process could not pass on."""
        with self._lock:
            self._carried["dropped"] += count


class DeliveryProcess:
    """A :class:`~otel_bedrock.delivery.PostHogDelivery` in a child process; satisfies
    :class:`~otel_bedrock.delivery.Delivery`.

    Threads: ``send``, ``pressure``, ``backlog`` and ``counters`` may be called from any
    thread and never wait for the child; ``flush`` and ``shutdown`` from any thread; one daemon
    feeder thread talks to the child. An exit handler shuts down a delivery that was not.

    Args:
        settings: The PostHog settings (key, host, prices, identity, spool, queue); the key
            must be set.
        batch_size: Events per request to PostHog.
        log_format: How the child writes its log lines (``json`` or ``console``).
        max_buffer: Events held in this process, waiting for the child, before ``pressure``
            reports ``full`` (new requests are refused; events of accepted ones still queue).
        spool_reserve_bytes: Passed to the child's ``PostHogDelivery``.

    Raises:
        ConfigError: when the child cannot open its spool.
        RuntimeError: when the child does not start for another reason.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        batch_size: int = 100,
        log_format: str = "json",
        max_buffer: int = 10_000,
        spool_reserve_bytes: int | None = None,
    ) -> None:
        self._settings = settings
        self._options = {"batch_size": batch_size, "spool_reserve_bytes": spool_reserve_bytes}
        self._log_format = log_format
        self._max_buffer = max_buffer
        self._context = multiprocessing.get_context("spawn")
        self._cond = threading.Condition()
        self._buffer: list[CaptureEvent] = []
        self._in_flight = 0
        self._closing = False
        self._conn_lock = threading.Lock()
        self._sent = 0  # messages sent to the current child
        self.counters = _Counters()
        self._state = _State(0, Pressure(False, 0.0, False), dict.fromkeys(OUTCOMES, 0))
        self._child_alive = False
        self._process, self._conn = self._start()
        self._feeder = threading.Thread(
            target=self._feed, name="otel-bedrock-delivery-feeder", daemon=True
        )
        self._feeder.start()
        # Before multiprocessing's own exit handler waits for the child: hand it what is
        # buffered and let it finish, or that wait would never end.
        atexit.register(self.shutdown)

    @property
    def pid(self) -> int | None:
        """The current child's process id."""
        return self._process.pid

    # -- the intake's side --------------------------------------------------------------------

    def send(self, event: CaptureEvent) -> None:
        """Queue one event for the child's delivery (never blocks); after ``shutdown`` it is
        counted dropped."""
        with self._cond:
            if self._closing:
                self.counters.dropped(1)
                warn_once(logger, "delivery_closed", "posthog_event_dropped reason=%s", "closed")
                return
            self._buffer.append(event)
            if len(self._buffer) == 1:
                self._cond.notify_all()

    def pressure(self) -> Pressure:
        """The child's pressure, with the events this process holds for the child counted
        against its ``room``; ``full`` also while this process holds ``max_buffer`` events or
        the child is being started again."""
        child = self._state.pressure
        with self._cond:
            waiting = len(self._buffer) + self._in_flight
        room = None if child.room is None else max(0, child.room - waiting)
        full = child.full or room == 0 or waiting >= self._max_buffer or not self._child_alive

        return Pressure(child.failing, child.retry_in, full, room)

    def backlog(self) -> tuple[int, int]:
        """Events waiting in this process, and events passed to the child that it has not yet
        said it queued."""
        with self._cond:
            return len(self._buffer), self._in_flight

    def flush(self, timeout_seconds: float = 10.0) -> bool:
        """Pass every buffered event to the child and have it deliver within the timeout.

        Returns:
            True when PostHog has every event; False otherwise (they wait, in either process).
        """
        deadline = time.monotonic() + timeout_seconds
        if not self._drained(deadline):
            return False
        if not self._conn_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return False
        try:
            remaining = max(0.0, deadline - time.monotonic())
            state = self._exchange(("flush", remaining), remaining)
        finally:
            self._conn_lock.release()

        return state is not None and state.flushed

    def shutdown(self, timeout_seconds: float | None = None) -> None:
        """Pass every buffered event to the child, have it deliver for what is left of
        ``timeout_seconds`` (by default the settings' ``shutdown_timeout``) and spool the rest,
        and wait for it to exit; a child that does not answer in time is killed."""
        budget = self._settings.shutdown_timeout if timeout_seconds is None else timeout_seconds
        deadline = time.monotonic() + max(0.0, budget)
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        atexit.unregister(self.shutdown)
        self._feeder.join(max(0.0, deadline - time.monotonic()))
        if not self._conn_lock.acquire(timeout=max(0.0, deadline - time.monotonic()) + 1.0):
            # The feeder waits for a stuck child: killing it ends the wait.
            logger.error("delivery_process_stuck pid=%s", self._process.pid)
            self._process.kill()
            self._conn_lock.acquire()
        try:
            with self._cond:
                leftover, self._buffer = self._buffer, []
            remaining = max(0.0, deadline - time.monotonic())
            message = ("shutdown", remaining, self._packed(leftover))
            if self._exchange(message, deadline + _EXIT_GRACE) is None and leftover:
                self.counters.dropped(len(leftover))
                logger.error(
                    "posthog_events_dropped count=%s reason=no_delivery_process", len(leftover)
                )
            self._process.join(_EXIT_GRACE)
            if self._process.is_alive():
                logger.error("delivery_process_stuck pid=%s", self._process.pid)
                self._process.kill()
                self._process.join(_EXIT_GRACE)
            self._conn.close()
        finally:
            self._conn_lock.release()

    # -- the feeder thread --------------------------------------------------------------------

    def _feed(self) -> None:
        """Pass buffered events to the child, and look at its state while none flow."""
        while True:
            with self._cond:
                if not self._buffer and not self._closing:
                    self._cond.wait(POLL_INTERVAL)
                if self._closing and not self._buffer:
                    return
                chunk = self._buffer[:CHUNK]
                self._in_flight = len(chunk)
                del self._buffer[:CHUNK]
            answered = False
            try:
                with self._conn_lock:
                    if chunk:
                        message = ("events", self._packed(chunk))
                        answered = self._exchange(message, ANSWER_TIMEOUT) is not None
                    else:
                        answered = self._exchange(("state",), ANSWER_TIMEOUT) is not None
            except Exception:  # the feeder must outlive any one failure
                logger.exception("delivery_feeder_failed events=%s", len(chunk))
                time.sleep(RESTART_DELAYS[0])
            finally:
                with self._cond:
                    if chunk and not answered:  # back to the front, for the next attempt
                        self._buffer[:0] = chunk
                    self._in_flight = 0
            if not answered and self._closing:
                return

    def _drained(self, deadline: float) -> bool:
        """Wait until the feeder has passed every buffered event on."""
        while self.backlog() != (0, 0):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

        return True

    def _packed(self, events: list[CaptureEvent]) -> list[tuple[Any, ...]]:
        """Events as tuples, which pickle several times faster than the slotted dataclass;
        property values pickle cannot take become their text, as PostHog would receive them,
        and an event that not even that makes picklable is counted dropped."""
        packed = [_as_tuple(event) for event in events]
        try:
            pickle.dumps(packed, pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - any object can refuse to be pickled
            packed = [plain for item in packed if (plain := self._picklable(item)) is not None]

        return packed

    def _picklable(self, item: tuple[Any, ...]) -> tuple[Any, ...] | None:
        try:
            pickle.dumps(item, pickle.HIGHEST_PROTOCOL)
            return item
        except Exception:  # noqa: BLE001
            pass
        index = _FIELDS.index("properties")
        try:
            properties = json.loads(json.dumps(item[index], default=str))
        except (TypeError, ValueError):
            self.counters.dropped(1)
            warn_once(
                logger, "delivery_unpicklable", "posthog_event_dropped reason=%s", "unserialisable"
            )
            return None

        return (*item[:index], properties, *item[index + 1 :])

    def _exchange(self, message: tuple[Any, ...], within: float) -> _State | None:
        """Send one message and wait ``within`` seconds for its answer (``_conn_lock`` held);
        a child that died or does not answer is killed and started again, and the message
        sent again. None when no answer came, or when shutdown began before a new child
        started."""
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        while True:
            try:
                self._conn.send_bytes(data)
                self._sent += 1
                state = self._answer(self._sent, within)
                if state is not None:
                    return state
                if message[0] in ("flush", "shutdown"):
                    return None  # the answer may come late; the next exchange sets it aside
                logger.error("delivery_process_unanswered pid=%s", self._process.pid)
                self._process.kill()
            except (EOFError, OSError):
                pass
            if not self._restart():
                return None

    def _answer(self, number: int, within: float) -> _State | None:
        """The answer to message ``number``, earlier answers set aside; None if it did not come
        in ``within`` seconds."""
        deadline = time.monotonic() + within
        while self._conn.poll(max(0.0, deadline - time.monotonic())):
            state: _State = self._conn.recv()
            self._state = state
            self.counters.update(state.counters)
            if state.answers == number:
                return state

        return None

    def _restart(self) -> bool:
        """Start a new child in place of one that died; False when shutdown began first."""
        self._child_alive = False
        self._process.join(1.0)
        self.counters.child_ended()
        self._conn.close()
        logger.error(
            "delivery_process_exited pid=%s exitcode=%s", self._process.pid, self._process.exitcode
        )
        for attempt in range(1_000_000):
            if self._closing:
                return False
            time.sleep(RESTART_DELAYS[min(attempt, len(RESTART_DELAYS) - 1)])
            try:
                self._process, self._conn = self._start()
                return True
            except (ConfigError, RuntimeError, OSError) as error:
                level = logging.ERROR if attempt < len(RESTART_DELAYS) else logging.DEBUG
                logger.log(level, "delivery_process_start_failed error=%s", error)

        return False

    def _start(self) -> tuple[BaseProcess, Connection]:
        """Start a child and wait until its delivery is ready."""
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_child,
            args=(theirs, self._settings, self._options, self._log_format),
            name="otel-bedrock-delivery",
            daemon=False,
        )
        process.start()
        theirs.close()
        try:
            if not ours.poll(START_TIMEOUT):
                raise RuntimeError(
                    f"otel-bedrock collector: the delivery process did not start within "
                    f"{START_TIMEOUT:.0f} s"
                )
            answer = ours.recv()
        except (EOFError, RuntimeError) as error:
            process.kill()
            process.join(_EXIT_GRACE)
            ours.close()
            if isinstance(error, RuntimeError):
                raise
            raise RuntimeError(
                f"otel-bedrock collector: the delivery process exited at start "
                f"(status {process.exitcode}); its log lines above say why"
            ) from None
        if isinstance(answer, str):
            process.join(_EXIT_GRACE)
            ours.close()
            raise ConfigError(answer)
        self._sent = 0
        self._state = answer
        self.counters.update(answer.counters)
        self._child_alive = True
        logger.info("delivery_process_started pid=%s", process.pid)

        return process, ours


def _child(conn: Connection, settings: Settings, options: dict[str, Any], log_format: str) -> None:
    """The child: a delivery fed from ``conn`` until ``shutdown`` or the end of input."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from collector.runtime import configure_logging, tune_gc
    from otel_bedrock.exporter import delivery_for, project_key

    configure_logging(log_format)
    try:
        delivery = delivery_for(project_key(settings), settings, **options)
    except ConfigError as error:
        conn.send(str(error))
        return
    except sqlite3.Error as error:
        conn.send(
            f"otel-bedrock configuration: OTEL_BEDROCK_SPOOL_PATH={settings.spool!r}: the spool "
            f"{settings.spool_path} cannot be opened: {error}"
        )
        return
    tune_gc()

    def take(events: list[tuple[Any, ...]]) -> None:
        for fields in events:
            try:
                delivery.send(CaptureEvent(*fields))
            except Exception:  # noqa: BLE001 - one bad event must not stop the others
                delivery.counters.add("dropped")
                warn_once(logger, "delivery_event_unusable", "posthog_event_dropped", exc_info=True)

    answered = 0  # messages of the parent so far; 0 is the answer that says ready

    def answer(flushed: bool = True) -> None:
        conn.send(_State(answered, delivery.pressure(), delivery.counters.snapshot(), flushed))

    answer()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            logger.warning("delivery_process_orphaned draining=%s", True)
            delivery.shutdown()
            return
        answered += 1
        kind = message[0]
        if kind == "events":
            take(message[1])
            answer()
        elif kind == "flush":
            answer(delivery.flush(message[1]))
        elif kind == "shutdown":
            take(message[2])
            delivery.shutdown(message[1])
            answer()
            return
        else:
            answer()
