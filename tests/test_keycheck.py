"""The optional start-up check of the PostHog project key, against the capture emulator."""

from __future__ import annotations

import logging

import pytest

from otel_bedrock.errors import ConfigError
from otel_bedrock.exporter import PostHogSpanExporter
from otel_bedrock.keycheck import check_project_key
from otel_bedrock.testing import CaptureEmulator
from tests.conftest import TEST_KEY


def test_known_key_passes(capture: CaptureEmulator) -> None:
    """A key the project knows is accepted."""
    assert check_project_key(TEST_KEY, capture.url) is True


def test_unknown_key_fails_at_start_naming_the_setting(capture: CaptureEmulator) -> None:
    """A well-formed key the project does not know stops the exporter at start."""
    with pytest.raises(ConfigError, match="POSTHOG_API_KEY is not a project key of"):
        PostHogSpanExporter(api_key="phc_wrong", host=capture.url, verify_key=True)


def test_unreachable_host_only_warns(unused_port: int, caplog: pytest.LogCaptureFixture) -> None:
    """When PostHog cannot be asked, events are still sent: a warning, not an error."""
    with caplog.at_level(logging.WARNING):
        assert check_project_key(TEST_KEY, f"http://127.0.0.1:{unused_port}", timeout=1) is False

    assert "posthog_key_check_failed" in caplog.text
