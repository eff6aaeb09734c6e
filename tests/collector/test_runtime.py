"""The collector's process set-up: library log records become structured fields, and garbage
collection is tuned once start-up is done."""

from __future__ import annotations

import gc
import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from collector.runtime import GC_THRESHOLDS, configure_logging, tune_gc

LOGGER = "otel_bedrock.delivery._engine"
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
CONNECTION_ERROR = (
    "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=4318): Max retries exceeded"
)
UNREACHABLE = (
    "posthog_unreachable host=%s error=%s: no connection to PostHog; check POSTHOG_HOST (for "
    "example https://us.i.posthog.com) and the network. Events are kept%s and sent again."
)

Line = Callable[..., dict[str, Any]]


@pytest.fixture
def json_line(monkeypatch: pytest.MonkeyPatch) -> Iterator[Line]:
    """Log one record at WARNING through ``configure_logging("json")`` and read back its line
    from stderr, timestamp checked and removed; the logging set-up is restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("collector", "otel_bedrock")}
    config = structlog.get_config()
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging("json")

    def line(msg: str, *args: object, **kwargs: Any) -> dict[str, Any]:
        logging.getLogger(LOGGER).warning(msg, *args, **kwargs)
        lines = stderr.getvalue().splitlines()
        stderr.seek(0)
        stderr.truncate()
        assert len(lines) == 1
        parsed: dict[str, Any] = json.loads(lines[0])
        assert ISO_UTC.fullmatch(parsed.pop("timestamp"))

        return parsed

    yield line
    root.handlers, root.level = handlers, level
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)
    structlog.configure(**config)


def typed(line: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Each value with its JSON type, so that ``true`` and ``1`` (or ``2.0`` and ``2``) differ."""
    return {key: (type(value).__name__, value) for key, value in line.items()}


def test_an_error_with_spaces_and_key_value_text_stays_one_field(json_line: Line) -> None:
    """The whole error is one field, no ``port`` field is made up, and the prose after the
    last field is the ``hint``, its ``kept%s`` filled in."""
    line = json_line(UNREACHABLE, "http://127.0.0.1:4318", CONNECTION_ERROR, " in memory")

    assert typed(line) == typed(
        {
            "event": "posthog_unreachable",
            "level": "warning",
            "logger": LOGGER,
            "host": "http://127.0.0.1:4318",
            "error": CONNECTION_ERROR,
            "hint": "no connection to PostHog; check POSTHOG_HOST (for example "
            "https://us.i.posthog.com) and the network. Events are kept in memory and sent "
            "again.",
        }
    )


@pytest.mark.parametrize(
    ("msg", "arg", "value"),
    [
        ("posthog_batch_sent count=%s", 24, 24),
        ("posthog_delivery_stopped delivered=%s", True, True),
        ("posthog_delivery_ready spool=%s", None, None),
        ("posthog_delivery_ready host=%s", "https://us.i.posthog.com", "https://us.i.posthog.com"),
        ("posthog_api_retry wait=%.1f", 1.96, 2.0),
        ("posthog_delivery_recovered failed_attempts=%d", True, 1),
        ("posthog_spool_write_failed path=%s", Path("/tmp/spool"), "/tmp/spool"),
        ("replay_call_failed error=%r", ValueError("bad key=1"), "ValueError('bad key=1')"),
        ("posthog_batch_failed retry_in=%.2fs", 0.5, "0.50s"),
        ("posthog_spool_nearly_full used=%d%%", 90, "90%"),
    ],
    ids=["int", "bool", "none", "str", "float", "d", "path", "repr", "glued", "percent"],
)
def test_a_placeholder_gives_its_argument_as_a_json_value(
    json_line: Line, msg: str, arg: object, value: object
) -> None:
    """``%s`` keeps a str, int, float, bool or None as it is and makes anything else its str;
    ``%r`` is the repr, ``%d`` an int, ``%.1f`` a float, and text glued on makes a string."""
    line = json_line(msg, arg)

    name, key = msg.split(" ")[0], msg.split(" ")[1].split("=")[0]
    assert typed(line) == typed({"event": name, "level": "warning", "logger": LOGGER, key: value})


def test_the_delivery_counters_become_fields(json_line: Line) -> None:
    """A bare ``%s`` whose argument is ``key=value`` words (the delivery's counters) adds those
    words as fields, whole numbers as ints."""
    counters = "sent=24 retried=0 spooled=3 evicted=0 dropped=1"

    line = json_line("posthog_delivery_stopped delivered=%s host=%s %s", True, "h", counters)

    assert typed(line) == typed(
        {
            "event": "posthog_delivery_stopped",
            "level": "warning",
            "logger": LOGGER,
            "delivered": True,
            "host": "h",
            "sent": 24,
            "retried": 0,
            "spooled": 3,
            "evicted": 0,
            "dropped": 1,
        }
    )


