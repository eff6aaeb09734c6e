"""``otel-bedrock spool status`` and ``spool drain``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from otel_bedrock.config import load_settings
from otel_bedrock.delivery.spool import Spool
from otel_bedrock.delivery.transport import to_wire
from otel_bedrock.delivery_cli import spool_command
from otel_bedrock.testing import CaptureEmulator
from tests.delivery.helpers import KEY, make_events, received


def test_status_and_drain(posthog: CaptureEmulator, spool_file: Path) -> None:
    """Status shows the spooled rows; drain sends them, prints counters and empties the spool."""
    events = make_events(3)
    spool = Spool(spool_file)
    spool.put([to_wire(event) for event in events])
    size = spool.status().bytes
    spool.close()
    runner = CliRunner()

    status = runner.invoke(spool_command, ["status", "--path", str(spool_file)])
    assert status.exit_code == 0, status.output
    assert status.output == (
        f"path={spool_file} rows=3 bytes={size} oldest_age_seconds=0 claimed=0\n"
    )

    drain = runner.invoke(
        spool_command,
        ["drain", "--path", str(spool_file), "--api-key", KEY, "--host", posthog.url],
    )
    assert drain.exit_code == 0, drain.output
    assert drain.output == (
        f"draining {spool_file} to {posthog.url} for up to 60 s\n"
        f"path={spool_file} sent=3 retried=0 spooled=0 evicted=0 dropped=0 left=0\n"
    )
    assert sorted(received(posthog)) == sorted(event.uuid for event in events)


def test_drain_of_a_given_file_needs_its_host(
    spool_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """drain --path without --host or POSTHOG_HOST refuses, rather than send to the US cloud."""
    monkeypatch.delenv("POSTHOG_HOST", raising=False)
    spool = Spool(spool_file)
    spool.put([to_wire(event) for event in make_events(1)])
    spool.close()

    drain = CliRunner().invoke(
        spool_command, ["drain", "--path", str(spool_file), "--api-key", KEY]
    )

    assert drain.exit_code == 1
    assert "give --host (or POSTHOG_HOST) with --path" in drain.output
    assert Spool(spool_file).status().rows == 1


def test_status_without_a_spool(tmp_path: Path) -> None:
    """Status of a missing spool file says so and succeeds."""
    missing = tmp_path / "none.sqlite3"
    result = CliRunner().invoke(spool_command, ["status", "--path", str(missing)])

    assert result.exit_code == 0
    assert result.output == (
        f"path={missing} rows=0 bytes=0 oldest_age_seconds=0 claimed=0 (no spool file)\n"
    )


def test_drain_uses_the_configured_bounds_and_fails_on_eviction(
    posthog: CaptureEmulator, spool_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drain applies OTEL_BEDROCK_SPOOL_MAX_MB and exits 1 when it had to evict events."""
    events = make_events(4)
    spool = Spool(spool_file)
    spool.put([to_wire(event) for event in events])
    size = spool.status().bytes // 4
    spool.close()
    monkeypatch.setenv("OTEL_BEDROCK_SPOOL_MAX_MB", str(2.5 * size / (1024 * 1024)))

    drain = CliRunner().invoke(
        spool_command,
        ["drain", "--path", str(spool_file), "--api-key", KEY, "--host", posthog.url],
    )
    assert drain.exit_code == 1, drain.output
    assert drain.output == (
        f"draining {spool_file} to {posthog.url} for up to 60 s\n"
        f"path={spool_file} sent=2 retried=0 spooled=0 evicted=2 dropped=0 left=0\n"
    )
    assert sorted(received(posthog)) == sorted(event.uuid for event in events[2:])


def test_default_spool_file_does_not_depend_on_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two project keys on one host share the default spool file; another host does not."""
    monkeypatch.delenv("OTEL_BEDROCK_SPOOL_PATH", raising=False)
    wrong = load_settings(api_key="phc_wrong", host="https://us.i.posthog.com")
    fixed = load_settings(api_key="phc_fixed", host="https://us.i.posthog.com")
    other = load_settings(api_key="phc_fixed", host="https://eu.i.posthog.com")

    assert wrong.spool_path == fixed.spool_path
    assert wrong.spool_path != other.spool_path
