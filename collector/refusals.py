"""Refused requests: how each is answered on both transports, the rate limit, and their log.

A refusal is an HTTP status; OTLP/gRPC answers the matching code. Retryable refusals carry a
delay: ``Retry-After`` in whole seconds over HTTP, a ``google.rpc.RetryInfo`` over gRPC. The
two google.rpc messages are encoded by hand here: the collector needs a few fields only, and
googleapis-common-protos is not one of its dependencies.

Everything here is used from the event loop's thread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import grpc  # type: ignore[import-untyped]
import structlog

logger = structlog.get_logger("collector")

LOG_INTERVAL = 10.0
"""Least seconds between two log lines about refused requests of one kind."""
RETRY_INFO_TYPE_URL = "type.googleapis.com/google.rpc.RetryInfo"

# Reason (for logs and metrics) and gRPC code of each refusal, by HTTP status.
_REFUSALS = {
    400: ("malformed_body", grpc.StatusCode.INVALID_ARGUMENT),
    401: ("unauthenticated", grpc.StatusCode.UNAUTHENTICATED),
    408: ("body_timeout", grpc.StatusCode.DEADLINE_EXCEEDED),
    413: ("too_large", grpc.StatusCode.RESOURCE_EXHAUSTED),
    415: ("unsupported_media_type", grpc.StatusCode.INVALID_ARGUMENT),
    429: ("rate_limited", grpc.StatusCode.RESOURCE_EXHAUSTED),
    503: ("unavailable", grpc.StatusCode.UNAVAILABLE),
}


class Refused(Exception):
    """A request answered with an error.

    Attributes:
        status: The HTTP status; :attr:`grpc_code` is the gRPC equivalent.
        message: What went wrong, for the client (never logged: it may quote the client).
        retry_after: Seconds the client should wait before sending again; None when the
            same request must not be sent again.
    """

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        """A fixed word for logs: ``malformed_body``, ``rate_limited``..."""
        return _REFUSALS.get(self.status, ("refused", None))[0]

    @property
    def grpc_code(self) -> grpc.StatusCode:
        """The gRPC status code of the same refusal."""
        return _REFUSALS.get(self.status, ("", grpc.StatusCode.INVALID_ARGUMENT))[1]

    def grpc_trailers(self) -> tuple[tuple[str, bytes], ...]:
        """RetryInfo, when the refusal may be retried, where OTLP clients look for it: in
        ``grpc-status-details-bin`` (a google.rpc.Status, as grpc's rich status sends it) and
        in ``google.rpc.retryinfo-bin`` (where the Python exporter reads it)."""
        if self.retry_after is None:
            return ()
        retry_info = retry_info_message(self.retry_after)
        status = rpc_status_message(self.grpc_code.value[0], self.message, retry_info)

        return (("grpc-status-details-bin", status), ("google.rpc.retryinfo-bin", retry_info))


def retry_seconds(seconds: float) -> int:
    """A ``Retry-After`` value: whole seconds, at least one."""
    return max(1, math.ceil(seconds))


class TokenBucket:
    """A request rate limit: ``rate`` requests per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be positive and burst at least 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> float:
        """0 when a request may go ahead (a token is spent); else seconds until one may."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0

        return (1 - self._tokens) / self.rate


class RefusalLog:
    """Logs refused requests: one ``request_refused`` line per kind (transport, path, status)
    per ``interval``, with how many were not logged since the last one. Never logs bodies,
    tokens or the refusal's message."""

    def __init__(
        self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[tuple[str, str, str], float] = {}
        self._suppressed: dict[tuple[str, str, str], int] = {}

    def refused(self, transport: str, path: str, status: int | str, reason: str) -> None:
        """Note one refused request."""
        key = (transport, path, str(status))
        now = self._clock()
        if now - self._last.get(key, -math.inf) < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        logger.warning(
            "request_refused",
            transport=transport,
            path=path,
            status=str(status),
            reason=reason,
            suppressed=self._suppressed.pop(key, 0),
        )


def retry_info_message(seconds: float) -> bytes:
    """A serialised ``google.rpc.RetryInfo`` whose ``retry_delay`` is ``seconds``, rounded up
    to whole seconds as ``Retry-After`` is."""
    duration = _field_varint(1, retry_seconds(seconds))

    return _field_bytes(1, duration)


def rpc_status_message(code: int, message: str, retry_info: bytes) -> bytes:
    """A serialised ``google.rpc.Status`` with one detail: the ``RetryInfo``."""
    detail = _field_bytes(1, RETRY_INFO_TYPE_URL.encode()) + _field_bytes(2, retry_info)

    return _field_varint(1, code) + _field_bytes(2, message.encode()) + _field_bytes(3, detail)


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | 0x80 if number else low)
        if not number:
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value
