"""The collector's process set-up: library log messages become structured fields, and garbage
collection is tuned once start-up is done."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from collector.runtime import GC_THRESHOLDS, message_fields, tune_gc


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "posthog_delivery_ready host=https://us.i.posthog.com spool=off",
            {"event": "posthog_delivery_ready", "host": "https://us.i.posthog.com", "spool": "off"},
        ),
        (
            "posthog_unreachable host=http://127.0.0.1:9 error=ConnectionError: refused spool=/s",
            {
                "event": "posthog_unreachable",
                "host": "http://127.0.0.1:9",
                "error": "ConnectionError: refused",
                "spool": "/s",
            },
        ),
        ("a sentence with no fields", {"event": "a sentence with no fields"}),
        ("Posthog_ready host=x", {"event": "Posthog_ready host=x"}),
        ("ready and host=x", {"event": "ready and host=x"}),
        ("posthog_ready count=1 count=2", {"event": "posthog_ready", "count": "1 count=2"}),
    ],
)
def test_library_messages_become_fields(message: str, expected: dict[str, str]) -> None:
    assert message_fields(None, "info", {"event": message}) == expected


def test_a_field_never_replaces_one_the_line_has() -> None:
    """``level`` is already set by the time the message is read: the message stays whole."""
    line = {"event": "posthog_ready level=debug", "level": "warning"}

    assert message_fields(None, "warning", dict(line)) == line


@pytest.fixture
def saved_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tune_gc_freezes_start_up_and_raises_the_thresholds(saved_gc: None) -> None:
    gc.unfreeze()

    tune_gc()

    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0
