"""The ``otel-bedrock report`` command over a store file, and its HTML page."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from otel_bedrock.cli import main
from otel_bedrock.insights import compute
from otel_bedrock.report import METRICS, format_money, format_ms, format_percent
from otel_bedrock.report_html import chart_svg

# Llama 3.1 8B at $0.22 per million tokens: 1,000, 2,000 and 3,000 tokens.
EVENTS: list[dict[str, Any]] = [
    {
        "event": "bedrock_completion",
        "distinct_id": "ana@example.com",
        "properties": {"total_cost_in_dollars": 0.00022, "response_time_in_ms": 800},
        "uuid": "0001",
        "timestamp": "2025-06-01T09:00:00.000000+00:00",
        "api_key": "phc_test",
    },
    {
        "event": "bedrock_completion",
        "distinct_id": "bo@example.com",
        "properties": {"total_cost_in_dollars": 0.00044, "response_time_in_ms": 1000},
        "uuid": "0002",
        "timestamp": "2025-06-01T23:59:59Z",
        "api_key": "phc_test",
    },
    {
        "event": "bedrock_error",
        "distinct_id": "bo@example.com",
        "properties": {"error_type": "ThrottlingException"},
        "uuid": "0003",
        "timestamp": "2025-06-01T10:00:00Z",
        "api_key": "phc_test",
    },
    {
        "event": "$ai_generation",
        "distinct_id": "bo@example.com",
        "properties": {"$ai_total_cost_usd": 0.00044},
        "uuid": "0004",
        "timestamp": "2025-06-01T23:59:59Z",
        "api_key": "phc_test",
    },
    {
        "event": "bedrock_completion",
        "distinct_id": "ana@example.com",
        "properties": {"total_cost_in_dollars": 0.00066, "response_time_in_ms": 1500},
        "uuid": "0005",
        "timestamp": "2025-06-03T00:00:00Z",
        "api_key": "phc_test",
    },
]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store file holding the five ``EVENTS`` and one unreadable line."""
    path = tmp_path / "captured-events.jsonl"
    lines = [json.dumps(event) for event in EVENTS]
    path.write_text("\n".join([*lines[:2], "{not json", *lines[2:]]) + "\n", encoding="utf-8")

    return path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the command line in this process with a 120-column console."""
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "120", **(env or {})})


def row(output: str, first: str) -> list[str]:
    """The whitespace-separated cells of the printed line that starts with ``first``."""
    lines = [line.split() for line in output.splitlines() if line.split()[:1] == [first]]
    assert len(lines) == 1, output

    return lines[0]


def totals(output: str) -> dict[str, str]:
    """The insight names and values of the printed totals table."""
    cells = [line.split("│") for line in output.splitlines() if line.startswith("│ ")]

    return {cell[1].strip(): cell[2].strip() for cell in cells if cell[1].strip()}


def test_money_keeps_six_significant_digits_without_exponents() -> None:
    """Dollar amounts show at least six significant digits and a dash when undefined."""
    assert format_money(0.000088) == "$0.000088"
    assert format_money(0.00001925) == "$0.00001925"
    assert format_money(3.98276e-06) == "$0.00000398276"
    assert format_money(0.00219699) == "$0.00219699"
    assert format_money(12.3456) == "$12.3456"
    assert format_money(1234567.0) == "$1234567.00"
    assert format_money(0) == "$0"
    assert format_money(None) == "—"


def test_times_and_rates_are_formatted_with_units() -> None:
    """Response times print in milliseconds and error rates as percentages."""
    assert format_ms(1099.96) == "1100.0 ms"
    assert format_percent(1 / 3) == "33.33%"
    assert format_ms(None) == "—"
    assert format_percent(None) == "—"


def test_report_prints_the_five_insights_over_all_events(store: Path) -> None:
    """The totals table shows the exact insights of the store's events."""
    result = run("report", "--events", str(store))

    assert result.exit_code == 0, result.output
    assert totals(result.output) == {
        "Generation count": "3",
        "Average cost per call": "$0.00044",
        "Average cost per user": "$0.00066",
        "Average response time": "1100.0 ms",
        "Error rate": "25.00%",
    }
    assert result.output.startswith(f"5 events read from {store}\n")
    assert "completions 3 · errors 1 · users 2 · total cost $0.00132" in result.output


