"""Token counts as read from any source: integers from 0 to a billion, nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from otel_bedrock.usage import MAX_TOKENS, count


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (12, 12),
        ("12", 12),
        (12.0, 12),
        (MAX_TOKENS, MAX_TOKENS),
        (MAX_TOKENS + 1, None),
        (2**63 - 1, None),
        (1e300, None),
        ("9" * 300, None),
        (-1, None),
        (-1.0, None),
        (1.5, None),
        (float("nan"), None),
        (float("inf"), None),
        (True, None),
        ("²", None),
        ("١٢", None),
        (" 12", None),
        ("", None),
        (None, None),
        ((12,), None),
    ],
)
def test_count_takes_integers_up_to_a_billion(value: Any, expected: int | None) -> None:
    """A count is a whole number of tokens no call could exceed; anything else is missing."""
    assert count(value) == expected
