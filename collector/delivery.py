"""Delivery to PostHog in a process of its own, beside the one that receives OTLP.

Receiving (decoding, dialects, merging nested spans, events) and delivering (serialising,
gzip, HTTP, spool) each keep a core busy under load; in one Python process they would share
one. :class:`DeliveryProcess` runs the in-process exporter's own
:class:`~otel_bedrock.delivery.PostHogDelivery` in a child process and stands in for it in the
intake: ``send`` buffers, and a feeder thread passes the events to the child in chunks over a
pipe. The child answers each chunk with its delivery's pressure and counters, so ``pressure``
and ``counters`` cost the intake nothing; they are as of the last answer, at most
:data:`POLL_INTERVAL` old while no events flow.

Nothing is lost between the two: a chunk stays in the parent until the child has queued it,
and a child that dies is started again and given the chunk again. The child ignores SIGINT
and SIGTERM (the collector's own shutdown tells it to stop); when the parent dies without a
word, the pipe closes and the child shuts its delivery down as usual: it delivers for
``shutdown_timeout`` and spools the rest.

Known limit: events the child had queued but not yet delivered or spooled are lost when the
child itself is killed (as they would be in one process).
"""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing
import pickle
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

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
START_TIMEOUT = 60.0
"""Seconds the child gets to import and open its spool."""
RESTART_DELAY = 1.0
"""Seconds before a child that died is started again."""
_EXIT_GRACE = 10.0
"""Seconds the child gets beyond its delivery budget to answer ``shutdown`` and exit."""


@dataclass(frozen=True, slots=True)
class _State:
    """What the child answers to every message."""

    pressure: Pressure
    counters: dict[str, int]
    flushed: bool = True


@dataclass(slots=True)
class _Counters:
    """The child's delivery counters as of its last answer, plus those of children that
    died before it; ``snapshot`` as on :class:`~otel_bedrock.delivery.DeliveryCounters`."""

    values: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    carried: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    def snapshot(self) -> dict[str, int]:
        return {name: self.carried[name] + value for name, value in self.values.items()}


class DeliveryProcess:
    """A :class:`~otel_bedrock.delivery.PostHogDelivery` in a child process; satisfies
    :class:`~otel_bedrock.delivery.Delivery`.

    Args:
        settings: The PostHog settings (key, host, prices, identity, spool, queue); the key
            must be set.
        batch_size: Events per request to PostHog.
        log_format: How the child writes its log lines (``json`` or ``console``).
        max_buffer: Events held in this process, waiting for the child, before ``pressure``
            reports ``full`` (new requests are refused; events of accepted ones still queue).

    Raises:
        ConfigError: when the child cannot start its delivery (the spool cannot be opened).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        batch_size: int = 100,
        log_format: str = "json",
        max_buffer: int = 10_000,
    ) -> None:
        self._settings = settings
        self._batch_size = batch_size
        self._log_format = log_format
        self._max_buffer = max_buffer
        self._context = multiprocessing.get_context("spawn")
        self._cond = threading.Condition()
        self._buffer: list[CaptureEvent] = []
        self._in_flight = 0
        self._closing = False
        self._closed = False
        self._conn_lock = threading.Lock()
        self.counters = _Counters()
        self._state = _State(Pressure(False, 0.0, False), self.counters.snapshot())
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
        """Queue one event for the child's delivery (never blocks)."""
        with self._cond:
            self._buffer.append(event)
            if len(self._buffer) == 1:
                self._cond.notify_all()

    def pressure(self) -> Pressure:
        """The child's pressure, ``full`` also while this process holds ``max_buffer`` events
        or the child is being started again."""
        state = self._state
        waiting = len(self._buffer) + self._in_flight
        if state.pressure.full or waiting >= self._max_buffer or not self._child_alive:
            return Pressure(state.pressure.failing, state.pressure.retry_in, True)

        return state.pressure

    def flush(self, timeout_seconds: float = 10.0) -> bool:
        """Pass every buffered event to the child and have it deliver within the timeout."""
        deadline = time.monotonic() + timeout_seconds
        if not self._drained(deadline):
            return False
        state = self._exchange(("flush", max(0.0, deadline - time.monotonic())), deadline)

        return state is not None and state.flushed

    def shutdown(self, timeout_seconds: float | None = None) -> None:
        """Pass every buffered event to the child, have it deliver for what is left of
        ``timeout_seconds`` and spool the rest, and wait for it to exit."""
        budget = self._settings.shutdown_timeout
        deadline = time.monotonic() + (budget if timeout_seconds is None else timeout_seconds)
        with self._cond:
            if self._closed:
                return
            self._closing = True
            self._cond.notify_all()
        self._feeder.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._closed = True
            leftover, self._buffer = self._buffer, []
        remaining = max(0.0, deadline - time.monotonic())
        message = ("shutdown", remaining, _packed(leftover))
        if self._exchange(message, deadline + _EXIT_GRACE) is None:
            logger.error("delivery_process_unanswered events=%s", len(leftover))
        self._process.join(_EXIT_GRACE)
        if self._process.is_alive():
            logger.error("delivery_process_stuck pid=%s", self._process.pid)
            self._process.kill()
            self._process.join(_EXIT_GRACE)
        self._conn.close()
        atexit.unregister(self.shutdown)

    # -- the feeder thread --------------------------------------------------------------------

    def _feed(self) -> None:
        while True:
            with self._cond:
                if not self._buffer and not self._closing:
                    self._cond.wait(POLL_INTERVAL)
                if self._closing and not self._buffer:
                    return
                chunk = self._buffer[:CHUNK]
                del self._buffer[:CHUNK]
                self._in_flight = len(chunk)
            try:
                message = ("events", _packed(chunk)) if chunk else ("state",)
                if self._exchange(message, None) is None:
                    with self._cond:  # stopping with no child: shutdown takes them back
                        self._buffer[:0] = chunk
                    return
            finally:
                self._in_flight = 0

    def _drained(self, deadline: float) -> bool:
        """Wait until the feeder has passed every buffered event on."""
        while self._buffer or self._in_flight:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

        return True

    def _exchange(self, message: tuple[Any, ...], deadline: float | None) -> _State | None:
        """Send one message and wait for the child's answer, starting a new child (and sending
        again) when it died. None when no answer came by ``deadline``."""
        data = _dumps(message)
        with self._conn_lock:
            while True:
                try:
                    self._conn.send_bytes(data)
                    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                    if wait is not None and not self._conn.poll(wait):
                        return None
                    state: _State = self._conn.recv()
                except (EOFError, OSError):
                    if not self._restart():
                        return None
                    continue
                self._state = state
                self.counters.values = state.counters

                return state

    def _restart(self) -> bool:
        """Start a new child in place of one that died; False when shutdown began first."""
        self._child_alive = False
        counters = self.counters
        for name in OUTCOMES:
            counters.carried[name] += counters.values[name]
        counters.values = dict.fromkeys(OUTCOMES, 0)
        self._process.join(1.0)
        logger.error(
            "delivery_process_exited pid=%s exitcode=%s restarting=true",
            self._process.pid,
            self._process.exitcode,
        )
        self._conn.close()
        while True:
            time.sleep(RESTART_DELAY)
            try:
                self._process, self._conn = self._start()
                return True
            except ConfigError as error:
                logger.error("delivery_process_start_failed error=%s", error)
            if self._closing:
                return False

    def _start(self) -> tuple[BaseProcess, Connection]:
        """Start a child and wait until its delivery is ready."""
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_child,
            args=(theirs, self._settings, self._batch_size, self._log_format),
            name="otel-bedrock-delivery",
            daemon=False,
        )
        process.start()
        theirs.close()
        if not ours.poll(START_TIMEOUT):
            process.kill()
            raise ConfigError("otel-bedrock collector: the delivery process did not start")
        try:
            answer = ours.recv()
        except EOFError:
            process.join(1.0)
            raise ConfigError(
                f"otel-bedrock collector: the delivery process exited ({process.exitcode})"
            ) from None
        if isinstance(answer, str):
            process.join(_EXIT_GRACE)
            raise ConfigError(answer)
        self._state = answer
        self.counters.values = answer.counters
        self._child_alive = True
        logger.info("delivery_process_started pid=%s", process.pid)

        return process, ours


