"""The ``otel-bedrock dashboard`` command: the tutorial's five insights as a PostHog dashboard.

It creates, or brings up to date when run again, one dashboard holding the five insights of
PostHog's Bedrock tutorial over our ``bedrock_completion`` and ``bedrock_error`` events. The
dashboard is found by name and each insight by name on that dashboard, so a second run
updates in place and never duplicates.

It needs a personal API key (``phx_...``, PostHog: Settings > Personal API keys) with the
``dashboard:write`` and ``insight:write`` scopes, and the numeric project id.

The insights use PostHog's current query format (``InsightVizNode`` around a
``TrendsQuery``). Field names and enum values were checked against ``posthog/schema.py`` of
PostHog/posthog (generated from ``frontend/src/queries/schema/schema-general.ts``), stored
version at commit 0000f87be414: ``TrendsFilter`` (``aggregationAxisFormat``, ``formula``,
``display``, ``aggregationAxisPrefix``, ``decimalPlaces``), ``AggregationAxisFormat``
(``duration_ms``: milliseconds shown as a duration; ``percentage_scaled``: a 0..1 ratio shown
as a percentage), ``BaseMathType`` (``total``, ``dau``), ``ChartDisplayType`` and
``DateRange``; ``EventsNode`` (``event``, ``custom_name``, ``math``, ``math_property``),
``PropertyMathType`` (``avg``, ``sum``), ``IntervalType``, ``TrendsQuery`` and
``InsightVizNode`` in earlier stored versions of the same file.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import click
import requests

from otel_bedrock.events import COMPLETION_EVENT, ERROR_EVENT

logger = logging.getLogger(__name__)

DEFAULT_NAME = "Bedrock LLM usage"
DEFAULT_HOST = "https://us.posthog.com"
DATE_FROM = "-30d"
INTERVAL = "day"
MAX_ATTEMPTS = 4
MAX_RETRY_WAIT = 30.0
TIMEOUT = 30.0

# Ingestion hosts (where events go) and the app hosts that serve the REST API.
_APP_HOSTS = {
    "https://us.i.posthog.com": "https://us.posthog.com",
    "https://eu.i.posthog.com": "https://eu.posthog.com",
}
_DASHBOARD_DESCRIPTION = (
    "AWS Bedrock calls captured by otel-bedrock: the five insights of PostHog's Bedrock "
    "tutorial. Managed by `otel-bedrock dashboard`; edits to these insights are overwritten "
    "when it runs again."
)


class DashboardError(click.ClickException):
    """The dashboard could not be created or updated; the message says why and what to fix."""


@dataclass(frozen=True)
class InsightSpec:
    """One insight to keep on the dashboard: its name, description and query."""

    name: str
    description: str
    query: dict[str, Any]


def _series(event: str, label: str, math: str, prop: str | None = None) -> dict[str, Any]:
    """An ``EventsNode`` over ``event``, aggregated by ``math`` (of ``prop`` if given)."""
    node: dict[str, Any] = {
        "kind": "EventsNode",
        "event": event,
        "name": event,
        "custom_name": label,
        "math": math,
    }
    if prop is not None:
        node["math_property"] = prop

    return node


def _trends(series: list[dict[str, Any]], **trends_filter: Any) -> dict[str, Any]:
    """An ``InsightVizNode`` holding a daily ``TrendsQuery`` over the last 30 days."""
    return {
        "kind": "InsightVizNode",
        "source": {
            "kind": "TrendsQuery",
            "series": series,
            "interval": INTERVAL,
            "dateRange": {"date_from": DATE_FROM},
            "trendsFilter": {"display": "ActionsLineGraph", **trends_filter},
        },
    }


def tutorial_insights() -> list[InsightSpec]:
    """The five insights of PostHog's Bedrock tutorial, over our event names."""
    completions = _series(COMPLETION_EVENT, "Completions", "total")
    errors = _series(ERROR_EVENT, "Errors", "total")
    dollars = {"aggregationAxisFormat": "numeric", "aggregationAxisPrefix": "$"}

    return [
        InsightSpec(
            "Generation count",
            "Successful Bedrock calls (bedrock_completion events) per day.",
            _trends([completions], aggregationAxisFormat="numeric"),
        ),
        InsightSpec(
            "Average cost per API call",
            "Average total_cost_in_dollars of a successful call; unpriced calls are left out.",
            _trends(
                [_series(COMPLETION_EVENT, "Cost", "avg", "total_cost_in_dollars")],
                decimalPlaces=6,
                **dollars,
            ),
        ),
        InsightSpec(
            "Average cost per user",
            "Total cost (A) divided by the number of distinct users (B) per day.",
            _trends(
                [
                    _series(COMPLETION_EVENT, "Total cost", "sum", "total_cost_in_dollars"),
                    _series(COMPLETION_EVENT, "Users", "dau"),
                ],
                formula="A/B",
                decimalPlaces=6,
                **dollars,
            ),
        ),
        InsightSpec(
            "Average API response time",
            "Average response_time_in_ms of a successful call.",
            _trends(
                [_series(COMPLETION_EVENT, "Response time", "avg", "response_time_in_ms")],
                aggregationAxisFormat="duration_ms",
            ),
        ),
        InsightSpec(
            "Error rate",
            "Failed calls (B) over all calls (A + B): bedrock_error / (completion + error).",
            _trends(
                [completions, errors], formula="B/(A+B)", aggregationAxisFormat="percentage_scaled"
            ),
        ),
    ]


