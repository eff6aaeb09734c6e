"""Tests for ``otel-bedrock dashboard`` against the local stand-in of PostHog's REST API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from otel_bedrock.cli import main
from otel_bedrock.dashboard import DashboardError, app_host, tutorial_insights
from otel_bedrock.testing import PostHogApiEmulator
from otel_bedrock.testing.posthog_api import SchemaError, check_insight_query

KEY = "phx_test"
PROJECT = 7
FORBIDDEN = 9
NAMES = [
    "Generation count",
    "Average cost per API call",
    "Average cost per user",
    "Average API response time",
    "Error rate",
]


@pytest.fixture
def api() -> Iterator[PostHogApiEmulator]:
    """A running stand-in with one usable and one forbidden project."""
    with PostHogApiEmulator({KEY}, projects={PROJECT}, forbidden_projects={FORBIDDEN}) as emu:
        yield emu


def run(api: PostHogApiEmulator, *args: str, **env: str) -> Result:
    """Run ``otel-bedrock dashboard`` with settings from the environment."""
    settings = {
        "POSTHOG_PERSONAL_API_KEY": KEY,
        "POSTHOG_PROJECT_ID": str(PROJECT),
        "POSTHOG_HOST": api.url,
        **env,
    }
    return CliRunner(env=settings).invoke(main, ["dashboard", *args])


def call(api: PostHogApiEmulator, method: str, path: str, body: Any = None) -> requests.Response:
    """One raw request to the stand-in with the test key."""
    headers = {"Authorization": f"Bearer {KEY}"}
    with requests.Session() as session:
        return session.request(method, f"{api.url}{path}", json=body, headers=headers, timeout=5)


def test_first_run_creates_one_dashboard_holding_five_insights(api: PostHogApiEmulator) -> None:
    """A first run creates the dashboard and the five insights on it, and prints its URL."""
    result = run(api)

    assert result.exit_code == 0, result.output
    [dashboard] = api.dashboards
    insights = api.insights
    assert dashboard["name"] == "Bedrock LLM usage"
    assert [insight["name"] for insight in insights] == NAMES
    assert all(insight["dashboards"] == [dashboard["id"]] for insight in insights)
    assert [tile["insight"]["id"] for tile in dashboard["tiles"]] == [i["id"] for i in insights]
    assert result.output.splitlines() == [
        "created   dashboard 'Bedrock LLM usage'",
        *[f"created   insight {name!r}" for name in NAMES],
        f"Dashboard: {api.url}/project/{PROJECT}/dashboard/{dashboard['id']}",
    ]


def test_second_run_duplicates_nothing(api: PostHogApiEmulator) -> None:
    """Running twice leaves exactly one dashboard and the same five insights."""
    first = run(api)
    ids = [insight["id"] for insight in api.insights]
    second = run(api)

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert len(api.dashboards) == 1
    assert [insight["id"] for insight in api.insights] == ids
    assert second.output.splitlines()[:6] == [
        "found     dashboard 'Bedrock LLM usage'",
        *[f"unchanged insight {name!r}" for name in NAMES],
    ]
    assert [r.method for r in api.requests if r.method != "GET"] == ["POST"] * 6


def test_every_body_sent_is_accepted(api: PostHogApiEmulator) -> None:
    """Every request of two runs is answered with success, so every body was valid."""
    run(api)
    run(api)

    assert {r.status for r in api.requests} == {200, 201}
    for insight in api.insights:
        check_insight_query(insight["query"])


def test_changed_definition_is_updated_in_place(api: PostHogApiEmulator) -> None:
    """An insight whose query drifted is PATCHed back, keeping its id and dashboard."""
    run(api)
    error_rate = api.insights[4]
    stale = {**error_rate["query"]}
    stale["source"] = {**stale["source"], "trendsFilter": {"formula": "A/B"}}
    assert (
        call(
            api, "PATCH", f"/api/projects/{PROJECT}/insights/{error_rate['id']}/", {"query": stale}
        ).status_code
        == 200
    )

    result = run(api)

    assert result.exit_code == 0, result.output
    assert "updated   insight 'Error rate'" in result.output.splitlines()
    after = api.insights[4]
    assert after["id"] == error_rate["id"]
    assert after["query"]["source"]["trendsFilter"] == {
        "display": "ActionsLineGraph",
        "formula": "B/(A+B)",
        "aggregationAxisFormat": "percentage_scaled",
    }
    assert after["dashboards"] == error_rate["dashboards"]
    assert len(api.insights) == 5


def test_error_rate_query_body() -> None:
    """The error rate divides error count by all calls and shows a 0..1 ratio as percent."""
    assert tutorial_insights()[4].query == {
        "kind": "InsightVizNode",
        "source": {
            "kind": "TrendsQuery",
            "series": [
                {
                    "kind": "EventsNode",
                    "event": "bedrock_completion",
                    "name": "bedrock_completion",
                    "custom_name": "Completions",
                    "math": "total",
                },
                {
                    "kind": "EventsNode",
                    "event": "bedrock_error",
                    "name": "bedrock_error",
                    "custom_name": "Errors",
                    "math": "total",
                },
            ],
            "interval": "day",
            "dateRange": {"date_from": "-30d"},
            "trendsFilter": {
                "display": "ActionsLineGraph",
                "formula": "B/(A+B)",
                "aggregationAxisFormat": "percentage_scaled",
            },
        },
    }


def test_cost_and_time_series_use_property_math() -> None:
    """Cost per call, cost per user and response time aggregate the right properties."""
    sources = [spec.query["source"] for spec in tutorial_insights()]

    assert [(s["math"], s.get("math_property")) for s in sources[1]["series"]] == [
        ("avg", "total_cost_in_dollars")
    ]
    assert [(s["math"], s.get("math_property")) for s in sources[2]["series"]] == [
        ("sum", "total_cost_in_dollars"),
        ("dau", None),
    ]
    assert sources[2]["trendsFilter"]["formula"] == "A/B"
    assert [(s["math"], s.get("math_property")) for s in sources[3]["series"]] == [
        ("avg", "response_time_in_ms")
    ]
    assert sources[3]["trendsFilter"]["aggregationAxisFormat"] == "duration_ms"
    assert sources[0]["series"][0]["math"] == "total"


def test_existing_dashboard_is_found_beyond_the_first_page(api: PostHogApiEmulator) -> None:
    """A dashboard listed after 100 others is found through the ``next`` link."""
    for index in range(100):
        call(api, "POST", f"/api/projects/{PROJECT}/dashboards/", {"name": f"Other {index}"})
    call(api, "POST", f"/api/projects/{PROJECT}/dashboards/", {"name": "LLM"})

    result = run(api, "--name", "LLM")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "found     dashboard 'LLM'"
    assert len(api.dashboards) == 101


def test_project_key_is_refused_before_any_request(api: PostHogApiEmulator) -> None:
    """A phc_ project key fails with a message naming the setting and sends nothing."""
    result = run(api, POSTHOG_PERSONAL_API_KEY="phc_project")

    assert result.exit_code == 1
    assert "POSTHOG_PERSONAL_API_KEY holds a project API key (phc_...)" in result.output
    assert api.requests == []


def test_unknown_key_gives_a_clear_401_message(api: PostHogApiEmulator) -> None:
    """A personal key PostHog does not know fails naming the key setting."""
    result = run(api, "--personal-api-key", "phx_wrong")

    assert result.exit_code == 1
    assert (
        "Error: PostHog refused the personal API key (401: Personal API key invalid.); "
        "check --personal-api-key / POSTHOG_PERSONAL_API_KEY"
    ) in result.output


def test_unknown_project_gives_a_clear_404_message(api: PostHogApiEmulator) -> None:
    """A project id PostHog does not have fails naming the project setting."""
    result = run(api, "--project-id", "8")

    assert result.exit_code == 1
    assert f"PostHog has no project 8 at {api.url}" in result.output
    assert "check --project-id / POSTHOG_PROJECT_ID" in result.output


def test_forbidden_project_gives_a_clear_403_message(api: PostHogApiEmulator) -> None:
    """A project the key may not change fails naming the scopes needed."""
    result = run(api, "--project-id", str(FORBIDDEN))

    assert result.exit_code == 1
    assert f"the personal API key may not change project {FORBIDDEN} (403" in result.output
    assert "dashboard:write and insight:write" in result.output


def test_non_numeric_project_id_is_refused(api: PostHogApiEmulator) -> None:
    """A project id that is not a number fails naming the setting and sends nothing."""
    result = run(api, POSTHOG_PROJECT_ID="my-project")

    assert result.exit_code == 1
    assert "--project-id / POSTHOG_PROJECT_ID must be the numeric project id" in result.output
    assert api.requests == []


def test_rate_limit_is_retried_after_the_given_delay(api: PostHogApiEmulator) -> None:
    """Two 429 answers with Retry-After are retried and the run still succeeds."""
    api.fail_next(429, count=2, retry_after=0)

    result = run(api)

    assert result.exit_code == 0, result.output
    assert [r.status for r in api.requests[:3]] == [429, 429, 200]
    assert len(api.insights) == 5


def test_lasting_server_error_stops_after_four_attempts(api: PostHogApiEmulator) -> None:
    """A 503 on every attempt ends the run with PostHog's status after four tries."""
    api.fail_next(503, count=4, retry_after=0)

    result = run(api)

    assert result.exit_code == 1
    assert "PostHog answered 503 to GET dashboards/?limit=100: injected failure" in result.output
    assert len(api.requests) == 4


