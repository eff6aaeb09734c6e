"""The collector's delivery process: events cross to the child and reach PostHog, its pressure
and counters reach the parent, a child that dies is replaced without losing a chunk, and a
child whose parent dies spools what it holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.delivery import DeliveryProcess
from otel_bedrock.config import load_settings
from otel_bedrock.delivery.spool import Spool
from otel_bedrock.events import CaptureEvent
from otel_bedrock.testing import CaptureEmulator
from tests.conftest import TEST_KEY, child_environment, eventually

ROOT = Path(__file__).resolve().parents[2]


def event(number: int) -> CaptureEvent:
    return CaptureEvent(
        event="bedrock_completion",
        distinct_id=f"user-{number % 3}",
        properties={"model": "amazon.nova-micro-v1:0", "input_tokens": number, "cost_usd": 0.5},
        uuid=str(uuid.UUID(int=number + 1)),
        timestamp=datetime(2026, 12, 4, 6, 0, number % 60, tzinfo=UTC),
    )


@pytest.fixture
def start(capture: CaptureEmulator) -> Iterator[type[DeliveryProcess]]:
    """Builds delivery processes that send to the capture emulator (reset first); shuts them
    down after."""
    capture.reset()
    started: list[DeliveryProcess] = []

    def build(**options: object) -> DeliveryProcess:
        spool = str(options.pop("spool", "off"))
        settings = load_settings(api_key=TEST_KEY, host=capture.url, spool=spool)
        process = DeliveryProcess(settings, **options)  # type: ignore[arg-type]
        started.append(process)
        return process

    yield build  # type: ignore[misc]
    for process in started:
        process.shutdown(2.0)


def test_events_reach_posthog_from_the_child(start, capture: CaptureEmulator) -> None:
    """Every event sent to the parent arrives once, as sent; the counters come back."""
    process = start(batch_size=50)
    assert process.pid != os.getpid()

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


def test_a_value_pickle_refuses_is_sent_as_its_text(start, capture: CaptureEmulator) -> None:
    """Properties that cannot cross to the child (a lock, say) arrive as their text, as
    PostHog would receive them from the in-process delivery; the other events of the chunk
    are untouched."""
    process = start()
    odd = event(1)
    lock = threading.Lock()
    odd.properties["lock"] = lock
    process.send(event(0))
    process.send(odd)

    assert process.flush(10.0) is True
    received = {item["uuid"]: item["properties"] for item in capture.events}
    assert received[odd.uuid]["lock"] == str(lock)
    assert received[odd.uuid]["input_tokens"] == 1
    assert received[event(0).uuid]["input_tokens"] == 0


def test_flush_delivers_what_was_buffered(start, capture: CaptureEmulator) -> None:
    process = start()
    for number in range(10):
        process.send(event(number))

    assert process.flush(10.0) is True
    assert len(capture.events) == 10
    assert process.counters.snapshot()["sent"] == 10


def test_a_stalled_child_makes_the_parent_refuse(start, capture: CaptureEmulator) -> None:
    """While the child cannot take events, the parent's buffer fills and ``pressure`` says
    full; once the child goes on, everything is delivered and the pressure is gone."""
    process = start(max_buffer=20)
    process.send(event(0))
    assert eventually(lambda: len(capture.events) == 1)
    assert process.pressure().full is False

    os.kill(process.pid, signal.SIGSTOP)
    try:
        for number in range(1, 1500):  # more than one chunk: the feeder waits on the child
            process.send(event(number))
        assert process.pressure().full is True
    finally:
        os.kill(process.pid, signal.SIGCONT)

    assert eventually(lambda: len(capture.events) == 1500, timeout=15)
    assert eventually(lambda: process.pressure().full is False)


def test_a_child_that_dies_is_replaced_and_its_chunk_sent_again(
    start, capture: CaptureEmulator
) -> None:
    """Killing the child loses no event the parent still held, and the counters go on from
    where the dead child left them."""
    process = start()
    for number in range(30):
        process.send(event(number))
    assert eventually(lambda: len(capture.events) == 30)
    assert eventually(lambda: process.counters.snapshot()["sent"] == 30)
    first = process.pid

    os.kill(first, signal.SIGSTOP)  # events wait in the parent...
    for number in range(30, 60):
        process.send(event(number))
    os.kill(first, signal.SIGKILL)  # ...and the child dies before taking them

    assert eventually(lambda: process.pid != first, timeout=20)
    assert eventually(lambda: len(capture.events) == 60, timeout=20)
    assert sorted({item["uuid"] for item in capture.events}) == sorted(
        str(uuid.UUID(int=number + 1)) for number in range(60)
    )
    assert eventually(lambda: process.counters.snapshot()["sent"] == 60)


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
process.flush(0.2)  # hands the events to the child; PostHog does not answer
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
