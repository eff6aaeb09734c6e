"""A process killed with SIGKILL while PostHog hangs: the next process delivers its events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from otel_bedrock.testing import CaptureEmulator
from tests.delivery.helpers import delivery, received

_CHILD = textwrap.dedent(
    """
    import json, sys, time, uuid
    from datetime import UTC, datetime
    from otel_bedrock.delivery import PostHogDelivery
    from otel_bedrock.delivery.spool import Spool
    from otel_bedrock.events import CaptureEvent

    url, spool, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sender = PostHogDelivery("phc_test", url, spool_path=spool, flush_interval=0.02,
                             base_backoff=0.05, max_backoff=0.2, timeout=30.0, lease_seconds=1.0,
                             batch_size=10)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    now = datetime.now(UTC)
    for id_ in ids:
        sender.send(CaptureEvent("bedrock_completion", "user-1", {}, id_, now))
    # PostHog hangs: the first batch is in flight, the rest queued behind it.
    deadline = time.monotonic() + 10
    while Spool(spool).status().rows < count and time.monotonic() < deadline:
        time.sleep(0.02)
    print(json.dumps(ids if Spool(spool).status().rows == count else []), flush=True)
    time.sleep(60)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_events_survive_kill_9(posthog: CaptureEmulator, spool_file: Path) -> None:
    """Events in flight and queued when a process is killed arrive once, sent by the next."""
    posthog.hang()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, posthog.url, str(spool_file), "40"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert child.stdout is not None
    ids = json.loads(child.stdout.readline())
    stalled = posthog.stalled
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=5)
    child.stdout.close()
    posthog.hang(False)

    sender = delivery(posthog.url, spool_file)
    assert sender.flush(5)
    # The batch that was in flight stays leased to the dead process for its one-second lease.
    assert posthog.wait_for(40, timeout=10)
    assert sender.flush(5)
    sender.shutdown()

    assert child.returncode == -signal.SIGKILL
    assert stalled == 1
    assert len(ids) == 40
    assert Counter(received(posthog)) == Counter(ids)
    assert sender.counters.sent == 40
