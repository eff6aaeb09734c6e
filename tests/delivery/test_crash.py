"""A process killed with SIGKILL during an outage: the next process delivers its events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
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
                             base_backoff=0.05, max_backoff=0.2, timeout=1.0, lease_seconds=1.0)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    now = datetime.now(UTC)
    for id_ in ids:
        sender.send(CaptureEvent("bedrock_completion", "user-1", {}, id_, now))
    while Spool(spool).status().rows < count:
        time.sleep(0.02)
    print(json.dumps(ids), flush=True)
    time.sleep(60)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_events_survive_kill_9(posthog: CaptureEmulator, spool_file: Path) -> None:
    """Events spooled by a process killed with SIGKILL arrive once, sent by the next process."""
    url = posthog.url
    posthog.stop()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, str(spool_file), "40"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert child.stdout is not None
    ids = json.loads(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=5)
    child.stdout.close()
    posthog.start()

    sender = delivery(posthog.url, spool_file)
    assert sender.flush(5)
    sender.shutdown()

    assert child.returncode == -signal.SIGKILL
    assert sorted(received(posthog)) == sorted(ids)
    assert sender.counters.sent == 40