def test_unreachable_host_gives_a_clear_message(unused_port: int) -> None:
    """A host where nothing listens fails naming the host setting."""
    env = {
        "POSTHOG_PERSONAL_API_KEY": KEY,
        "POSTHOG_PROJECT_ID": "1",
        "POSTHOG_HOST": f"http://127.0.0.1:{unused_port}",
    }
    result = CliRunner(env=env).invoke(main, ["dashboard"])

    assert result.exit_code == 1
    assert f"cannot reach PostHog at http://127.0.0.1:{unused_port} (ConnectionError)" in (
        result.output
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("https://us.i.posthog.com", "https://us.posthog.com"),
        ("https://eu.i.posthog.com/", "https://eu.posthog.com"),
        ("https://us.posthog.com", "https://us.posthog.com"),
        ("https://posthog.example.com/", "https://posthog.example.com"),
    ],
)
def test_app_host_maps_ingestion_hosts(host: str, expected: str) -> None:
    """Cloud ingestion hosts map to app hosts; other URLs pass through without a slash."""
    assert app_host(host) == expected


def test_app_host_refuses_a_bare_name() -> None:
    """A host without a scheme is refused, naming the setting."""
    with pytest.raises(DashboardError, match="--host / POSTHOG_HOST must be an http"):
        app_host("us.posthog.com")


