"""The five numbers of PostHog's Bedrock tutorial, computed from the events themselves.

Generation count, average cost per call, average cost per user, average response time and
error rate, over ``bedrock_completion`` and ``bedrock_error`` events as PostHog stores them
(dicts with ``event``, ``distinct_id``, ``properties`` and an optional ISO ``timestamp``).
The definitions follow the tutorial's insights, so these numbers match what the dashboard
shows in PostHog for the same events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from otel_bedrock.events import COMPLETION_EVENT, ERROR_EVENT


@dataclass(frozen=True, slots=True)
class Insights:
    """The tutorial's five insights over a set of events.

    ``generation_count`` counts completion events. The averages are over completion events
    that carry the property (unpriced calls do not count as $0); None when there are none.
    ``avg_cost_per_user`` is the total cost divided by the number of distinct users who made
    completion calls. ``error_rate`` is errors / (completions + errors), between 0 and 1.
    """

    generation_count: int
    error_count: int
    users: int
    total_cost: float
    avg_cost_per_call: float | None
    avg_cost_per_user: float | None
    avg_response_time_ms: float | None
    error_rate: float | None


def compute(events: Iterable[Mapping[str, Any]]) -> Insights:
    """The five insights over ``events``; other event names are ignored."""
    completions = 0
    errors = 0
    users: set[str] = set()
    costs: list[float] = []
    times: list[float] = []
    for event in events:
        name = event.get("event")
        if name == ERROR_EVENT:
            errors += 1
            continue
        if name != COMPLETION_EVENT:
            continue
        completions += 1
        users.add(str(event.get("distinct_id")))
        props = event.get("properties") or {}
        cost = _number(props.get("total_cost_in_dollars"))
        if cost is not None:
            costs.append(cost)
        elapsed = _number(props.get("response_time_in_ms"))
        if elapsed is not None:
            times.append(elapsed)
    total_cost = sum(costs)
    calls = completions + errors

    return Insights(
        generation_count=completions,
        error_count=errors,
        users=len(users),
        total_cost=total_cost,
        avg_cost_per_call=total_cost / len(costs) if costs else None,
        avg_cost_per_user=total_cost / len(users) if users and costs else None,
        avg_response_time_ms=sum(times) / len(times) if times else None,
        error_rate=errors / calls if calls else None,
    )


def _number(value: Any) -> float | None:
    """A finite number, or None (booleans, text and NaN are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None

    return float(value) if math.isfinite(value) else None


def daily(events: Iterable[Mapping[str, Any]]) -> list[tuple[date, Insights]]:
    """The five insights for each UTC day that has events, oldest first.

    Only completion and error events decide which days appear. ``timestamp`` is ISO 8601;
    one without an offset is taken as UTC. Events without a readable ``timestamp`` are left
    out.
    """
    by_day: dict[date, list[Mapping[str, Any]]] = {}
    for event in events:
        if event.get("event") not in (COMPLETION_EVENT, ERROR_EVENT):
            continue
        day = _utc_day(event.get("timestamp"))
        if day is not None:
            by_day.setdefault(day, []).append(event)

    return [(day, compute(by_day[day])) for day in sorted(by_day)]


def _utc_day(timestamp: object) -> date | None:
    """The UTC calendar day of an ISO 8601 timestamp, or None when it cannot be read."""
    if not isinstance(timestamp, str):
        return None
    try:
        moment = datetime.fromisoformat(timestamp.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)

    return moment.astimezone(UTC).date()
