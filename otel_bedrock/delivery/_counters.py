"""Delivery counters, their periodic log line and their OpenTelemetry metrics."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

from opentelemetry import metrics

OUTCOMES = ("sent", "retried", "spooled", "evicted", "dropped")


class DeliveryCounters:
    """Events by outcome since the delivery started (or since ``fork()`` in a child).

    - ``sent``: accepted by PostHog.
    - ``retried``: an attempt failed (5xx, 429, 401, network); counted once per failed attempt.
    - ``spooled``: moved from memory to the spool: queue full, PostHog failing, or shutdown.
    - ``evicted``: removed from the spool by its size or age bound, never sent.
    - ``dropped``: lost: refused by PostHog for good, too large, or with nowhere to go.

    Thread-safe: read and incremented from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(OUTCOMES, 0)
        self._pid = os.getpid()

    def reset_after_fork(self) -> None:
        """Start from zero with a new lock (in a forked child: the parent counts its own)."""
        self._lock = threading.Lock()
        self._values = dict.fromkeys(OUTCOMES, 0)
        self._pid = os.getpid()

    def add(self, outcome: str, count: int = 1) -> None:
        """Add ``count`` events to an outcome (and to the process's totals)."""
        if count:
            with self._lock:
                self._values[outcome] += count
            if self is not _process_totals:
                _process_totals.add(outcome, count)

    def snapshot(self) -> dict[str, int]:
        """The current values, by outcome."""
        with self._lock:
            return dict(self._values)

    @property
    def sent(self) -> int:
        """Events PostHog accepted."""
        return self._values["sent"]

    @property
    def retried(self) -> int:
        """Events whose attempt failed and that wait for another."""
        return self._values["retried"]

    @property
    def spooled(self) -> int:
        """Events written to the spool from memory (queue full, shutdown)."""
        return self._values["spooled"]

    @property
    def evicted(self) -> int:
        """Events the spool's bounds removed."""
        return self._values["evicted"]

    @property
    def dropped(self) -> int:
        """Events lost."""
        return self._values["dropped"]

    def __repr__(self) -> str:
        return f"DeliveryCounters({format_counters(self.snapshot())})"


def format_counters(values: dict[str, int]) -> str:
    """``sent=.. retried=.. spooled=.. evicted=.. dropped=..``."""
    return " ".join(f"{name}={values[name]}" for name in OUTCOMES)


_process_totals = DeliveryCounters()
"""Every delivery of this process added up, those already collected included, so that the
metric never goes down."""
os.register_at_fork(after_in_child=_process_totals.reset_after_fork)
_instrument_lock = threading.Lock()


def reset_if_forked() -> None:
    """Reset the process's totals in a child forked without Python's fork hooks."""
    if _process_totals._pid != os.getpid():
        _process_totals.reset_after_fork()


_instrumented = False


def _observe(_options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    for name, value in _process_totals.snapshot().items():
        yield metrics.Observation(value, {"outcome": name})


def observe() -> None:
    """Report the process's delivery counters as ``otel_bedrock.delivery.events{outcome}``.

    One observable counter per process sums every delivery it ever ran; safe to call again.
    Without a meter provider the API's no-op (or proxy) meter makes this free.
    """
    global _instrumented
    with _instrument_lock:
        if _instrumented:
            return
        _instrumented = True
    meter = metrics.get_meter("otel_bedrock.delivery")
    meter.create_observable_counter(
        "otel_bedrock.delivery.events",
        callbacks=[_observe],
        unit="{event}",
        description="PostHog events by delivery outcome",
    )
