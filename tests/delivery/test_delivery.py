"""Fault injection against the capture emulator: every event arrives, or its loss is counted."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from otel_bedrock.delivery import PostHogDelivery
from otel_bedrock.delivery.spool import Spool
from otel_bedrock.events import CaptureEvent
from otel_bedrock.testing import CaptureEmulator
from tests.delivery.helpers import KEY, delivery, make_event, make_events, received


def test_all_events_arrive_once_in_batches(posthog: CaptureEmulator, spool_file: Path) -> None:
    """250 events arrive exactly once, in batches of at most 100, with the wire format."""
    events = make_events(250)
    sender = delivery(posthog.url, spool_file)
    for event in events:
        sender.send(event)

    assert sender.flush(5)
    sender.shutdown()

    assert sorted(received(posthog)) == sorted(event.uuid for event in events)
    assert max(request.event_count for request in posthog.requests) == 100
    assert {request.content_encoding for request in posthog.requests} == {"gzip"}
    first = next(e for e in posthog.events if e["uuid"] == events[0].uuid)
    assert first["timestamp"] == "2025-01-02T03:04:05+00:00"
    assert first["properties"] == {
        "number": 0,
        "$lib": "otel-bedrock",
        "$lib_version": "0.1.0",
        "$geoip_disable": True,
    }
    assert sender.counters.snapshot() == {
        "sent": 250,
        "retried": 0,
        "spooled": 0,
        "evicted": 0,
        "dropped": 0,
    }


def test_posthog_down_then_up(posthog: CaptureEmulator, spool_file: Path) -> None:
    """Events sent while PostHog is unreachable wait in the spool and arrive once it is back."""
    events = make_events(30)
    url = posthog.url
    posthog.stop()
    sender = delivery(url, spool_file)
    for event in events:
        sender.send(event)

    assert not sender.flush(0.5)
    assert Spool(spool_file).status().rows == 30
    posthog.start()
    assert sender.flush(5)
    sender.shutdown()

    assert sorted(received(posthog)) == sorted(event.uuid for event in events)
    assert sender.counters.sent == 30
    assert sender.counters.retried >= 30
    assert sender.counters.dropped == 0


def test_server_errors_then_success(posthog: CaptureEmulator, spool_file: Path) -> None:
    """Three 503 answers in a row delay the batch; it then arrives exactly once."""
    events = make_events(10)
    posthog.fail_next(503, 3)
    sender = delivery(posthog.url, spool_file)
    for event in events:
        sender.send(event)

    # A 503 during the flush leaves the batch in the spool; the flush reports that at once.
    assert not sender.flush(5)
    assert posthog.wait_for(10, timeout=5)
    assert sender.flush(5)
    sender.shutdown()

    assert Counter(received(posthog)) == Counter(event.uuid for event in events)
    assert [request.status for request in posthog.requests] == [503, 503, 503, 200]
    assert sender.counters.retried == 30


def test_retry_after_is_honoured(posthog: CaptureEmulator, spool_file: Path) -> None:
    """A 429 with Retry-After: 1 delays the next attempt by a second, not the 50 ms backoff."""
    events = make_events(5)
    posthog.fail_next(429, 1, retry_after=1)
    sender = delivery(posthog.url, spool_file)
    started = time.monotonic()
    for event in events:
        sender.send(event)

    assert posthog.wait_for(5, timeout=5)
    elapsed = time.monotonic() - started
    sender.shutdown()

    assert elapsed >= 0.95
    assert sorted(received(posthog)) == sorted(event.uuid for event in events)


def test_slow_answers_beyond_the_timeout(posthog: CaptureEmulator, spool_file: Path) -> None:
    """Answers slower than the timeout count as failures; the events arrive once it is fast."""
    events = make_events(4)
    posthog.set_delay(0.6)
    sender = delivery(posthog.url, spool_file, timeout=0.2)
    for event in events:
        sender.send(event)
    time.sleep(0.5)
    posthog.set_delay(0)

    assert sender.flush(5)
    sender.shutdown()

    # A timed-out request may still have been stored by the server: each uuid at least once.
    assert set(received(posthog)) == {event.uuid for event in events}
    assert sender.counters.sent == 4
    assert sender.counters.retried >= 4


def test_burst_over_the_queue_goes_through_the_spool(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """A burst of 2,500 into a queue of 1,000 (past queue plus the old overflow) loses none."""
    events = make_events(2500)
    sender = delivery(posthog.url, spool_file, max_queue=1000, batch_size=10)
    started = time.perf_counter()
    for event in events:
        sender.send(event)
    send_seconds = time.perf_counter() - started

    assert sender.flush(20)
    sender.shutdown()

    assert Counter(received(posthog)) == Counter(event.uuid for event in events)
    assert sender.counters.sent == 2500
    assert sender.counters.spooled >= 1000
    assert sender.counters.dropped == 0
    assert send_seconds < 5


def test_burst_at_default_settings_loses_nothing(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """20,000 events at once with the default queue and a spool all arrive, none dropped."""
    events = make_events(20_000)
    sender = PostHogDelivery(KEY, posthog.url, spool_path=spool_file)
    for event in events:
        sender.send(event)

    assert sender.flush(60)
    sender.shutdown()

    assert Counter(received(posthog)) == Counter(event.uuid for event in events)
    assert sender.counters.sent == 20_000
    assert sender.counters.dropped == 0
    assert sender.counters.evicted == 0


def test_burst_without_spool_counts_drops(posthog: CaptureEmulator) -> None:
    """Without a spool, events beyond the queue are counted as dropped, the rest delivered."""
    url = posthog.url
    posthog.stop()
    events = make_events(20)
    sender = delivery(url, None, max_queue=5)
    for event in events:
        sender.send(event)
    posthog.start()

    assert sender.flush(5)
    sender.shutdown()

    assert sender.counters.dropped == 15
    assert sorted(received(posthog)) == sorted(event.uuid for event in events[:5])


def test_oversized_event_is_truncated_and_delivered(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """An event of 2 MB has its content cut under the limit, is flagged, and arrives."""
    big = make_event(1, prompt="p" * 1_000_000, generation="g" * 1_000_000)
    small = make_event(2, prompt="short")
    sender = delivery(posthog.url, spool_file)
    sender.send(big)
    sender.send(small)

    assert sender.flush(5)
    sender.shutdown()

    by_uuid = {event["uuid"]: event for event in posthog.events}
    assert set(by_uuid) == {big.uuid, small.uuid}
    properties = by_uuid[big.uuid]["properties"]
    assert properties["content_truncated"] is True
    assert properties["prompt"].endswith(" [truncated]")
    assert 400_000 < len(properties["prompt"]) < 460_000
    assert by_uuid[small.uuid]["properties"]["prompt"] == "short"
    assert sender.counters.dropped == 0


def test_an_event_too_large_outside_its_content_is_cut_and_delivered(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """A megabyte in a property that is not content (an error message from a span, say) is
    cut too, with every other property as it was, and flagged; the event is not dropped."""
    big = make_event(1, error_message="e" * 2_000_000, model="anthropic.claude-3-haiku")
    sender = delivery(posthog.url, spool_file)
    sender.send(big)

    assert sender.flush(5)
    sender.shutdown()

    [event] = posthog.events
    properties = event["properties"]
    assert properties["properties_truncated"] is True
    assert properties["error_message"].endswith(" [truncated]")
    assert 800_000 < len(properties["error_message"]) < 1_000_000
    assert (properties["model"], properties["number"]) == ("anthropic.claude-3-haiku", 1)
    assert sender.counters.dropped == 0


def test_413_for_one_event_truncates_it(spool_file: Path) -> None:
    """An event the server finds too large (413) is sent again truncated, the batch split."""
    with CaptureEmulator(accepted_keys={"phc_test"}, max_event_bytes=50_000) as posthog:
        big = make_event(1, **{"$ai_input": [{"role": "user", "content": "x" * 80_000}]})
        others = make_events(3)
        sender = delivery(posthog.url, spool_file)
        for event in [*others, big]:
            sender.send(event)

        assert sender.flush(5)
        sender.shutdown()

        by_uuid = {event["uuid"]: event for event in posthog.events}
        assert set(by_uuid) == {event.uuid for event in [*others, big]}
        properties = by_uuid[big.uuid]["properties"]
        assert properties["content_truncated"] is True
        assert properties["$ai_input"][0]["role"] == "user"
        assert sender.counters.dropped == 0


def test_400_drops_only_the_bad_event(
    posthog: CaptureEmulator, spool_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An event PostHog refuses (no distinct_id) is dropped and logged; the others arrive."""
    good = make_events(7)
    bad = make_event(99)
    object.__setattr__(bad, "distinct_id", "")
    sender = delivery(posthog.url, spool_file)
    for event in [*good[:3], bad, *good[3:]]:
        sender.send(event)

    with caplog.at_level(logging.ERROR, logger="otel_bedrock.delivery"):
        assert sender.flush(5)
    sender.shutdown()

    assert sorted(received(posthog)) == sorted(event.uuid for event in good)
    assert sender.counters.dropped == 1
    assert sender.counters.sent == 7
    assert [
        r.getMessage() for r in caplog.records if "posthog_event_dropped" in r.getMessage()
    ] == [f"posthog_event_dropped uuid={bad.uuid} reason=400 distinct_id is missing"]
    assert Spool(spool_file).status().rows == 0


