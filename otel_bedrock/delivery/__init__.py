"""Delivery of events to PostHog that loses nothing quietly.

:class:`PostHogDelivery` is the public face; the machinery lives in private modules:

- ``_engine``: the bounded memory queue, the worker thread, backoff, flush, shutdown, fork;
- :mod:`~otel_bedrock.delivery.spool`: the SQLite spool shared by processes and restarts;
- :mod:`~otel_bedrock.delivery.transport`: one batch to PostHog and what its answer means;
- ``_counters``: :class:`DeliveryCounters`, the periodic log line and OpenTelemetry metrics.

For a serverless handler, deliver before the runtime freezes with one line at the end of the
handler: ``otel_bedrock.flush()``.

Known limit: events only in memory are lost when the process is killed with SIGKILL. While
PostHog answers, that is at most about ``flush_interval`` of events and the batch being sent.
While PostHog is failing, or while one request has taken longer than ``flush_interval`` (a
PostHog that accepts connections and does not answer), the spool writer moves the queue to the
spool every ``flush_interval`` and writes the batch in flight ahead, leased to this process
(after SIGKILL the next process sends it once the lease has run out), so again at most about
``flush_interval`` of events is only in memory. Events of a failed attempt are already in the
spool. Without a spool, an exit handler flushes for ``shutdown_timeout`` and counts what is
left as dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from otel_bedrock.delivery._counters import DeliveryCounters, observe
from otel_bedrock.delivery._engine import Engine, Pressure
from otel_bedrock.delivery.spool import DEFAULT_MAX_AGE_SECONDS, DEFAULT_MAX_BYTES, Spool
from otel_bedrock.delivery.transport import DEFAULT_MAX_EVENT_BYTES, Transport
from otel_bedrock.events import CaptureEvent

__all__ = ["Counters", "Delivery", "DeliveryCounters", "PostHogDelivery", "Pressure"]

logger = logging.getLogger(__name__)


class Counters(Protocol):
    """Events by outcome (see :class:`DeliveryCounters`)."""

    def snapshot(self) -> dict[str, int]:
        """The current values, by outcome."""
        ...


class Delivery(Protocol):
    """What the exporter and the collector need of a delivery.

    :class:`PostHogDelivery` is one; the collector's delivery in a child process is another.
    ``send``, ``pressure`` and ``counters`` are called on the exporting thread and must not
    wait for the network; ``flush`` and ``shutdown`` may be called from any thread.
    """

    @property
    def counters(self) -> Counters:
        """Events by outcome so far."""
        ...

    def send(self, event: CaptureEvent) -> None:
        """Queue one event."""
        ...

    def flush(self, timeout_seconds: float = 10.0) -> bool:
        """Deliver what is queued; True when PostHog has all of it in time."""
        ...

    def pressure(self) -> Pressure:
        """Whether delivery keeps up and has room."""
        ...

    def shutdown(self, timeout_seconds: float | None = None) -> None:
        """Deliver what is left for ``timeout_seconds``, keep the rest, stop."""
        ...


class PostHogDelivery:
    """Sends events to one PostHog project, through a memory queue and an optional disk spool.

    ``send`` is called on the span processor's export thread and never waits for the network;
    one daemon worker thread per process does the HTTP, and with a spool one daemon spool
    writer thread does the SQLite writes. ``flush`` and ``shutdown`` may be called from any
    thread. After ``fork()`` the child starts with an empty queue and zero counters, and shares
    the spool with its parent; a fork that runs no Python fork hooks (uWSGI's default) is
    noticed by its new process id on the next ``send``, ``flush`` or ``shutdown``.

    For processes whose tracer provider is never shut down, an interpreter-exit handler copies
    what memory still holds to the spool (keeping it queued), leased to this process so that
    no other process sends a copy while ``shutdown`` may still send the original, and gives
    back this process's claims on spooled rows; ``shutdown`` later deletes each copy as its
    event is delivered and gives back the lease on the rest. Without ``shutdown``, the next
    process with the spool sends the copies once the lease (``lease_seconds``) has run out.
    When the copy cannot be written, and without a spool, the exit handler flushes for
    ``shutdown_timeout`` and counts the rest as dropped.

    Args:
        api_key: The PostHog project API key.
        host: PostHog's ingestion host.
        spool_path: The SQLite spool file; None keeps everything in memory only.
        max_queue: Events held in memory; when it is full, the whole queue is handed to the
            spool writer, whose backlog holds up to ``max(2 * max_queue, 10 * batch_size)``
            events; beyond that, new events are dropped (counted and logged).
        batch_size: Events per request.
        flush_interval: Seconds a partial batch waits for more events.
        timeout: Seconds to wait for each HTTP answer.
        base_backoff: First wait after a failed attempt; it doubles per failure.
        max_backoff: Longest wait between attempts (unless PostHog's ``Retry-After`` asks more,
            up to five minutes).
        shutdown_timeout: Seconds ``shutdown`` tries to deliver before spooling the rest.
        spool_max_bytes: Size bound of the spool.
        spool_max_age_seconds: Age bound of the spool's rows.
        spool_reserve_bytes: Room kept free in the spool for events already on their way:
            ``pressure().full`` turns true when what the spool holds, with what memory holds,
            comes this close to ``spool_max_bytes`` (by default a tenth of it).
        max_event_bytes: Serialised size above which content fields are truncated.
        lease_seconds: How long a claim on spooled rows lasts; by default 4 × timeout + 10 s.
        spool_poll_interval: Seconds between looks at the spool for rows of other processes.
        log_interval: Least seconds between two ``posthog_delivery`` counter log lines.

    Raises:
        ValueError: when a numeric option is out of range.
        sqlite3.Error: when the spool file cannot be opened.
    """

    def __init__(
        self,
        api_key: str,
        host: str,
        *,
        spool_path: str | Path | None = None,
        max_queue: int = 10_000,
        batch_size: int = 100,
        flush_interval: float = 0.5,
        timeout: float = 15.0,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
        shutdown_timeout: float = 5.0,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        spool_max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        spool_reserve_bytes: int | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        lease_seconds: float | None = None,
        spool_poll_interval: float = 5.0,
        log_interval: float = 60.0,
    ) -> None:
        for name, value in (
            ("max_queue", max_queue),
            ("batch_size", batch_size),
            ("flush_interval", flush_interval),
            ("timeout", timeout),
            ("base_backoff", base_backoff),
            ("max_backoff", max_backoff),
            ("max_event_bytes", max_event_bytes),
            ("spool_poll_interval", spool_poll_interval),
            ("log_interval", log_interval),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must not be negative, got {shutdown_timeout}")
        if spool_reserve_bytes is not None and not 0 <= spool_reserve_bytes < spool_max_bytes:
            raise ValueError(
                f"spool_reserve_bytes must be from 0 to below spool_max_bytes "
                f"({spool_max_bytes}), got {spool_reserve_bytes}"
            )
        self.host = host
        self.shutdown_timeout = shutdown_timeout
        self.counters = DeliveryCounters()
        self.spool = (
            None
            if spool_path is None
            else Spool(spool_path, max_bytes=spool_max_bytes, max_age_seconds=spool_max_age_seconds)
        )
        transport = Transport(api_key, host, timeout=timeout, max_event_bytes=max_event_bytes)
        self._engine = Engine(
            transport,
            self.spool,
            self.counters,
            max_queue=max_queue,
            batch_size=batch_size,
            flush_interval=flush_interval,
            base_backoff=base_backoff,
            max_backoff=max_backoff,
            lease_seconds=4 * timeout + 10 if lease_seconds is None else lease_seconds,
            spool_poll_interval=spool_poll_interval,
            log_interval=log_interval,
            exit_timeout=shutdown_timeout,
            spool_reserve=spool_reserve_bytes,
        )
        observe()
        logger.info("posthog_delivery_ready host=%s spool=%s", host, spool_path)

    def send(self, event: CaptureEvent) -> None:
        """Queue one event for delivery (export thread; never blocks on the network)."""
        self._engine.send(event)

    def flush(self, timeout_seconds: float = 10.0) -> bool:
        """Deliver what memory holds, and what the spool holds, within ``timeout_seconds``.

        Returns early, with False, when an attempt during the flush failed and everything
        memory held is in the spool.

        Returns:
            True when everything was delivered in time; False otherwise (events wait).
        """
        return self._engine.flush(timeout_seconds)

    def pressure(self) -> Pressure:
        """Whether PostHog is failing, when the next attempt is due, and whether new events
        still have room (spool, or without one the memory queue); cheap, any thread.

        A service that receives events from others (the collector) refuses more while ``full``
        is true, asking its clients to come back after ``retry_in`` (at least a second).
        """
        return self._engine.pressure()

    def shutdown(self, timeout_seconds: float | None = None) -> None:
        """Flush for ``timeout_seconds`` (by default ``shutdown_timeout``), spool what is
        left, log the counters, stop.

        Without a spool, a batch PostHog has not answered by then is counted dropped.
        """
        budget = self.shutdown_timeout if timeout_seconds is None else max(0.0, timeout_seconds)
        self._engine.shutdown(budget)
