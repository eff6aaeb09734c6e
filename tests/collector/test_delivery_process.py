"""The collector's delivery process: events cross to the child and reach PostHog, its pressure
and counters reach the parent, a child that dies is replaced without losing a chunk, and a
child whose parent dies spools what it holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from collector.delivery import DeliveryProcess
from otel_bedrock.config import load_settings
from otel_bedrock.delivery.spool import Spool
from otel_bedrock.events import CaptureEvent
from otel_bedrock.testing import CaptureEmulator
from tests.conftest import TEST_KEY, child_environment, eventually

ROOT = Path(__file__).resolve().parents[2]


def event(number: int) -> CaptureEvent:
    """A completion event of its own uuid, for ``number`` input tokens."""
    return CaptureEvent(
        event="bedrock_completion",
        distinct_id=f"user-{number % 3}",
        properties={"model": "amazon.nova-micro-v1:0", "input_tokens": number, "cost_usd": 0.5},
        uuid=str(uuid.UUID(int=number + 1)),
        timestamp=datetime(2026, 12, 4, 6, 0, number % 60, tzinfo=UTC),
    )


Start = Callable[..., DeliveryProcess]


@pytest.fixture
def start(capture: CaptureEmulator) -> Iterator[Start]:
    """Builds delivery processes that send to the capture emulator (reset first); shuts them
    down after."""
    capture.reset()
    started: list[DeliveryProcess] = []

    def build(spool: str = "off", **options: Any) -> DeliveryProcess:
        settings = load_settings(api_key=TEST_KEY, host=capture.url, spool=spool)
        process = DeliveryProcess(settings, **options)
        started.append(process)
        return process

    yield build
    for process in started:
        process.shutdown(2.0)
    capture.reset()


def child_of(process: DeliveryProcess) -> int:
    pid = process.pid
    assert pid is not None
    return pid


def stalled_with_events_in_flight(
    process: DeliveryProcess, capture: CaptureEmulator, first: int, count: int
) -> int:
    """Stop the child and send ``count`` events from number ``first``, so that the feeder has
    passed them on as one chunk that the stopped child has not answered; the number after the
    last event sent.

    Should the feeder be waiting for the child's answer to a look at its state instead, the
    child is let go until PostHog has those events, and the try made again with new ones.
    """
    for _ in range(5):
        os.kill(child_of(process), signal.SIGSTOP)
        for number in range(first, first + count):
            process.send(event(number))
        first += count
        if eventually(lambda: process.backlog() == (0, count), timeout=1.0):
            return first
        os.kill(child_of(process), signal.SIGCONT)
        assert eventually(lambda sent=first: len(capture.events) >= sent, timeout=10)
    raise AssertionError("the feeder never had a chunk in flight")


def uuids(numbers: range) -> list[str]:
    return sorted(str(uuid.UUID(int=number + 1)) for number in numbers)


def test_events_reach_posthog_from_the_child(start: Start, capture: CaptureEmulator) -> None:
    """Every event sent to the parent arrives once, as sent; the counters come back."""
    process = start(batch_size=50)

    for number in range(120):
        process.send(event(number))
    process.shutdown(10.0)

    received = {item["uuid"]: item for item in capture.events}
    assert len(capture.events) == 120
    sample = received[str(uuid.UUID(int=8))]
    assert sample["distinct_id"] == "user-1"
    assert sample["properties"]["input_tokens"] == 7
    assert sample["properties"]["cost_usd"] == 0.5
    assert sample["timestamp"] == "2026-12-04T06:00:07+00:00"
    assert process.counters.snapshot() == {
        "sent": 120,
        "retried": 0,
        "spooled": 0,
        "evicted": 0,
        "dropped": 0,
    }


def test_values_pickle_refuses_become_their_text(start: Start) -> None:
    """In a chunk with a property pickle cannot take (a lock, say), that event's properties
    are sent as PostHog would receive them, as text; the others are passed as they are."""
    process = start()
    plain, odd = event(0), event(1)
    plain.properties["stop_sequences"] = ("END",)
    lock = threading.Lock()
    odd.properties["lock"] = lock

    first, second = process._packed([plain, odd])

    assert first[2] is plain.properties
    assert second[2] == {**event(1).properties, "lock": str(lock)}


def test_an_unpicklable_value_still_reaches_posthog(start: Start, capture: CaptureEmulator) -> None:
    process = start()
    odd = event(1)
    lock = threading.Lock()
    odd.properties["lock"] = lock
    process.send(event(0))
    process.send(odd)

    assert process.flush(10.0) is True
    received = {item["uuid"]: item["properties"] for item in capture.events}
    assert received[odd.uuid]["lock"] == str(lock)
    assert received[event(0).uuid]["input_tokens"] == 0


def test_flush_delivers_what_was_buffered(start: Start, capture: CaptureEmulator) -> None:
    """``flush`` returns True once PostHog has every event sent before it."""
    process = start()
    for number in range(10):
        process.send(event(number))

    assert process.flush(10.0) is True
    assert len(capture.events) == 10
    assert process.counters.snapshot()["sent"] == 10


def test_a_stalled_child_makes_the_parent_refuse(start: Start, capture: CaptureEmulator) -> None:
    """While the child cannot take events, the parent's buffer fills past ``max_buffer`` and
    ``pressure`` says full; once the child goes on, everything is delivered and the pressure
    is gone."""
    process = start(max_buffer=1_500)
    process.send(event(0))
    assert eventually(lambda: len(capture.events) == 1)
    assert process.pressure().full is False

    os.kill(child_of(process), signal.SIGSTOP)
    try:
        for number in range(1, 2_500):
            process.send(event(number))
        time.sleep(0.5)  # a child that took events would have emptied the buffer by now
        assert process.pressure().full is True
    finally:
        os.kill(child_of(process), signal.SIGCONT)

    assert eventually(lambda: len(capture.events) == 2_500, timeout=15)
    assert eventually(lambda: process.pressure().full is False)


def test_events_held_for_the_child_count_against_its_room(
    start: Start, capture: CaptureEmulator
) -> None:
    """The room the child reports shrinks by the events this process holds for it."""
    process = start()
    process.send(event(0))
    assert eventually(lambda: len(capture.events) == 1)
    assert eventually(lambda: process.pressure().room == 10_000)  # the memory queue's bound

    os.kill(child_of(process), signal.SIGSTOP)
    try:
        for number in range(1, 11):
            process.send(event(number))
        room = process.pressure().room
    finally:
        os.kill(child_of(process), signal.SIGCONT)

    assert room == 10_000 - 10
    assert eventually(lambda: len(capture.events) == 11)


def test_a_child_that_dies_is_replaced_and_its_chunk_sent_again(
    start: Start, capture: CaptureEmulator
) -> None:
    """The child is killed holding a chunk it never answered: a new child gets the chunk,
    nothing is lost, and the counters go on from where the dead child left them."""
    process = start()
    for number in range(30):
        process.send(event(number))
    assert eventually(lambda: len(capture.events) == 30)
    assert eventually(lambda: process.counters.snapshot()["sent"] == 30)
    first = child_of(process)

    end = stalled_with_events_in_flight(process, capture, 30, 30)
    os.kill(first, signal.SIGKILL)

    assert eventually(lambda: process.pid != first, timeout=20)
    assert eventually(lambda: process.backlog() == (0, 0), timeout=20)
    assert process.flush(10.0) is True
    sent = {item["uuid"] for item in capture.events}
    assert len(capture.events) == len(sent)
    assert eventually(lambda: process.counters.snapshot()["sent"] == len(sent))
    assert set(uuids(range(end))) <= sent


def test_a_late_answer_is_set_aside(start: Start, capture: CaptureEmulator) -> None:
    """A flush that times out while the child is stopped gets its answer later; the next
    chunk is not taken for queued on the strength of that answer, so killing the child
    before it answers the chunk still loses nothing."""
    process = start()
    process.send(event(0))
    assert eventually(lambda: len(capture.events) == 1)
    first = child_of(process)
    os.kill(first, signal.SIGSTOP)
    assert process.flush(0.3) is False
    os.kill(first, signal.SIGCONT)  # the answer to the flush comes now, late

    end = stalled_with_events_in_flight(process, capture, 1, 30)
    os.kill(first, signal.SIGKILL)

    assert eventually(lambda: process.pid != first, timeout=20)
    assert process.flush(15.0) is True
    assert set(uuids(range(end))) <= {item["uuid"] for item in capture.events}


def test_shutdown_kills_a_child_that_does_not_answer(start: Start) -> None:
    """A stuck child does not hold shutdown past its budget: it is killed, and the events it
    never took are counted dropped."""
    process = start()
    child = child_of(process)
    os.kill(child, signal.SIGSTOP)
    for number in range(5):
        process.send(event(number))

    started = time.monotonic()
    process.shutdown(1.0)

    assert time.monotonic() - started < 8
    assert not running(child)
    assert process.counters.snapshot()["dropped"] == 5


def test_events_after_shutdown_are_counted_dropped(start: Start) -> None:
    process = start()
    process.shutdown(2.0)

    process.send(event(0))

    assert process.counters.snapshot()["dropped"] == 1
    assert process.backlog() == (0, 0)


PARENT = """
import sys, time
from collector.delivery import DeliveryProcess
from otel_bedrock.config import load_settings
from tests.collector.test_delivery_process import event

settings = load_settings(
    api_key=sys.argv[1], host=sys.argv[2], spool=sys.argv[3], shutdown_timeout=1.0
)
process = DeliveryProcess(settings)
for number in range(25):
    process.send(event(number))
while process.backlog() != (0, 0):  # until the child has queued them; PostHog does not answer
    time.sleep(0.01)
print(process.pid, flush=True)
time.sleep(60)
"""


def running(pid: int) -> bool:
    """Whether a process exists and has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False

    return state not in ("Z", "X")


def test_a_child_whose_parent_dies_spools_what_it_holds(
    capture: CaptureEmulator, tmp_path: Path
) -> None:
    """PostHog does not answer and the parent is killed: the child notices the closed pipe,
    gives delivery its shutdown budget, spools what is left for the next collector and
    exits."""
    spool = tmp_path / "spool.sqlite3"
    capture.reset()
    capture.hang()
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, TEST_KEY, capture.url, str(spool)],
        cwd=ROOT,
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        parent.kill()
        parent.communicate(timeout=10)

        assert eventually(lambda: not running(child), timeout=20)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.communicate(timeout=10)
        capture.reset()

    assert Spool(spool).status().rows == 25
