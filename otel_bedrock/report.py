"""The ``otel-bedrock report`` command: the tutorial's insights from locally captured events.

It reads the JSON-lines store the demo's PostHog capture emulator writes, prints the five
insights over all events and their trend per UTC day, and can write a self-contained HTML page
with one chart per insight. The formatting of each number lives here, so the terminal and the
page show the same text for the same value.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from otel_bedrock.insights import Insights, compute, daily
from otel_bedrock.store import default_event_store, read_events

logger = logging.getLogger(__name__)

MISSING = "—"
"""What is shown for a number that is undefined, such as an average over no calls."""

DEFAULT_DAYS = 30

Number = int | float


def format_money(value: Number | None, digits: int = 6) -> str:
    """Dollars to ``digits`` significant digits, never in exponent notation, without trailing
    zeros past the cents: ``$0.00001925``, ``$12.3456``, ``$1234567.00``."""
    if value is None:
        return MISSING
    if value == 0:
        return "$0"
    decimals = max(2, digits - 1 - math.floor(math.log10(abs(value))))
    whole, _, fraction = f"{value:.{decimals}f}".partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")

    return f"${whole}.{fraction}"


def format_ms(value: Number | None, decimals: int = 1) -> str:
    """Milliseconds with ``decimals`` decimals."""
    if value is None:
        return MISSING

    return f"{value:.{decimals}f} ms"


def format_percent(value: Number | None, decimals: int = 2) -> str:
    """A fraction between 0 and 1 as a percentage with ``decimals`` decimals."""
    if value is None:
        return MISSING

    return f"{value * 100:.{decimals}f}%"


def format_count(value: Number | None) -> str:
    """A count; a fractional value (an axis tick) keeps one decimal."""
    if value is None:
        return MISSING
    if float(value).is_integer():
        return str(int(value))

    return f"{value:.1f}"


def _trim(value: Number) -> str:
    """A number with at most two decimals and no trailing zeros, for axis ticks."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class Metric:
    """One of the tutorial's insights: how to read it from `Insights` and how to show it.

    Attributes:
        key: A short identifier, used for ids in the HTML page.
        title: The insight's name as the tutorial gives it.
        column: A short column header, for the terminal's per-day table.
        definition: How the number is computed, in a few words.
        value: Reads the number from an `Insights`; None when undefined.
        text: The full text of a value, as printed in tables.
        tick: A shorter text of a value, for chart axes.
    """

    key: str
    title: str
    column: str
    definition: str
    value: Callable[[Insights], Number | None]
    text: Callable[[Number | None], str]
    tick: Callable[[Number], str]


METRICS: tuple[Metric, ...] = (
    Metric(
        "generations",
        "Generation count",
        "Gens",
        "bedrock_completion events",
        lambda insights: insights.generation_count,
        format_count,
        format_count,
    ),
    Metric(
        "cost_per_call",
        "Average cost per call",
        "Avg $/call",
        "mean total_cost_in_dollars of priced completions",
        lambda insights: insights.avg_cost_per_call,
        format_money,
        lambda value: format_money(value, 3),
    ),
    Metric(
        "cost_per_user",
        "Average cost per user",
        "Avg $/user",
        "total cost / distinct users with completions",
        lambda insights: insights.avg_cost_per_user,
        format_money,
        lambda value: format_money(value, 3),
    ),
    Metric(
        "response_time",
        "Average response time",
        "Avg time",
        "mean response_time_in_ms of completions",
        lambda insights: insights.avg_response_time_ms,
        format_ms,
        lambda value: f"{_trim(value)} ms",
    ),
    Metric(
        "error_rate",
        "Error rate",
        "Error rate",
        "errors / (completions + errors)",
        lambda insights: insights.error_rate,
        format_percent,
        lambda value: f"{_trim(value * 100)}%",
    ),
)
"""The five insights, in the tutorial's order."""