def test_401_keeps_events_and_logs_once(
    posthog: CaptureEmulator, spool_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused key loses nothing: one error names POSTHOG_API_KEY; a fixed key delivers."""
    events = make_events(6)
    wrong = delivery(posthog.url, spool_file, api_key="phc_wrong")
    with caplog.at_level(logging.ERROR, logger="otel_bedrock.delivery"):
        for event in events:
            wrong.send(event)
        assert not wrong.flush(0.8)
        wrong.shutdown()

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "POSTHOG_API_KEY" in errors[0]
    assert "phc_wrong" not in errors[0]
    assert received(posthog) == []
    assert Spool(spool_file).status().rows == 6

    fixed = delivery(posthog.url, spool_file)
    assert fixed.flush(5)
    fixed.shutdown()

    assert sorted(received(posthog)) == sorted(event.uuid for event in events)


def test_outage_at_shutdown_leaves_events_in_spool(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """Events that failed before shutdown stay spooled; the next process delivers them."""
    url = posthog.url
    posthog.stop()
    events = make_events(8)
    sender = delivery(url, spool_file, shutdown_timeout=0.2, base_backoff=30, max_backoff=30)
    for event in events:
        sender.send(event)
    sender.shutdown()

    assert sender.counters.retried == 8
    assert Spool(spool_file).status().rows == 8
    posthog.start()
    again = delivery(posthog.url, spool_file)
    assert again.flush(5)
    again.shutdown()
    assert sorted(received(posthog)) == sorted(event.uuid for event in events)


def test_shutdown_spools_memory_it_could_not_send(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """Shutdown spools the queued and in-flight events when time runs out, counting them."""
    posthog.set_delay(1.0)
    events = make_events(6)
    sender = delivery(posthog.url, spool_file, batch_size=2, shutdown_timeout=0.2)
    for event in events:
        sender.send(event)
    time.sleep(0.1)
    sender.shutdown()

    assert sender.counters.spooled == 6
    assert posthog.wait_for(2, timeout=5)
    time.sleep(0.2)
    assert Spool(spool_file).status().rows == 4
    posthog.set_delay(0)
    again = delivery(posthog.url, spool_file)
    assert again.flush(5)
    again.shutdown()
    assert sorted(received(posthog)) == sorted(event.uuid for event in events)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_neither_loses_nor_duplicates(posthog: CaptureEmulator, spool_file: Path) -> None:
    """After fork, parent and child each deliver their own events once; queued ones stay home."""
    sender = delivery(posthog.url, spool_file, flush_interval=30)
    before = make_events(5)
    for event in before:
        sender.send(event)
    child_events = make_events(4)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            for event in child_events:
                sender.send(event)
            code = 0 if sender.flush(5) and sender.counters.sent == 4 else 1
        finally:
            os._exit(code)
    parent_events = make_events(3)
    for event in parent_events:
        sender.send(event)
    assert sender.flush(5)
    _, status = os.waitpid(pid, 0)
    sender.shutdown()

    assert os.waitstatus_to_exitcode(status) == 0
    expected = [event.uuid for event in [*before, *child_events, *parent_events]]
    assert sorted(received(posthog)) == sorted(expected)
    assert sender.counters.sent == 8


def test_large_llm_analytics_event_goes_whole_to_the_ai_endpoint(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """A 2 MB $ai_generation is sent uncut to PostHog's AI endpoint; other events to /batch/."""
    text = "g" * 2_000_000
    generation = CaptureEvent(
        event="$ai_generation",
        distinct_id="user-1",
        properties={"$ai_output_choices": [{"role": "assistant", "content": text}]},
        uuid=str(uuid.uuid4()),
        timestamp=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    completion = make_event(1)
    sender = delivery(posthog.url, spool_file)
    sender.send(generation)
    sender.send(completion)

    assert sender.flush(5)
    sender.shutdown()

    by_uuid = {event["uuid"]: event for event in posthog.events}
    assert set(by_uuid) == {generation.uuid, completion.uuid}
    properties = by_uuid[generation.uuid]["properties"]
    assert properties["$ai_output_choices"][0]["content"] == text
    assert "content_truncated" not in properties
    paths = sorted(request.path.split("?")[0].rstrip("/") for request in posthog.requests)
    assert paths == ["/batch", "/i/v0/ai/batch"]


def test_a_delivery_never_given_an_event_stops_delivered(
    posthog: CaptureEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """With no budget and nothing sent, the stop line says delivered=True: nothing is owed."""
    sender = delivery(posthog.url, None)

    with caplog.at_level(logging.INFO, logger="otel_bedrock.delivery"):
        sender.shutdown(0.0)

    [line] = [
        r.getMessage() for r in caplog.records if "posthog_delivery_stopped" in r.getMessage()
    ]
    assert line.startswith("posthog_delivery_stopped delivered=True ")
