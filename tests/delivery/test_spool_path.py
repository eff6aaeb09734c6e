"""Where the spool goes when the default folder cannot be written, or the path given is bad."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from otel_bedrock.config import load_settings
from otel_bedrock.errors import ConfigError
from otel_bedrock.exporter import PostHogSpanExporter
from otel_bedrock.testing import CaptureEmulator
from tests.delivery.helpers import KEY


def test_unwritable_default_folder_runs_without_spool_and_warns_once(
    posthog: CaptureEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A data folder that cannot be made gives a memory-only delivery and one named warning."""
    monkeypatch.setenv("OTEL_BEDROCK_DATA_DIR", f"/proc/nonexistent-{uuid.uuid4().hex}")
    monkeypatch.delenv("OTEL_BEDROCK_SPOOL_PATH", raising=False)

    with caplog.at_level(logging.WARNING, logger="otel_bedrock"):
        first = PostHogSpanExporter(api_key=KEY, host=posthog.url)
        second = PostHogSpanExporter(api_key=KEY, host=posthog.url)
    first.shutdown()
    second.shutdown()

    assert first.delivery.spool is None
    assert second.delivery.spool is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("posthog_spool_off path=/proc/nonexistent-")
    assert "OTEL_BEDROCK_SPOOL_PATH" in warnings[0]


def test_unwritable_spool_path_given_fails_at_start(
    posthog: CaptureEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OTEL_BEDROCK_SPOOL_PATH that cannot be written is a ConfigError naming it."""
    monkeypatch.setenv("OTEL_BEDROCK_SPOOL_PATH", "/proc/nonexistent/spool.sqlite3")

    with pytest.raises(ConfigError) as raised:
        PostHogSpanExporter(api_key=KEY, host=posthog.url)

    assert str(raised.value).startswith(
        "OTEL_BEDROCK_SPOOL_PATH='/proc/nonexistent/spool.sqlite3': cannot create or write"
    )


def test_writable_default_folder_keeps_the_spool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A writable data folder gives the per-host spool file in it."""
    monkeypatch.setenv("OTEL_BEDROCK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OTEL_BEDROCK_SPOOL_PATH", raising=False)

    path = load_settings(posthog_host="https://us.i.posthog.com").spool_path

    assert path is not None
    assert path.parent == tmp_path
    assert path.name.startswith("spool-")
