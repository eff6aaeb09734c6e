"""PostHog's insight query schema, as far as the dashboard stand-in checks it."""

from __future__ import annotations

import string
from typing import Any

# Checked against posthog/schema.py of PostHog/posthog (generated from
# frontend/src/queries/schema/schema-general.ts), stored version at commit 0000f87be414:
# AggregationAxisFormat, BaseMathType, CountPerActorMathType, ChartDisplayType, DateRange,
# TrendsFilter, and the node fields and math union of ActionsNode and GroupNode there; the
# EventsNode, TrendsQuery, InsightVizNode, IntervalType and PropertyMathType models in earlier
# stored versions of the same file. Every model there is ``extra="forbid"``, hence the closed
# field sets below.
_AXIS_FORMATS = frozenset("numeric duration duration_ms percentage percentage_scaled".split()) | {
    "currency",
    "short",
}
_PROPERTY_MATH = frozenset("avg sum min max median p75 p90 p95 p99".split())
_MATH = (
    _PROPERTY_MATH
    | frozenset(f"{stat}_count_per_actor" for stat in _PROPERTY_MATH - {"sum"})
    | frozenset(
        "total dau weekly_active monthly_active unique_session first_time_for_user "
        "first_matching_event_for_user first_time_for_user_with_filters unique_group hogql".split()
    )
)
_INTERVALS = frozenset("second minute hour day week month".split())
_DISPLAYS = frozenset(
    "Auto ActionsLineGraph ActionsBar ActionsUnstackedBar ActionsStackedBar ActionsAreaGraph "
    "ActionsLineGraphCumulative BoldNumber ActionsPie ActionsBarValue ActionsTable WorldMap "
    "CalendarHeatmap TwoDimensionalHeatmap BoxPlot".split()
)
_INSIGHT_SOURCES = frozenset(
    "TrendsQuery FunnelsQuery RetentionQuery PathsQuery StickinessQuery LifecycleQuery".split()
)
_QUERY_KINDS = frozenset("InsightVizNode DataVisualizationNode DataTableNode HogQuery".split())
_VIZ_FIELDS = frozenset(
    "kind source embedded full hidePersonsModal hideTooltipOnScroll showCorrelationTable "
    "showFilters showHeader showLastComputation showLastComputationRefresh showResults "
    "showTable suppressSessionAnalysisWarning version vizSpecificOptions".split()
)
_TRENDS_FIELDS = frozenset(
    "kind series trendsFilter interval dateRange properties breakdownFilter compareFilter "
    "conversionGoal filterTestAccounts aggregation_group_type_index samplingFactor "
    "dataColorTheme modifiers response tags version".split()
)
_EVENTS_NODE_FIELDS = frozenset(
    "kind event name custom_name math math_property math_property_type math_hogql "
    "math_group_type_index math_multiplier math_property_revenue_currency properties "
    "fixedProperties limit orderBy optionalInFunnel response version".split()
)
_TRENDS_FILTER_FIELDS = frozenset(
    "aggregationAxisFormat aggregationAxisPostfix aggregationAxisPrefix display formula "
    "breakdown_histogram_bin_count confidenceLevel decimalPlaces minDecimalPlaces "
    "detailedResultsAggregationType formulaNodes formulas goalLines hiddenLegendIndexes "
    "hideWeekends movingAverageIntervals resultCustomizationBy resultCustomizations "
    "showAlertThresholdLines showConfidenceIntervals showLabelsOnSeries showLegend "
    "showMovingAverage showMultipleYAxes showPercentStackView showTrendLines "
    "showValuesOnSeries smoothingIntervals yAxisScaleType".split()
)
_DATE_RANGE_FIELDS = frozenset({"date_from", "date_to", "explicitDate"})
_FORMULA_CHARS = frozenset(string.ascii_uppercase + string.digits + "+-*/(). ")


class SchemaError(ValueError):
    """A query that PostHog's schema would refuse; the message names the field."""


