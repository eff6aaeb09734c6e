"""A capture emulator of its own for each delivery test, on a port kept across restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_bedrock.testing import CaptureEmulator
from otel_bedrock.testing._server import free_port
from tests.delivery.helpers import KEY


@pytest.fixture
def posthog() -> Iterator[CaptureEmulator]:
    """A fresh capture emulator; ``stop()`` then ``start()`` keeps its port."""
    with CaptureEmulator(accepted_keys={KEY}, port=free_port()) as emulator:
        yield emulator


@pytest.fixture
def spool_file(tmp_path: Path) -> Path:
    """A spool path in the test's temporary folder."""
    return tmp_path / "spool.sqlite3"