def test_report_prints_one_row_per_utc_day_including_empty_days(store: Path) -> None:
    """The trend has a row for each day from the first to the last, split at UTC midnight."""
    result = run("report", "--events", str(store))

    assert result.exit_code == 0, result.output
    assert row(result.output, "2025-06-01") == [
        "2025-06-01",
        "2",
        "1",
        "2",
        "$0.00033",
        "$0.00033",
        "900.0",
        "ms",
        "33.33%",
    ]
    assert row(result.output, "2025-06-02") == ["2025-06-02", "0", "0", "0", *["—"] * 4]
    assert row(result.output, "2025-06-03") == [
        "2025-06-03",
        "1",
        "0",
        "1",
        "$0.00066",
        "$0.00066",
        "1500.0",
        "ms",
        "0.00%",
    ]


def test_days_option_keeps_the_latest_days(store: Path) -> None:
    """With --days 2 the trend covers only the last two days up to the latest event."""
    result = run("report", "--events", str(store), "--days", "2")

    assert result.exit_code == 0, result.output
    assert "2025-06-01" not in result.output
    assert row(result.output, "2025-06-02")[1] == "0"
    assert row(result.output, "2025-06-03")[1] == "1"


def test_default_store_is_read_from_the_data_folder(store: Path) -> None:
    """Without --events the report reads the store in OTEL_BEDROCK_DATA_DIR."""
    result = run("report", env={"OTEL_BEDROCK_DATA_DIR": str(store.parent)})

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"5 events read from {store}\n")


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    """A store that does not exist fails with exit code 1 and says to run the demo."""
    missing = tmp_path / "none.jsonl"

    result = run("report", "--events", str(missing))

    assert result.exit_code == 1
    assert result.output == f"Error: no event store at {missing}: run `otel-bedrock demo` first\n"


def test_store_without_bedrock_events_prints_dashes(tmp_path: Path) -> None:
    """A store without completions or errors shows zero counts, dashes and no trend."""
    path = tmp_path / "events.jsonl"
    path.write_text("", encoding="utf-8")

    result = run("report", "--events", str(path))

    assert result.exit_code == 0, result.output
    assert totals(result.output) == {
        "Generation count": "0",
        "Average cost per call": "—",
        "Average cost per user": "—",
        "Average response time": "—",
        "Error rate": "—",
    }
    assert "no trend" in result.output


def test_html_page_is_self_contained_with_one_chart_per_insight(
    store: Path, tmp_path: Path
) -> None:
    """The HTML page exists, references nothing outside itself and holds five SVG charts."""
    page_path = tmp_path / "out" / "report.html"

    result = run("report", "--events", str(store), "--html", str(page_path))

    assert result.exit_code == 0, result.output
    assert result.output.endswith(f"HTML report written to {page_path}\n")
    page = page_path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    for outside in ("http://", "https://", "<script", "<link", "src=", "url(", "@import"):
        assert outside not in page
    assert page.count("<svg") == 5
    for metric in METRICS:
        assert page.count(f'id="chart-{metric.key}"') == 1
    assert '<div class="value">$0.00044</div>' in page
    assert "<td>2025-06-01</td><td>2</td><td>1</td><td>2</td><td>$0.00033</td>" in page


def test_line_chart_breaks_on_days_without_a_value() -> None:
    """Undefined days get no point, and the line is split around them."""
    day = compute(EVENTS[:1])
    days = [
        (date(2025, 6, 1), day),
        (date(2025, 6, 2), compute([])),
        (date(2025, 6, 3), day),
        (date(2025, 6, 4), day),
    ]
    cost_per_call = next(metric for metric in METRICS if metric.key == "cost_per_call")

    svg = chart_svg(cost_per_call, days)

    assert svg.count("<circle") == 3
    assert svg.count("<polyline") == 1
    assert "<title>2025-06-03: $0.00022</title>" in svg


def test_chart_without_any_value_says_so() -> None:
    """A chart over days where the insight is never defined draws a No data notice."""
    error_rate = next(metric for metric in METRICS if metric.key == "error_rate")

    svg = chart_svg(error_rate, [(date(2025, 6, 1), compute([]))])

    assert ">No data</text></svg>" in svg
    assert "<circle" not in svg


def test_axis_ticks_are_round_and_not_rounded_away() -> None:
    """A 10% error rate gets ticks every 2.5%, each printed exactly."""
    events = [EVENTS[0]] * 9 + [EVENTS[2]]
    error_rate = next(metric for metric in METRICS if metric.key == "error_rate")

    svg = chart_svg(error_rate, [(date(2025, 6, 1), compute(events))])

    for tick in ("0%", "2.5%", "5%", "7.5%", "10%"):
        assert f">{tick}</text>" in svg
    assert "<title>2025-06-01: 10.00%</title>" in svg