def _packed(events: list[CaptureEvent]) -> list[tuple[Any, ...]]:
    """Events as tuples, which pickle several times faster than the slotted dataclass."""
    return [
        (event.event, event.distinct_id, event.properties, event.uuid, event.timestamp)
        for event in events
    ]


def _dumps(message: tuple[Any, ...]) -> bytes:
    """A message pickled; property values pickle cannot take are sent as their text, as
    PostHog would receive them."""
    try:
        return pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - any object can refuse to be pickled
        *head, events = message
        plain = [
            (name, distinct_id, json.loads(json.dumps(properties, default=str)), uuid, timestamp)
            for name, distinct_id, properties, uuid, timestamp in events
        ]

        return pickle.dumps((*head, plain), pickle.HIGHEST_PROTOCOL)


def _child(conn: Connection, settings: Settings, batch_size: int, log_format: str) -> None:
    """The child: a delivery fed from ``conn`` until ``shutdown`` or the end of input."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from collector.cli import configure_logging, tune_gc
    from otel_bedrock.exporter import delivery_for, project_key

    configure_logging(log_format)
    try:
        delivery = delivery_for(project_key(settings), settings, batch_size=batch_size)
    except Exception as error:  # noqa: BLE001 - the parent reports it and exits
        conn.send(f"otel-bedrock collector: the delivery cannot start: {error}")
        return
    tune_gc()

    def take(events: list[tuple[Any, ...]]) -> None:
        for fields in events:
            delivery.send(CaptureEvent(*fields))

    def state(flushed: bool = True) -> _State:
        return _State(delivery.pressure(), delivery.counters.snapshot(), flushed)

    conn.send(state())
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            logger.warning("delivery_process_orphaned draining=true")
            delivery.shutdown()
            return
        kind = message[0]
        if kind == "events":
            take(message[1])
            conn.send(state())
        elif kind == "flush":
            conn.send(state(delivery.flush(message[1])))
        elif kind == "shutdown":
            take(message[2])
            delivery.shutdown(message[1])
            conn.send(state())
            return
        else:
            conn.send(state())
