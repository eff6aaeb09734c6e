"""The report as one self-contained HTML page: inline CSS and inline SVG charts, no requests.

The page holds the five insights over all events, one chart per insight over the UTC days of
the trend (bars for the generation count, lines for the others), and the per-day table. The
charts are drawn here from the numbers, so the file opens anywhere, offline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date
from html import escape
from pathlib import Path

from otel_bedrock.insights import Insights
from otel_bedrock.report import METRICS, Metric, Number, format_money

_WIDTH, _HEIGHT = 560, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 84, 16, 16, 40
_MAX_X_LABELS = 8

_STYLE = """
:root { --ink: #1d2330; --muted: #5d6675; --line: #d9dde5; --paper: #ffffff;
  --card: #f5f7fa; --accent: #1f6feb; --accent-soft: #9cc2ff; }
@media (prefers-color-scheme: dark) {
  :root { --ink: #e6e9ef; --muted: #9aa3b2; --line: #394150; --paper: #12161d;
    --card: #1b212b; --accent: #5b9dff; --accent-soft: #2f5da8; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--paper); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 12px; }
.meta { color: var(--muted); margin: 0 0 20px; overflow-wrap: anywhere; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(210px, 1fr)); gap: 12px; }
.card { background: var(--card); border-radius: 10px; padding: 14px 16px; }
.card .label { color: var(--muted); font-size: 13px; }
.card .value { font-size: 21px; font-weight: 600; font-variant-numeric: tabular-nums;
  margin: 2px 0 4px; overflow-wrap: anywhere; }
.card .how { color: var(--muted); font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 16px; }
figure { margin: 0; background: var(--card); border-radius: 10px; padding: 12px 12px 4px; }
figcaption { font-weight: 600; margin: 0 0 4px 4px; }
svg { display: block; width: 100%; height: auto; }
svg text { fill: var(--muted); font-size: 11px; font-variant-numeric: tabular-nums; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .bar { fill: var(--accent); }
svg .line { fill: none; stroke: var(--accent); stroke-width: 2; stroke-linejoin: round; }
svg .dot { fill: var(--paper); stroke: var(--accent); stroke-width: 2; }
svg .empty { fill: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { color: var(--muted); font-weight: 600; font-size: 13px; }
.scroll { overflow-x: auto; }
"""


def render_html(
    totals: Insights, days: Sequence[tuple[date, Insights]], *, source: Path, event_count: int
) -> str:
    """The whole page for ``totals`` over all events and the per-day ``days``, oldest first."""
    span = f"{days[0][0].isoformat()} to {days[-1][0].isoformat()}" if days else "no days"
    meta = (
        f"{event_count} events from {source} · {totals.generation_count} completions, "
        f"{totals.error_count} errors, {totals.users} users, total cost "
        f"{format_money(totals.total_cost)} · trend over UTC days {span}"
    )
    cards = "\n".join(_card(metric, totals) for metric in METRICS)
    charts = "\n".join(_figure(metric, days) for metric in METRICS)

    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bedrock insights · otel-bedrock</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<h1>Bedrock insights</h1>
<p class="meta">{escape(meta)}</p>
<section class="cards">
{cards}
</section>
<h2>Per day (UTC)</h2>
<section class="charts">
{charts}
</section>
<h2>Per-day numbers</h2>
<div class="scroll">
{_day_table(days)}
</div>
</main>
</body>
</html>
"""


def _card(metric: Metric, totals: Insights) -> str:
    """One insight over all events, as a card."""
    return (
        f'<div class="card" id="total-{metric.key}"><div class="label">{escape(metric.title)}'
        f'</div><div class="value">{escape(metric.text(metric.value(totals)))}</div>'
        f'<div class="how">{escape(metric.definition)}</div></div>'
    )


def _figure(metric: Metric, days: Sequence[tuple[date, Insights]]) -> str:
    """One insight's chart over the days, with its caption."""
    return (
        f'<figure id="chart-{metric.key}"><figcaption>{escape(metric.title)}</figcaption>\n'
        f"{chart_svg(metric, days)}\n</figure>"
    )


def chart_svg(metric: Metric, days: Sequence[tuple[date, Insights]]) -> str:
    """An inline SVG chart of one insight per day: bars for counts, a line for averages.

    Days where the insight is undefined have no bar or point, and the line breaks there.
    """
    title = f"<title>{escape(metric.title)} per UTC day</title>"
    head = (
        f'<svg viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'role="img" aria-label="{escape(metric.title)} per UTC day">{title}'
    )
    values = [metric.value(insights) for _, insights in days]
    defined = [value for value in values if value is not None]
    if not defined:
        middle = f'x="{_WIDTH / 2:.0f}" y="{_HEIGHT / 2:.0f}" text-anchor="middle"'
        return f'{head}<text class="empty" {middle}>No data</text></svg>'

    ticks = _ticks(max(defined), whole=metric.key == "generations")
    top = ticks[-1]
    plot_width = _WIDTH - _LEFT - _RIGHT
    plot_height = _HEIGHT - _TOP - _BOTTOM
    band = plot_width / len(days)

    def x(index: int) -> float:
        return _LEFT + (index + 0.5) * band

    def y(value: Number) -> float:
        return _TOP + plot_height * (1 - value / top)

    parts = [head]
    for tick in ticks:
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" '
            f'y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
            f'<text x="{_LEFT - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">'
            f"{escape(metric.tick(tick))}</text>"
        )
    step = math.ceil(len(days) / _MAX_X_LABELS)
    for index, (day, _) in enumerate(days):
        if index % step == 0:
            label = day.isoformat() if len(days) <= 4 else day.strftime("%m-%d")
            parts.append(
                f'<text x="{x(index):.1f}" y="{_HEIGHT - _BOTTOM + 18}" '
                f'text-anchor="middle">{label}</text>'
            )
    if metric.key == "generations":
        parts.extend(_bars(metric, days, values, band, x, y))
    else:
        parts.extend(_line(metric, days, values, x, y))
    parts.append("</svg>")

    return "".join(parts)


def _bars(
    metric: Metric,
    days: Sequence[tuple[date, Insights]],
    values: Sequence[Number | None],
    band: float,
    x: Callable[[int], float],
    y: Callable[[Number], float],
) -> list[str]:
    """One bar a day, each with a tooltip giving the day and the value."""
    width = min(band * 0.6, 48.0)
    bottom = y(0)
    bars = []
    for index, ((day, _), value) in enumerate(zip(days, values, strict=True)):
        if value is None:
            continue
        bars.append(
            f'<rect class="bar" x="{x(index) - width / 2:.1f}" y="{y(value):.1f}" '
            f'width="{width:.1f}" height="{bottom - y(value):.1f}">'
            f"<title>{day.isoformat()}: {escape(metric.text(value))}</title></rect>"
        )

    return bars


def _line(
    metric: Metric,
    days: Sequence[tuple[date, Insights]],
    values: Sequence[Number | None],
    x: Callable[[int], float],
    y: Callable[[Number], float],
) -> list[str]:
    """A line through the defined values, broken where a day has none, and a dot per value."""
    runs: list[list[str]] = [[]]
    dots = []
    for index, ((day, _), value) in enumerate(zip(days, values, strict=True)):
        if value is None:
            runs.append([])
            continue
        point = f"{x(index):.1f},{y(value):.1f}"
        runs[-1].append(point)
        dots.append(
            f'<circle class="dot" cx="{x(index):.1f}" cy="{y(value):.1f}" r="3.5">'
            f"<title>{day.isoformat()}: {escape(metric.text(value))}</title></circle>"
        )
    lines = [f'<polyline class="line" points="{" ".join(run)}"/>' for run in runs if len(run) > 1]

    return lines + dots


def _ticks(highest: Number, *, whole: bool = False) -> list[float]:
    """Round axis values from 0 up to at least ``highest``, in four steps or fewer.

    With ``whole`` the steps are whole numbers, for counts.
    """
    if highest <= 0:
        return [0.0, 1.0]
    rough = highest / 4
    magnitude = 10 ** math.floor(math.log10(rough))
    factors = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(factor * magnitude for factor in factors if factor * magnitude >= rough)
    if whole:
        step = max(1.0, step)
    count = math.ceil(highest / step - 1e-9)

    return [step * n for n in range(count + 1)]


def _day_table(days: Sequence[tuple[date, Insights]]) -> str:
    """The per-day numbers as an HTML table."""
    count, *averages = METRICS
    headers = ["Day", count.title, "Errors", "Users", *(metric.title for metric in averages)]
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    rows = []
    for day, insights in days:
        cells = [
            day.isoformat(),
            count.text(count.value(insights)),
            str(insights.error_count),
            str(insights.users),
            *(metric.text(metric.value(insights)) for metric in averages),
        ]
        rows.append("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>")

    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