def trend(events: Sequence[Mapping[str, Any]], days: int) -> list[tuple[date, Insights]]:
    """The insights for each UTC day of the last ``days`` days up to the latest event's day.

    Days inside that range without events are included with zero counts, so a chart over the
    result shows gaps as what they are. Empty when no event has a readable day.
    """
    by_day = dict(daily(events))
    if not by_day:
        return []
    last = max(by_day)
    first = max(min(by_day), last - timedelta(days=days - 1))
    empty = compute(())
    span = (last - first).days + 1

    return [
        (day, by_day.get(day, empty)) for day in (first + timedelta(days=n) for n in range(span))
    ]


def totals_table(totals: Insights) -> Table:
    """The terminal table of the five insights over all events."""
    table = Table(
        title="Bedrock insights, all events",
        title_justify="left",
        caption=(
            f"completions {totals.generation_count} · errors {totals.error_count} · "
            f"users {totals.users} · total cost {format_money(totals.total_cost)}"
        ),
        caption_justify="left",
    )
    table.add_column("Insight")
    table.add_column("Value", justify="right", no_wrap=True)
    table.add_column("Computed as", style="dim")
    for metric in METRICS:
        table.add_row(metric.title, metric.text(metric.value(totals)), metric.definition)

    return table


def trend_table(days: Sequence[tuple[date, Insights]]) -> Table:
    """The terminal table of the insights per UTC day, one row a day."""
    count, *averages = METRICS
    table = Table(
        title="Per day (UTC)",
        title_justify="left",
        caption="Gens: generations; Errs: errors",
        caption_justify="left",
        box=None,
        pad_edge=False,
        header_style="bold",
    )
    table.add_column("Day", no_wrap=True)
    for header in (count.column, "Errs", "Users"):
        table.add_column(header, justify="right")
    for metric in averages:
        # The numbers never wrap or shorten; headers wrap when the terminal is narrow.
        table.add_column(metric.column, justify="right", no_wrap=metric.key != "error_rate")
    for day, insights in days:
        table.add_row(
            day.isoformat(),
            count.text(count.value(insights)),
            str(insights.error_count),
            str(insights.users),
            *(metric.text(metric.value(insights)) for metric in averages),
        )

    return table


@click.command("report")
@click.option(
    "--events",
    "events_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The JSON-lines event store to read [default: the demo's capture store].",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write a self-contained HTML page with charts to this file.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=DEFAULT_DAYS,
    show_default=True,
    help="How many UTC days, up to the latest event's, the trend covers.",
)
def report_command(events_path: Path | None, html_path: Path | None, days: int) -> None:
    """Compute the tutorial's five insights, and their trend per day, from captured events.

    The events are those the demo's local PostHog capture emulator received.
    """
    source = events_path if events_path is not None else default_event_store()
    try:
        events = read_events(source)
    except FileNotFoundError as error:
        raise click.ClickException(
            f"no event store at {source}: run `otel-bedrock demo` first"
        ) from error
    except OSError as error:
        raise click.ClickException(f"cannot read the event store {source}: {error}") from error
    logger.info("report_events_read path=%s count=%s", source, len(events))

    totals = compute(events)
    per_day = trend(events, days)
    console = Console(highlight=False)
    console.print(f"{len(events)} events read from {source}", markup=False, soft_wrap=True)
    console.print()
    console.print(totals_table(totals))
    console.print()
    if per_day:
        console.print(trend_table(per_day))
    else:
        console.print("No completion or error events with a readable timestamp: no trend.")

    if html_path is not None:
        from otel_bedrock.report_html import render_html

        page = render_html(totals, per_day, source=source, event_count=len(events))
        try:
            html_path.parent.mkdir(parents=True, exist_ok=True)
            html_path.write_text(page, encoding="utf-8")
        except OSError as error:
            raise click.ClickException(f"cannot write {html_path}: {error}") from error
        click.echo(f"HTML report written to {html_path}")
