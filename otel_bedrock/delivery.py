"""Delivery of PostHog events through the ``posthog`` client.

:class:`PostHogDelivery` owns one ``posthog.Posthog`` client: its consumer thread batches events
and sends them with gzip; :meth:`PostHogDelivery.flush` and :meth:`PostHogDelivery.shutdown`
drain it. Counters say what was queued, sent and lost.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass
from typing import Any

from posthog import Posthog
from posthog.utils import system_context

from otel_bedrock._once import warn_once
from otel_bedrock.events import CaptureEvent

logger = logging.getLogger(__name__)


@dataclass
class DeliveryCounters:
    """How many events were handed over, refused by the local queue, and failed to send."""

    queued: int = 0
    refused: int = 0
    failed_batches: int = 0


class _Client(Posthog):
    """The ``posthog`` client, with its system context read once instead of per event.

    The stock client asks the OS for its name and version on every capture (about 100 µs
    on Linux), on our export thread, competing with the application for the GIL. The answer
    cannot change while the process runs. Context tags of ``posthog.contexts`` are not
    added: on the export thread they would be unrelated to the call anyway.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._system_context = system_context()

    def _capture_properties(self, properties: dict[str, Any] | None) -> dict[str, Any]:
        return {**(properties or {}), **self._system_context}


class PostHogDelivery:
    """Sends events to one PostHog project.

    ``send`` is called on the exporter's thread; the client's consumer thread does the HTTP.
    """

    def __init__(
        self,
        api_key: str,
        host: str,
        *,
        flush_interval: float = 0.5,
        flush_at: int = 100,
        max_queue_size: int = 10_000,
        timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.counters = DeliveryCounters()
        self._lock = threading.Lock()
        self._client = _Client(
            api_key,
            host=host,
            gzip=True,
            flush_at=flush_at,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            timeout=timeout,
            on_error=self._on_error,
            disable_geoip=True,
            enable_local_evaluation=False,
        )
        # The client's own exit handler stops it with a one-second flush, and runs before the
        # tracer provider's (handlers run last-registered first), so spans exported at exit
        # would find it closed. Flush at exit instead; the provider's shutdown then calls
        # ours, which stops the client once everything was handed over.
        atexit.unregister(self._client._atexit)
        atexit.register(self.flush)

    def send(self, event: CaptureEvent) -> None:
        """Queue one event for delivery."""
        accepted = self._client.capture(
            event.event,
            distinct_id=event.distinct_id,
            properties=event.properties,
            timestamp=event.timestamp,
            uuid=event.uuid,
        )
        with self._lock:
            if accepted is None:
                self.counters.refused += 1
            else:
                self.counters.queued += 1
        if accepted is None:
            warn_once(
                logger,
                "posthog_event_refused",
                "posthog_event_refused event=%s uuid=%s refused_so_far=%s; the client's queue "
                "is full or closed",
                event.event,
                event.uuid,
                self.counters.refused,
            )

    def flush(self, timeout_seconds: float = 10.0) -> bool:
        """Block until queued events are sent or ``timeout_seconds`` pass.

        Returns False when events were still queued at the deadline.
        """
        self._client.flush(timeout_seconds)

        return self._client.queue.unfinished_tasks == 0

    def shutdown(self) -> None:
        """Send what is queued and stop the client's threads."""
        atexit.unregister(self.flush)
        self._client.shutdown()

    def _on_error(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        with self._lock:
            self.counters.failed_batches += 1
        logger.error("posthog_batch_failed count=%s error=%s host=%s", len(batch), error, self.host)
