"""The tutorial's five insights over hand-made events, overall and per UTC day."""

from __future__ import annotations

from datetime import date
from typing import Any

from otel_bedrock.insights import Insights, compute, daily


def completion(
    user: str,
    cost: float | None = None,
    elapsed_ms: float | None = None,
    timestamp: str | None = "2025-06-01T12:00:00Z",
) -> dict[str, Any]:
    """A completion event as the capture emulator stores it."""
    properties: dict[str, Any] = {"$ai_model": "meta.llama3-1-8b-instruct-v1:0"}
    if cost is not None:
        properties["total_cost_in_dollars"] = cost
    if elapsed_ms is not None:
        properties["response_time_in_ms"] = elapsed_ms

    return {
        "event": "bedrock_completion",
        "distinct_id": user,
        "properties": properties,
        "timestamp": timestamp,
    }


def error(user: str, timestamp: str | None = "2025-06-01T12:00:00Z") -> dict[str, Any]:
    """An error event as the capture emulator stores it."""
    return {
        "event": "bedrock_error",
        "distinct_id": user,
        "properties": {"error_type": "ThrottlingException"},
        "timestamp": timestamp,
    }


def test_three_completions_by_two_users_and_one_error() -> None:
    """Counts, averages and the error rate follow the tutorial's definitions exactly."""
    events = [
        completion("ana@example.com", cost=0.25, elapsed_ms=100),
        completion("ana@example.com", cost=0.5, elapsed_ms=200),
        completion("bo@example.com", cost=1.5, elapsed_ms=600),
        error("bo@example.com"),
    ]

    assert compute(events) == Insights(
        generation_count=3,
        error_count=1,
        users=2,
        total_cost=2.25,
        avg_cost_per_call=0.75,
        avg_cost_per_user=1.125,
        avg_response_time_ms=300.0,
        error_rate=0.25,
    )


def test_unpriced_completions_do_not_count_as_zero_dollars() -> None:
    """A completion without a cost counts as a generation and a user but not in the cost mean."""
    events = [
        completion("ana@example.com", cost=0.5, elapsed_ms=100),
        completion("bo@example.com", elapsed_ms=300),
    ]

    insights = compute(events)

    assert insights.generation_count == 2
    assert insights.avg_cost_per_call == 0.5
    assert insights.avg_cost_per_user == 0.25
    assert insights.avg_response_time_ms == 200.0


def test_other_event_names_are_ignored() -> None:
    """Events other than Bedrock completions and errors change none of the numbers."""
    generation = completion("ana@example.com", cost=4.0, elapsed_ms=50)
    generation["event"] = "$ai_generation"
    events = [
        completion("ana@example.com", cost=0.5, elapsed_ms=100),
        generation,
        {"event": "$pageview", "distinct_id": "bo@example.com", "properties": {}},
    ]

    insights = compute(events)

    assert (insights.generation_count, insights.error_count, insights.users) == (1, 0, 1)
    assert insights.total_cost == 0.5
    assert insights.avg_response_time_ms == 100.0
    assert insights.error_rate == 0.0


def test_no_events_leaves_every_average_undefined() -> None:
    """Without events the counts are zero and the averages and the error rate are None."""
    assert compute([]) == Insights(
        generation_count=0,
        error_count=0,
        users=0,
        total_cost=0.0,
        avg_cost_per_call=None,
        avg_cost_per_user=None,
        avg_response_time_ms=None,
        error_rate=None,
    )


def test_only_errors_give_an_error_rate_of_one() -> None:
    """Errors alone make the error rate 1 and leave the completion averages undefined."""
    insights = compute([error("ana@example.com"), error("bo@example.com")])

    assert insights.error_rate == 1.0
    assert insights.users == 0
    assert insights.avg_cost_per_call is None
    assert insights.avg_cost_per_user is None


def test_days_split_at_utc_midnight() -> None:
    """A second before and at UTC midnight fall on two days, each with its own insights."""
    events = [
        completion("ana@example.com", cost=0.25, elapsed_ms=100, timestamp="2025-06-01T23:59:59Z"),
        error("ana@example.com", timestamp="2025-06-01T23:59:59.999999Z"),
        completion("bo@example.com", cost=0.5, elapsed_ms=300, timestamp="2025-06-02T00:00:00Z"),
    ]

    days = daily(events)

    assert [day for day, _ in days] == [date(2025, 6, 1), date(2025, 6, 2)]
    assert days[0][1] == compute(events[:2])
    assert days[1][1] == compute(events[2:])
    assert days[0][1].error_rate == 0.5
    assert days[1][1].avg_cost_per_call == 0.5


def test_offsets_are_converted_to_utc_and_naive_times_are_utc() -> None:
    """An offset moves an event to its UTC day; a time without offset is read as UTC."""
    events = [
        completion("ana@example.com", cost=0.25, timestamp="2025-06-01T20:30:00-05:00"),
        completion("bo@example.com", cost=0.5, timestamp="2025-06-02T01:00:00+02:00"),
        completion("cy@example.com", cost=1.0, timestamp="2025-06-01T23:00:00.123456"),
    ]

    days = daily(events)

    assert [(day, insights.generation_count) for day, insights in days] == [
        (date(2025, 6, 1), 2),
        (date(2025, 6, 2), 1),
    ]
    assert days[0][1].total_cost == 1.5
    assert days[1][1].total_cost == 0.25


def test_unreadable_timestamps_are_skipped() -> None:
    """Events without a timestamp, or with one that is not ISO 8601, belong to no day."""
    events = [
        completion("ana@example.com", cost=0.25, timestamp="2025-06-03T08:00:00+00:00"),
        completion("ana@example.com", cost=0.5, timestamp=None),
        completion("bo@example.com", cost=1.0, timestamp="yesterday"),
        error("bo@example.com", timestamp="2025-13-40T00:00:00Z"),
        {**error("cy@example.com"), "timestamp": 1748937600},
    ]

    days = daily(events)

    assert days == [(date(2025, 6, 3), compute(events[:1]))]


def test_days_are_sorted_and_only_bedrock_events_make_a_day() -> None:
    """Days come oldest first, and a day with only other events is not listed."""
    pageview = {"event": "$pageview", "distinct_id": "ana@example.com", "properties": {}}
    events = [
        completion("ana@example.com", cost=0.5, timestamp="2025-06-05T10:00:00Z"),
        {**pageview, "timestamp": "2025-06-04T10:00:00Z"},
        error("bo@example.com", timestamp="2025-05-31T10:00:00Z"),
    ]

    days = daily(events)

    assert [day for day, _ in days] == [date(2025, 5, 31), date(2025, 6, 5)]
    assert days[0][1].error_rate == 1.0
    assert days[1][1].generation_count == 1
