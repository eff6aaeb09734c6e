"""One batch to PostHog: the wire format, the size limit, and what each answer means.

:func:`to_wire` turns a :class:`CaptureEvent` into the JSON object PostHog's batch API takes.
:class:`Transport` posts a batch with ``posthog.request.batch_post`` (gzip) and sorts its
events into sent, dropped and to-retry:

- any 2xx: sent.
- 400: the batch is split in halves until the rejected events are alone; those are dropped.
- 413: the batch is split in halves; a single event has its content fields truncated and is
  sent again, and is dropped only when it is still refused.
- 401: nothing is sent; the events wait (a fixed key and a restart deliver them).
- 3xx, 404, 405: the host is not a PostHog ingestion host; the events wait (configuration).
- 5xx, 429, any other status, network errors and timeouts: the events wait, and the server's
  ``Retry-After`` is kept.

Events larger than ``max_event_bytes`` are truncated before sending, because PostHog refuses
events over about 1 MB and posthog-python drops them without a word.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from posthog.request import AI_EVENTS_ENDPOINT, EVENTS_ENDPOINT, APIError, batch_post

from otel_bedrock._once import warn_once

logger = logging.getLogger(__name__)

LIB_NAME = "otel-bedrock"
CONTENT_FIELDS = ("prompt", "generation", "$ai_input", "$ai_output_choices", "error_stack")
DEFAULT_MAX_EVENT_BYTES = 900_000
_TRUNCATION_MARK = " [truncated]"

Post = Callable[[list[dict[str, Any]], str], None]
"""Sends one batch; raises ``APIError`` or a ``requests`` exception when it was not accepted."""

# PostHog's LLM analytics endpoint takes events up to 8 MiB (posthog-python's AI lane); stay
# below it, and keep each request under the batch limit.
AI_MAX_EVENT_BYTES = 7 * 1024 * 1024
AI_BATCH_BYTES = 4 * 1024 * 1024


def _lib_version() -> str:
    """Our package version (read late: the package imports this module while loading)."""
    from otel_bedrock import __version__

    return __version__


def to_wire(event: Any) -> dict[str, Any]:
    """The batch-API object for one ``CaptureEvent``, its timestamp in ISO 8601 UTC.

    Property values JSON does not know (datetimes, decimals, objects) become their text.
    """
    timestamp: datetime = event.timestamp
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    properties: dict[str, Any] = event.properties
    try:
        json.dumps(properties)
    except (TypeError, ValueError):
        properties = json.loads(json.dumps(properties, default=str))
    properties = {
        **properties,
        "$lib": LIB_NAME,
        "$lib_version": _lib_version(),
        # Server-side events: the sender's IP says nothing about the user.
        "$geoip_disable": True,
    }

    return {
        "event": event.event,
        "distinct_id": event.distinct_id,
        "properties": properties,
        "uuid": event.uuid,
        "timestamp": timestamp.astimezone(UTC).isoformat(),
        "type": "capture",
    }


def wire_size(event: dict[str, Any]) -> int:
    """The serialised size of an event, non-ASCII text escaped (an upper bound on its bytes)."""
    return len(json.dumps(event, default=str))


def _cap_strings(value: Any, cap: int) -> Any:
    """``value`` with every string longer than ``cap`` cut to ``cap`` characters and marked."""
    if isinstance(value, str):
        return value if len(value) <= cap else value[:cap] + _TRUNCATION_MARK
    if isinstance(value, list):
        return [_cap_strings(item, cap) for item in value]
    if isinstance(value, dict):
        return {key: _cap_strings(item, cap) for key, item in value.items()}

    return value


def _longest_string(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return max((_longest_string(item) for item in value), default=0)
    if isinstance(value, dict):
        return max((_longest_string(item) for item in value.values()), default=0)

    return 0


def truncate_content(event: dict[str, Any], limit: int) -> dict[str, Any] | None:
    """A copy of ``event`` whose content fields are cut so that it fits in ``limit``.

    The copy carries ``content_truncated: true``. When cutting the content is not enough (a
    megabyte of text in another property, say), every string property is cut instead, and
    the copy carries ``properties_truncated: true``. Returns None when even that cannot fit.
    """
    properties: dict[str, Any] = event.get("properties") or {}
    fields = [name for name in CONTENT_FIELDS if name in properties]
    cut = _cut_to_fit(event, fields, "content_truncated", limit) if fields else None
    if cut is None and properties:
        cut = _cut_to_fit(event, list(properties), "properties_truncated", limit)

    return cut


def _cut_to_fit(
    event: dict[str, Any], fields: list[str], flag: str, limit: int
) -> dict[str, Any] | None:
    """``event`` with the strings of ``fields`` cut to the longest length that fits."""
    properties: dict[str, Any] = event["properties"]

    def build(cap: int) -> dict[str, Any]:
        cut = {name: _cap_strings(properties[name], cap) for name in fields}
        return {**event, "properties": {**properties, **cut, flag: True}}

    low, high = 0, max(_longest_string(properties[name]) for name in fields)
    if wire_size(build(low)) > limit:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if wire_size(build(middle)) <= limit:
            low = middle
        else:
            high = middle - 1

    return build(low)


@dataclass
class BatchOutcome:
    """What became of a batch's events.

    Attributes:
        sent: Uuids PostHog accepted.
        dropped: ``(uuid, reason)`` of events PostHog refused for good.
        retry: Events to send again later.
        retry_after: The wait PostHog asked for, if it did.
        unauthorized: PostHog refused the project key (401).
        misdirected: The host answered like no PostHog ingestion host (3xx, 404, 405).
        unreachable: No connection could be made to the host (refused, unknown name, no route,
            connect timeout).
        error: The last failure, for the logs.
    """

    sent: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    retry: list[dict[str, Any]] = field(default_factory=list)
    retry_after: float | None = None
    unauthorized: bool = False
    misdirected: bool = False
    unreachable: bool = False
    error: str = ""


class Transport:
    """Posts batches to one PostHog project; called on the delivery worker thread only.

    Args:
        api_key: The project API key.
        host: PostHog's ingestion host.
        timeout: Seconds to wait for each HTTP answer.
        max_event_bytes: Events larger than this are truncated before sending.
        post: Replaces the HTTP post (for tests of the sorting logic alone).
    """

    def __init__(
        self,
        api_key: str,
        host: str,
        *,
        timeout: float = 15.0,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        post: Post | None = None,
    ) -> None:
        self.host = host
        self.max_event_bytes = max_event_bytes
        self._sized_events = 0
        self._sized_bytes = 0
        self._api_key = api_key
        self._timeout = timeout
        self._post = post or self._http_post
        self._session = requests.Session()
        self._before_attempt: Callable[[], None] | None = None

    def after_fork(self) -> None:
        """Use new connections in a forked child (the parent's sockets are not ours)."""
        self._session = requests.Session()

    def _http_post(self, batch: list[dict[str, Any]], path: str) -> None:
        batch_post(
            self._api_key,
            self.host,
            gzip=True,
            timeout=self._timeout,
            path=path,
            session=self._session,
            batch=batch,
        )

    def prepare(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The event as it will be sent: truncated when too large, None when it cannot fit.

        LLM analytics events (``$ai_*``) go to PostHog's AI endpoint, which takes larger events.
        """
        limit = AI_MAX_EVENT_BYTES if _is_ai(event) else self.max_event_bytes
        size = wire_size(event)
        self._sized_events += 1
        self._sized_bytes += size
        fitted = event if size <= limit else truncate_content(event, limit)
        if fitted is not event and fitted is not None:
            warn_once(
                logger,
                "posthog_event_truncated",
                "posthog_event_truncated uuid=%s event_name=%s size=%s limit=%s",
                event.get("uuid"),
                event.get("event"),
                size,
                limit,
            )

        return fitted

    @property
    def event_bytes(self) -> float | None:
        """The mean serialised size of the events prepared so far; None before the first."""
        return self._sized_bytes / self._sized_events if self._sized_events else None

    def deliver(
        self, batch: list[dict[str, Any]], before_attempt: Callable[[], None] | None = None
    ) -> BatchOutcome:
        """Send a batch, splitting it where PostHog refuses part of it.

        Args:
            batch: Wire-format events.
            before_attempt: Called before each request (renews the spool claim of the batch).
        """
        self._before_attempt = before_attempt
        outcome = BatchOutcome()
        ready = []
        for event in batch:
            prepared = self.prepare(event)
            if prepared is None:
                outcome.dropped.append((str(event.get("uuid")), "event too large to truncate"))
            else:
                ready.append(prepared)
        analytics = [event for event in ready if not _is_ai(event)]
        if analytics:
            self._deliver(analytics, outcome, False, EVENTS_ENDPOINT)
        for group in _by_size([event for event in ready if _is_ai(event)], AI_BATCH_BYTES):
            self._deliver(group, outcome, False, AI_EVENTS_ENDPOINT)

        return outcome

    def _deliver(
        self, batch: list[dict[str, Any]], outcome: BatchOutcome, shrunk: bool, path: str
    ) -> None:
        if outcome.retry:
            # PostHog is failing right now: keep the rest for the next attempt.
            outcome.retry.extend(batch)
            return
        status, detail, retry_after, unreachable = self._attempt(batch, path)
        if 200 <= status < 300:
            outcome.sent.extend(str(event["uuid"]) for event in batch)
        elif status in (400, 413) and len(batch) > 1:
            middle = len(batch) // 2
            self._deliver(batch[:middle], outcome, shrunk, path)
            self._deliver(batch[middle:], outcome, shrunk, path)
        elif status == 400:
            outcome.dropped.append((str(batch[0]["uuid"]), f"400 {detail}"))
        elif status == 413:
            self._shrink(batch[0], outcome, shrunk, detail, path)
        else:
            outcome.retry.extend(batch)
            outcome.retry_after = retry_after
            outcome.unauthorized = status == 401
            outcome.misdirected = 300 <= status < 400 or status in (404, 405)
            outcome.unreachable = unreachable
            outcome.error = f"{status} {detail}" if status else detail

    def _shrink(
        self, event: dict[str, Any], outcome: BatchOutcome, shrunk: bool, detail: str, path: str
    ) -> None:
        """Send a single event PostHog found too large again, with its content cut by half."""
        smaller = None if shrunk else truncate_content(event, wire_size(event) // 2)
        if smaller is None:
            outcome.dropped.append((str(event["uuid"]), f"413 {detail}"))
            return
        warn_once(
            logger,
            "posthog_event_truncated_after_413",
            "posthog_event_truncated uuid=%s event_name=%s size=%s after=413",
            event.get("uuid"),
            event.get("event"),
            wire_size(event),
        )
        self._deliver([smaller], outcome, True, path)

    def _attempt(
        self, batch: list[dict[str, Any]], path: str
    ) -> tuple[int, str, float | None, bool]:
        """Post once; the status (0 for a network failure), a detail, any Retry-After, and
        whether no connection could be made."""
        if self._before_attempt is not None:
            try:
                self._before_attempt()
            except Exception:  # an expired claim only risks a duplicate
                logger.debug("posthog_claim_renewal_failed", exc_info=True)
        try:
            self._post(batch, path)
        except APIError as error:
            status = error.status if isinstance(error.status, int) else 0
            return status, str(error.message)[:200], error.retry_after, False
        except requests.RequestException as error:
            unreachable = isinstance(error, requests.ConnectionError)
            return 0, f"{type(error).__name__}: {error}"[:300], None, unreachable
        except (TypeError, ValueError) as error:
            # Not serialisable: no later attempt can do better, so treat it as refused.
            return 400, f"unserialisable event: {error}"[:300], None, False
        logger.debug("posthog_batch_sent count=%s host=%s", len(batch), self.host)

        return 200, "", None, False


def _is_ai(event: dict[str, Any]) -> bool:
    return str(event.get("event", "")).startswith("$ai_")


def _by_size(events: list[dict[str, Any]], limit: int) -> list[list[dict[str, Any]]]:
    """Consecutive groups of events whose serialised sizes add up to ``limit`` at most."""
    groups: list[list[dict[str, Any]]] = []
    size = 0
    for event in events:
        event_size = wire_size(event)
        if not groups or size + event_size > limit:
            groups.append([])
            size = 0
        groups[-1].append(event)
        size += event_size

    return groups