@pytest.mark.parametrize(
    ("msg", "args", "fields"),
    [
        (
            "posthog_events_dropped count=%s reason=in_flight_at_shutdown host=%s; PostHog had "
            "not answered (they may still arrive)",
            (2, "h"),
            {
                "count": 2,
                "reason": "in_flight_at_shutdown",
                "host": "h",
                "hint": "PostHog had not answered (they may still arrive)",
            },
        ),
        (
            "model_unpriced model_id=%s latency=%s reason=price tables hold standard on-demand "
            "prices only",
            ("amazon.nova-lite-v1:0", "optimized"),
            {
                "model_id": "amazon.nova-lite-v1:0",
                "latency": "optimized",
                "reason": "price tables hold standard on-demand prices only",
            },
        ),
        (
            "bedrock_family_unknown provider=%s using=generic: only headers give usage",
            ("acme",),
            {"provider": "acme", "using": "generic", "hint": "only headers give usage"},
        ),
        (
            "posthog_batch_answered_after_shutdown sent=%s retry=%s (counted dropped)",
            (2, 0),
            {"sent": 2, "retry": 0, "hint": "(counted dropped)"},
        ),
        (
            "posthog_wrong_host host=%s: 100%% of %s were refused. Events are kept%s.",
            ("h", "batches", ""),
            {"host": "h", "hint": "100% of batches were refused. Events are kept."},
        ),
    ],
    ids=["hint-after-semicolon", "written-with-spaces", "hint-after-colon", "paren", "percent"],
)
def test_written_values_and_the_hint_read_as_logged(
    json_line: Line, msg: str, args: tuple[object, ...], fields: dict[str, Any]
) -> None:
    """A value written into the message runs to the next field or punctuation, and the prose
    after the last field, placeholders and ``%%`` filled in, is the ``hint``."""
    line = json_line(msg, *args)

    expected = {"event": msg.split(" ")[0], "level": "warning", "logger": LOGGER, **fields}
    assert typed(line) == typed(expected)


@pytest.mark.parametrize(
    ("msg", "args", "message"),
    [
        (
            "bedrock_family_unknown provider=None using=generic",
            (),
            "bedrock_family_unknown provider=None using=generic",
        ),
        (
            "posthog_ready host=%(host)s count=%(count)s",
            ({"host": "h", "count": 1},),
            "posthog_ready host=h count=1",
        ),
        (
            "error while handling a request from %s",
            ("127.0.0.1",),
            "error while handling a request from 127.0.0.1",
        ),
        (
            "%s. No Bedrock events will be sent.",
            ("bad settings",),
            "bad settings. No Bedrock events will be sent.",
        ),
        ("Posthog_ready host=%s", ("h",), "Posthog_ready host=h"),
        ("posthog_delivery %s", ("sent 3 events",), "posthog_delivery sent 3 events"),
    ],
    ids=["no-args", "mapping", "sentence", "no-name", "capital", "bare-not-fields"],
)
def test_a_record_not_in_that_shape_keeps_its_message(
    json_line: Line, msg: str, args: tuple[object, ...], message: str
) -> None:
    """No arguments, a mapping of them, or no leading name and field: the message is the
    event, formatted as the standard library formats it, and nothing is added."""
    line = json_line(msg, *args)

    assert typed(line) == typed({"event": message, "level": "warning", "logger": LOGGER})


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        ("posthog_ready level=%s", ("debug",)),
        ("posthog_event_truncated uuid=%s event=%s size=%s", ("u-1", "$ai_generation", 900)),
        ("posthog_ready count=%s count=%s", (1, 2)),
        ("posthog_ready exception=%s", ("none",)),
    ],
    ids=["level", "event", "twice", "exception"],
)
def test_a_field_never_replaces_one_the_line_has(
    json_line: Line, msg: str, args: tuple[object, ...]
) -> None:
    """A field the line already has, one the formatter fills later, or one given twice: the
    message stays whole and ``level``, ``logger`` and ``event`` keep their values."""
    line = json_line(msg, *args)

    assert typed(line) == typed({"event": msg % args, "level": "warning", "logger": LOGGER})


def test_an_exception_still_renders_next_to_the_fields(json_line: Line) -> None:
    """``exc_info`` gives the traceback under ``exception`` beside the typed fields."""
    try:
        raise ValueError("disk full")
    except ValueError:
        line = json_line("posthog_spool_write_failed path=%s count=%s", "/s", 2, exc_info=True)

    exception = line.pop("exception")
    assert exception.startswith("Traceback (most recent call last):\n")
    assert exception.endswith("\nValueError: disk full")
    assert typed(line) == typed(
        {
            "event": "posthog_spool_write_failed",
            "level": "warning",
            "logger": LOGGER,
            "path": "/s",
            "count": 2,
        }
    )


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