def app_host(host: str) -> str:
    """The PostHog host that serves the REST API for ``host``.

    The cloud ingestion hosts map to their app hosts; other URLs (self-hosted) pass through.
    Raises ``DashboardError`` for a value that is not an http(s) URL.
    """
    cleaned = host.strip().rstrip("/")
    if not cleaned.startswith(("https://", "http://")):
        raise DashboardError(f"--host / POSTHOG_HOST must be an http(s) URL, got {host!r}")

    return _APP_HOSTS.get(cleaned.lower(), cleaned)


class PostHogApi:
    """A small client for PostHog's project REST API with bearer auth and polite retries.

    Retries only 429 and 5xx answers, waiting as ``Retry-After`` says (capped), up to
    ``MAX_ATTEMPTS`` attempts. Used from the calling thread only.
    """

    def __init__(self, host: str, project_id: int, personal_api_key: str) -> None:
        self.host = host
        self.project_id = project_id
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {personal_api_key}"
        self._session.headers["Content-Type"] = "application/json"

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` under the project, or of a server-given ``next`` link."""
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/"):
            return f"{self.host}{path}"

        return f"{self.host}/api/projects/{self.project_id}/{path}"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request and return its JSON answer; raise ``DashboardError`` on failure."""
        url = self.url(path)
        attempt = 1
        while True:
            try:
                response = self._session.request(method, url, json=body, timeout=TIMEOUT)
            except requests.RequestException as error:
                raise DashboardError(
                    f"cannot reach PostHog at {self.host} ({type(error).__name__}); "
                    "check --host / POSTHOG_HOST and the network"
                ) from error
            if attempt < MAX_ATTEMPTS and _retryable(method, response.status_code):
                wait = _retry_wait(response.headers.get("Retry-After"), attempt)
                logger.warning("posthog_api_retry status=%s wait=%.1f", response.status_code, wait)
                time.sleep(wait)
                attempt += 1
                continue
            if response.status_code >= 400:
                raise DashboardError(self._explain(response.status_code, method, path, response))
            try:
                return response.json()
            except ValueError as error:
                raise DashboardError(
                    f"{self.host} answered {method} {path} with something other than JSON; "
                    "check --host / POSTHOG_HOST (the PostHog app's address)"
                ) from error

    def pages(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paginated list, following ``next`` links."""
        items: list[dict[str, Any]] = []
        link: str | None = path
        while link:
            page = self.call("GET", link)
            items.extend(page.get("results", []))
            link = page.get("next")

        return items

    def _explain(self, status: int, method: str, path: str, response: requests.Response) -> str:
        """A message for an error answer that names the setting to fix."""
        detail = _detail(response)
        if status == 401:
            return (
                f"PostHog refused the personal API key (401: {detail}); "
                "check --personal-api-key / POSTHOG_PERSONAL_API_KEY"
            )
        if status == 403:
            return (
                f"the personal API key may not change project {self.project_id} (403: {detail}); "
                "give it the dashboard:write and insight:write scopes and access to this project "
                "(--personal-api-key / POSTHOG_PERSONAL_API_KEY)"
            )
        if status == 404:
            return (
                f"PostHog has no project {self.project_id} at {self.host} (404 on {path}); "
                "check --project-id / POSTHOG_PROJECT_ID and --host / POSTHOG_HOST"
            )

        return f"PostHog answered {status} to {method} {path}: {detail}"


def _retryable(method: str, status: int) -> bool:
    """Whether to send again: rate limits always; server errors only when a repeat is harmless.

    A POST that failed with a 5xx may still have created its object, so it is not repeated.
    """
    return status == 429 or (status >= 500 and method != "POST")


def _retry_wait(header: str | None, attempt: int) -> float:
    """Seconds to wait before the next attempt: ``Retry-After`` if numeric, else backoff."""
    try:
        wait = float(header) if header is not None else 2.0 ** (attempt - 1)
    except ValueError:
        wait = 2.0 ** (attempt - 1)

    return min(max(wait, 0.0), MAX_RETRY_WAIT)


def _detail(response: requests.Response) -> str:
    """PostHog's ``detail`` (and ``attr``) of an error answer, or the start of its body."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200] or response.reason
    if isinstance(payload, dict) and "detail" in payload:
        attr = payload.get("attr")
        return f"{payload['detail']} ({attr})" if attr else str(payload["detail"])

    return json.dumps(payload)[:200]


def sync_dashboard(api: PostHogApi, name: str) -> tuple[int, list[tuple[str, str]]]:
    """Create or update the dashboard ``name`` and its insights.

    Returns:
        The dashboard id and, in order, each item with what happened to it: ``created``,
        ``updated`` or ``unchanged`` (``found`` for an existing dashboard).
    """
    report: list[tuple[str, str]] = []
    found = [d for d in api.pages("dashboards/?limit=100") if d.get("name") == name]
    found = [d for d in found if not d.get("deleted")]
    if found:
        dashboard_id = int(min(d["id"] for d in found))
        report.append((f"dashboard {name!r}", "found"))
    else:
        created = api.call(
            "POST", "dashboards/", {"name": name, "description": _DASHBOARD_DESCRIPTION}
        )
        dashboard_id = int(created["id"])
        report.append((f"dashboard {name!r}", "created"))
    on_dashboard = api.pages(f"insights/?saved=true&limit=100&dashboards=[{dashboard_id}]")
    by_name: dict[str, dict[str, Any]] = {}
    for insight in sorted(on_dashboard, key=lambda item: int(item["id"])):
        by_name.setdefault(str(insight.get("name")), insight)
    for spec in tutorial_insights():
        body = {"name": spec.name, "description": spec.description, "query": spec.query}
        existing = by_name.get(spec.name)
        if existing is None:
            api.call("POST", "insights/", {**body, "dashboards": [dashboard_id], "saved": True})
            report.append((f"insight {spec.name!r}", "created"))
        elif (
            _holds(existing.get("query"), spec.query)
            and existing.get("description") == spec.description
        ):
            report.append((f"insight {spec.name!r}", "unchanged"))
        else:
            api.call("PATCH", f"insights/{existing['id']}/", body)
            report.append((f"insight {spec.name!r}", "updated"))
    logger.info("posthog_dashboard_synced dashboard=%s", dashboard_id)

    return dashboard_id, report


def _project_id(value: str) -> int:
    """The project id as a positive integer, or a ``DashboardError`` naming the setting."""
    cleaned = value.strip()
    if not cleaned.isdigit() or int(cleaned) == 0:
        raise DashboardError(
            f"--project-id / POSTHOG_PROJECT_ID must be the numeric project id "
            f"(the number after /project/ in PostHog's URLs), got {value!r}"
        )

    return int(cleaned)


def _check_key(key: str) -> str:
    """The personal API key, or a ``DashboardError`` for a missing or project key."""
    cleaned = key.strip()
    if cleaned.startswith("phc_"):
        raise DashboardError(
            "--personal-api-key / POSTHOG_PERSONAL_API_KEY holds a project API key (phc_...), "
            "which can only send events; create a personal API key (phx_...) in PostHog under "
            "Settings > Personal API keys with the dashboard:write and insight:write scopes"
        )
    if not cleaned.startswith("phx_"):
        raise DashboardError(
            "--personal-api-key / POSTHOG_PERSONAL_API_KEY must be a personal API key "
            "starting with phx_"
        )

    return cleaned


@click.command("dashboard")
@click.option(
    "--personal-api-key",
    envvar="POSTHOG_PERSONAL_API_KEY",
    required=True,
    help="PostHog personal API key (phx_...) with dashboard:write and insight:write scopes. "
    "[env: POSTHOG_PERSONAL_API_KEY]",
)
@click.option(
    "--project-id",
    envvar="POSTHOG_PROJECT_ID",
    required=True,
    help="Numeric PostHog project id. [env: POSTHOG_PROJECT_ID]",
)
@click.option(
    "--host",
    envvar="POSTHOG_HOST",
    default=DEFAULT_HOST,
    show_default=True,
    help="PostHog URL; us.i/eu.i ingestion hosts map to their app hosts. [env: POSTHOG_HOST]",
)
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="Dashboard name.")
def dashboard_command(personal_api_key: str, project_id: str, host: str, name: str) -> None:
    """Create the tutorial's insights as a PostHog dashboard.

    Creates the dashboard NAME with five insights over bedrock_completion and bedrock_error
    events (generation count, average cost per call, average cost per user, average response
    time, error rate), or updates them in place when the dashboard already exists.
    """
    key = _check_key(personal_api_key)
    project = _project_id(project_id)
    if not name.strip():
        raise DashboardError("--name must not be empty")
    api = PostHogApi(app_host(host), project, key)
    try:
        dashboard_id, report = sync_dashboard(api, name)
    finally:
        api.close()
    for item, outcome in report:
        click.echo(f"{outcome:9} {item}")
    click.echo(f"Dashboard: {api.host}/project/{project}/dashboard/{dashboard_id}")


def _holds(stored: Any, wanted: Any) -> bool:
    """Whether ``stored`` has every value of ``wanted``; keys PostHog added do not count."""
    if isinstance(wanted, dict):
        return isinstance(stored, dict) and all(
            _holds(stored.get(key), value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(wanted)
            and all(_holds(got, value) for got, value in zip(stored, wanted, strict=True))
        )

    return bool(stored == wanted)
