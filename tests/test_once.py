"""Logging a problem once per process: keys remembered in bounded room per kind."""

from __future__ import annotations

import pytest

from otel_bedrock import _once
from otel_bedrock._once import first_time


def test_a_key_is_first_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_once, "_seen", {})

    assert [first_time("posthog_unreachable:h"), first_time("posthog_unreachable:h")] == [
        True,
        False,
    ]


def test_keys_made_from_data_cannot_use_up_the_room_of_other_kinds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past its bound, a kind's new keys are never first; other kinds are unaffected."""
    monkeypatch.setattr(_once, "_seen", {})
    monkeypatch.setattr(_once, "_MAX_KEYS", 3)

    made_up = [first_time(f"variant:model-{number}") for number in range(5)]

    assert made_up == [True, True, True, False, False]
    assert first_time("posthog_unauthorized:https://us.i.posthog.com") is True
