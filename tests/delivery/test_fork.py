"""A fork that runs no Python fork hooks (uWSGI's default): the child starts clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from otel_bedrock.delivery.spool import Spool
from otel_bedrock.testing import CaptureEmulator
from tests.delivery.helpers import received

# In a process of its own, so that no other thread is running when it forks: a libc fork()
# copies locks held by other threads, and only a quiet process can fork so safely.
_FORKING = textwrap.dedent(
    """
    import ctypes, json, os, sys, time, uuid
    from datetime import UTC, datetime
    from otel_bedrock.delivery import PostHogDelivery
    from otel_bedrock.events import CaptureEvent

    def events(count):
        now = datetime.now(UTC)
        return [CaptureEvent("bedrock_completion", "u", {}, str(uuid.uuid4()), now)
                for _ in range(count)]

    url, spool = sys.argv[1], sys.argv[2]
    sender = PostHogDelivery("phc_test", url, spool_path=spool, flush_interval=30,
                             spool_poll_interval=30)
    before, later = events(5), events(4)
    for event in before:
        sender.send(event)
    time.sleep(0.2)  # the worker and the spool writer wait, holding no lock
    # PyDLL keeps the GIL across the call: the child does not wait for a thread it lacks.
    pid = ctypes.PyDLL(None).fork()
    if pid == 0:
        for event in later:
            sender.send(event)
        report = {"flushed": sender.flush(5), "sent": sender.counters.sent,
                  "ids": [event.uuid for event in later]}
        print("child " + json.dumps(report), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    report = {"flushed": sender.flush(5), "sent": sender.counters.sent,
              "ids": [event.uuid for event in before]}
    sender.shutdown()
    print("parent " + json.dumps(report), flush=True)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs libc fork()")
def test_fork_without_python_hooks_resets_the_child(
    posthog: CaptureEmulator, spool_file: Path
) -> None:
    """After libc fork() the child sends only its own events, once; the parent keeps its own."""
    result = subprocess.run(
        [sys.executable, "-c", _FORKING, posthog.url, str(spool_file)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        check=True,
    )
    reports = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    child, parent = json.loads(reports["child"]), json.loads(reports["parent"])

    assert (child["flushed"], child["sent"]) == (True, 4)
    assert (parent["flushed"], parent["sent"]) == (True, 5)
    assert Counter(received(posthog)) == Counter([*parent["ids"], *child["ids"]])


def test_spool_after_fork_keeps_the_parents_connection(spool_file: Path) -> None:
    """after_fork sets the inherited connection aside unclosed and opens a new one on use."""
    spool = Spool(spool_file)
    inherited = spool._connection
    assert inherited is not None

    spool.after_fork()

    assert spool._inherited == [inherited]
    assert inherited.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
    assert spool.status().rows == 0
    assert spool._connection is not inherited
    spool.close()
    inherited.close()
