"""Where the local PostHog capture emulator keeps the events it received.

The demo's capture emulator appends each accepted event to a JSON-lines file; the report
command reads it. The file lives in ``$OTEL_BEDROCK_DATA_DIR``, or else in the user's data
folder (``$XDG_DATA_HOME/otel-bedrock``, by default ``~/.local/share/otel-bedrock``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

EVENTS_FILE = "captured-events.jsonl"


def data_dir() -> Path:
    """The folder for otel-bedrock's local data."""
    explicit = os.environ.get("OTEL_BEDROCK_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")

    return Path(base) / "otel-bedrock"


def default_event_store() -> Path:
    """The JSON-lines file the demo's capture emulator writes and the report reads."""
    return data_dir() / EVENTS_FILE


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event in a JSON-lines store; unreadable lines are skipped with one warning.

    Raises:
        FileNotFoundError: when the store does not exist.
    """
    events = []
    skipped = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                skipped += 1
                continue
            if isinstance(event, dict):
                events.append(event)
    if skipped:
        logger.warning("event_store_lines_skipped path=%s count=%s", path, skipped)

    return events