def _closed(node: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    """``node`` as an object with only ``allowed`` keys (PostHog's ``extra="forbid"``)."""
    if not isinstance(node, dict):
        raise SchemaError(f"{where} must be an object")
    unknown = sorted(set(node) - allowed)
    if unknown:
        raise SchemaError(f"{where}: extra fields not permitted: {', '.join(unknown)}")

    return node


def check_insight_query(query: Any) -> None:
    """Raise ``SchemaError`` unless ``query`` is a valid insight query for what we check.

    An ``InsightVizNode`` is checked in depth when its source is a ``TrendsQuery``; the other
    query kinds PostHog stores on insights are accepted by kind alone.
    """
    if not isinstance(query, dict) or query.get("kind") not in _QUERY_KINDS:
        kind = query.get("kind") if isinstance(query, dict) else None
        raise SchemaError(f"query.kind must be one of {sorted(_QUERY_KINDS)}, got {kind!r}")
    if query["kind"] != "InsightVizNode":
        return
    _closed(query, "query", _VIZ_FIELDS)
    source = query.get("source")
    if not isinstance(source, dict) or source.get("kind") not in _INSIGHT_SOURCES:
        raise SchemaError("query.source.kind must name an insight query such as TrendsQuery")
    if source["kind"] == "TrendsQuery":
        _check_trends(source)


def _check_trends(source: dict[str, Any]) -> None:
    """Check a ``TrendsQuery``: its fields, series, interval, date range and filter."""
    _closed(source, "query.source", _TRENDS_FIELDS)
    series = source.get("series")
    if not isinstance(series, list) or not series:
        raise SchemaError("query.source.series: a non-empty list is required")
    for index, node in enumerate(series):
        _check_series(node, f"query.source.series[{index}]")
    if source.get("interval", "day") not in _INTERVALS:
        raise SchemaError(f"query.source.interval must be one of {sorted(_INTERVALS)}")
    if "dateRange" in source:
        date_range = _closed(source["dateRange"], "query.source.dateRange", _DATE_RANGE_FIELDS)
        for key in ("date_from", "date_to"):
            if date_range.get(key) is not None and not isinstance(date_range[key], str):
                raise SchemaError(f"query.source.dateRange.{key} must be a string")
    if "trendsFilter" in source:
        _check_trends_filter(source["trendsFilter"], len(series))


def _check_series(node: Any, where: str) -> None:
    """Check one ``EventsNode`` of a series: kind, event name and math."""
    node = _closed(node, where, _EVENTS_NODE_FIELDS)
    if node.get("kind") != "EventsNode":
        raise SchemaError(f"{where}.kind must be EventsNode")
    if node.get("event") is not None and not isinstance(node["event"], str):
        raise SchemaError(f"{where}.event must be a string (or null for all events)")
    math = node.get("math", "total")
    if math not in _MATH:
        raise SchemaError(f"{where}.math {math!r} is not a PostHog math type")
    if math in _PROPERTY_MATH and not isinstance(node.get("math_property"), str):
        raise SchemaError(f"{where}.math_property is required for math {math!r}")


def _check_trends_filter(node: Any, series_count: int) -> None:
    """Check a ``TrendsFilter``: axis format, display, decimals and formula letters."""
    where = "query.source.trendsFilter"
    node = _closed(node, where, _TRENDS_FILTER_FIELDS)
    axis = node.get("aggregationAxisFormat", "numeric")
    if axis not in _AXIS_FORMATS:
        raise SchemaError(f"{where}.aggregationAxisFormat must be one of {sorted(_AXIS_FORMATS)}")
    if node.get("display", "ActionsLineGraph") not in _DISPLAYS:
        raise SchemaError(f"{where}.display is not a chart display type")
    for key in ("decimalPlaces", "minDecimalPlaces"):
        if key in node and not isinstance(node[key], int | float):
            raise SchemaError(f"{where}.{key} must be a number")
    formula = node.get("formula")
    if formula is None:
        return
    if not isinstance(formula, str) or not formula.strip() or set(formula) - _FORMULA_CHARS:
        raise SchemaError(f"{where}.formula must be an arithmetic expression over series letters")
    letters = {char for char in formula if char.isalpha()}
    known = set(string.ascii_uppercase[:series_count])
    if letters - known:
        raise SchemaError(f"{where}.formula refers to missing series {sorted(letters - known)}")
