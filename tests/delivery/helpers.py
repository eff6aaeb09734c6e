"""Events, emulators and deliveries for the delivery tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from otel_bedrock.delivery import PostHogDelivery
from otel_bedrock.events import CaptureEvent
from otel_bedrock.testing import CaptureEmulator

KEY = "phc_test"
FAST: dict[str, Any] = {
    "flush_interval": 0.02,
    "base_backoff": 0.05,
    "max_backoff": 0.2,
    "timeout": 2.0,
    "lease_seconds": 5.0,
    "spool_poll_interval": 0.1,
    "shutdown_timeout": 2.0,
}


def make_event(number: int = 0, **properties: Any) -> CaptureEvent:
    """A completion event with a fresh uuid."""
    return CaptureEvent(
        event="bedrock_completion",
        distinct_id="user-1",
        properties={"number": number, **properties},
        uuid=str(uuid.uuid4()),
        timestamp=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def make_events(count: int) -> list[CaptureEvent]:
    """``count`` distinct events."""
    return [make_event(number) for number in range(count)]


def received(emulator: CaptureEmulator) -> list[str]:
    """The uuids PostHog received, in arrival order, duplicates kept."""
    return [str(event["uuid"]) for event in emulator.events]


def delivery(url: str, spool: Path | None, api_key: str = KEY, **options: Any) -> PostHogDelivery:
    """A delivery with fast test timings."""
    return PostHogDelivery(api_key, url, spool_path=spool, **{**FAST, **options})