def _viz(series: list[Any], **source: Any) -> dict[str, Any]:
    return {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery", "series": series, **source}}


_NODE = {"kind": "EventsNode", "event": "bedrock_completion", "math": "total"}


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ({"kind": "TrendsGraph"}, "query.kind must be one of"),
        (_viz([_NODE], formula="A"), "query.source: extra fields not permitted: formula"),
        (_viz([{**_NODE, "event": 5}]), "query.source.series[0].event must be a string"),
        (_viz([{**_NODE, "math": "average"}]), "query.source.series[0].math 'average' is not"),
        (_viz([{**_NODE, "math": "avg"}]), "query.source.series[0].math_property is required"),
        (_viz([_NODE], trendsFilter={"formula": "A/C"}), "formula refers to missing series"),
        (
            _viz([_NODE], trendsFilter={"aggregationAxisFormat": "ms"}),
            "trendsFilter.aggregationAxisFormat must be one of",
        ),
        (_viz([_NODE], interval="daily"), "query.source.interval must be one of"),
        (_viz([]), "query.source.series: a non-empty list is required"),
    ],
)
def test_stand_in_rejects_invalid_queries(
    api: PostHogApiEmulator, query: dict[str, Any], detail: str
) -> None:
    """An invalid insight query gets 400 with a detail naming the field, and is not stored."""
    response = call(
        api, "POST", f"/api/projects/{PROJECT}/insights/", {"name": "x", "query": query}
    )

    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert response.json()["attr"] == "query"
    assert detail in response.json()["detail"]
    assert api.insights == []
    with pytest.raises(SchemaError):
        check_insight_query(query)


def test_stand_in_answers_like_posthog(api: PostHogApiEmulator) -> None:
    """Created insights carry an id, an eight-character short_id and their dashboards."""
    board = call(api, "POST", f"/api/projects/{PROJECT}/dashboards/", {"name": "B"}).json()
    body = {"name": "n", "query": tutorial_insights()[0].query, "dashboards": [board["id"]]}

    created = call(api, "POST", f"/api/projects/{PROJECT}/insights/", body).json()
    listed = call(api, "GET", f"/api/projects/{PROJECT}/insights/?dashboards=[{board['id']}]")

    assert len(created["short_id"]) == 8
    assert created["dashboards"] == [board["id"]]
    assert listed.json() == {"count": 1, "next": None, "previous": None, "results": [created]}


def test_stand_in_rejects_unknown_dashboard_ids(api: PostHogApiEmulator) -> None:
    """An insight placed on a dashboard that does not exist gets 400."""
    body = {"name": "n", "query": tutorial_insights()[0].query, "dashboards": [99]}

    response = call(api, "POST", f"/api/projects/{PROJECT}/insights/", body)

    assert response.status_code == 400
    assert response.json()["detail"] == 'Invalid pk "99" - object does not exist.'


def test_a_failed_post_is_not_sent_twice() -> None:
    """A POST that got a server error may have created its object: only rate limits repeat it."""
    from otel_bedrock.dashboard import _retryable

    assert _retryable("POST", 502) is False
    assert _retryable("POST", 429) is True
    assert _retryable("GET", 503) is True
    assert _retryable("PATCH", 500) is True
    assert _retryable("GET", 404) is False


def test_defaults_posthog_adds_to_a_stored_query_do_not_count_as_drift() -> None:
    """A stored query holding our fields plus PostHog's own defaults is unchanged."""
    from otel_bedrock.dashboard import _holds, tutorial_insights

    wanted = tutorial_insights()[0].query
    stored = json.loads(json.dumps(wanted))
    stored["version"] = 2
    stored["source"]["filterTestAccounts"] = False
    changed = json.loads(json.dumps(wanted))
    changed["source"]["interval"] = "week"

    assert _holds(stored, wanted) is True
    assert _holds(changed, wanted) is False
