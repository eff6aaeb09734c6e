"""A local stand-in for the PostHog REST endpoints that ``otel-bedrock dashboard`` uses.

It keeps dashboards and insights in memory and answers like PostHog's private API::

    with PostHogApiEmulator(personal_api_keys={"phx_test"}, projects={1}) as api:
        ...  # point the client at api.url

Endpoints, all under ``/api/projects/{project_id}/`` with ``Authorization: Bearer phx_...``:

- ``GET dashboards/`` and ``GET insights/``: pages ``{"count", "next", "previous",
  "results"}`` driven by ``limit`` and ``offset``; insights also filter by ``dashboards``
  (a JSON list of ids, each of which must hold the insight), ``saved`` and ``search``.
- ``POST dashboards/``, ``GET dashboards/{id}/`` (with its ``tiles``).
- ``POST insights/``, ``GET insights/{id}/``, ``PATCH insights/{id}/``.

Bodies are checked against PostHog's query schema for what the command sends: an
``InsightVizNode`` around a ``TrendsQuery`` of ``EventsNode`` series, with the field names,
``kind`` values, math types, intervals and axis formats of ``posthog/schema.py`` (whose models
forbid unknown fields). Unknown top-level body fields are refused too, which is stricter than
PostHog (it ignores them) so that a misspelt field cannot pass unnoticed. A bad body gets 400
``{"type": "validation_error", "code": "invalid_input", "detail", "attr"}``; a missing or
unknown key 401; a project the key may not use 403; an unknown project or object 404.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from otel_bedrock.testing._insight_schema import SchemaError, check_insight_query
from otel_bedrock.testing._server import EmulatorBase, LoopbackServer, QuietHandler

_DASHBOARD_FIELDS = frozenset({"name", "description", "pinned", "tags", "restriction_level"})
_INSIGHT_FIELDS = frozenset({"name", "description", "query", "dashboards", "saved", "tags"})
_PAGE_DEFAULT = 100


@dataclass(frozen=True)
class ApiRequest:
    """One request the stand-in received and how it answered.

    Attributes:
        method: ``GET``, ``POST`` or ``PATCH``.
        path: The path, query string included.
        status: The HTTP status answered.
        body: The parsed JSON body (None for none).
    """

    method: str
    path: str
    status: int
    body: Any


class _Reject(Exception):
    """An error answer with PostHog's error body."""

    def __init__(self, status: int, kind: str, code: str, detail: str, attr: str | None = None):
        super().__init__(detail)
        self.status = status
        self.body = {"type": kind, "code": code, "detail": detail, "attr": attr}
        self.headers: dict[str, str] = {}


def _invalid(detail: str, attr: str | None = None) -> _Reject:
    """The 400 answer DRF gives for an invalid body."""
    return _Reject(400, "validation_error", "invalid_input", detail, attr)


def _not_found() -> _Reject:
    """The 404 answer for an unknown project, object or path."""
    return _Reject(404, "invalid_request", "not_found", "Not found.")


def _now() -> str:
    """The current UTC time in ISO format, as PostHog stamps objects."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _ApiHandler(QuietHandler):
    """Serves API requests on the server's per-connection threads."""

    def do_GET(self) -> None:
        """Answer a list or detail request."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Answer a create request."""
        self._serve("POST")

    def do_PATCH(self) -> None:
        """Answer a partial update request."""
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        """Parse the body, let the emulator answer, record the exchange and reply."""
        emulator = self.server.owner
        assert isinstance(emulator, PostHogApiEmulator)
        raw = self.read_body()
        body: Any = None
        try:
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as error:
                    raise _Reject(
                        400, "validation_error", "parse_error", "JSON parse error"
                    ) from error
            status, payload = emulator._handle(
                method, self.path, self.headers.get("Authorization", ""), body
            )
            headers: dict[str, str] = {}
        except _Reject as reject:
            status, payload, headers = reject.status, reject.body, reject.headers
        emulator._record(ApiRequest(method, self.path, status, body))
        data = json.dumps(payload).encode("utf-8")
        self.respond(status, {"Content-Type": "application/json", **headers}, data)


class PostHogApiEmulator(EmulatorBase):
    """PostHog's dashboards and insights endpoints on loopback, for tests.

    Thread-safe: every method may be called from any thread while the server threads answer.

    Args:
        personal_api_keys: Personal keys (``phx_...``) to accept.
        projects: Ids of the projects that exist.
        forbidden_projects: Existing projects the keys may not use (answered with 403).
        host: Address to bind.
        port: Port to bind; 0 (the default) picks a free ephemeral port.
    """

    def __init__(
        self,
        personal_api_keys: Iterable[str] = ("phx_test",),
        projects: Iterable[int] = (1,),
        forbidden_projects: Iterable[int] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.personal_api_keys = frozenset(personal_api_keys)
        self.projects = frozenset(projects) | frozenset(forbidden_projects)
        self.forbidden_projects = frozenset(forbidden_projects)
        self._loop = LoopbackServer(_ApiHandler, self, host, port)
        self._lock = threading.Lock()
        self._dashboards: dict[int, dict[str, Any]] = {}
        self._insights: dict[int, dict[str, Any]] = {}
        self._requests: list[ApiRequest] = []
        self._failures: list[tuple[int, float | None]] = []
        self._next_id = 1

    @property
    def url(self) -> str:
        """The API host, e.g. ``http://127.0.0.1:50124``."""
        return self._loop.base_url

    @property
    def dashboards(self) -> list[dict[str, Any]]:
        """Copies of the stored dashboards, in creation order."""
        with self._lock:
            return [json.loads(json.dumps(item)) for item in self._dashboards.values()]

    @property
    def insights(self) -> list[dict[str, Any]]:
        """Copies of the stored insights, in creation order."""
        with self._lock:
            return [json.loads(json.dumps(item)) for item in self._insights.values()]

    @property
    def requests(self) -> list[ApiRequest]:
        """The requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (and ``Retry-After`` if given)."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def _record(self, request: ApiRequest) -> None:
        """Remember one request and its answer."""
        with self._lock:
            self._requests.append(request)

    def _handle(self, method: str, target: str, authorization: str, body: Any) -> tuple[int, Any]:
        """Route one request; returns status and payload or raises ``_Reject``."""
        with self._lock:
            if self._failures:
                status, retry_after = self._failures.pop(0)
                reject = _Reject(status, "server_error", "injected", "injected failure")
                if retry_after is not None:
                    reject.headers["Retry-After"] = f"{retry_after:g}"
                raise reject
        url = urlsplit(target)
        parts = [part for part in url.path.split("/") if part]
        self._authenticate(authorization)
        if len(parts) < 4 or parts[:2] != ["api", "projects"]:
            raise _not_found()
        project = self._project(parts[2])
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        resource, rest = parts[3], parts[4:]
        with self._lock:
            if resource == "dashboards" and not rest:
                if method == "GET":
                    return 200, self._page(self._listed(self._dashboards, project), query, target)
                if method == "POST":
                    return 201, self._create_dashboard(project, body)
            if resource == "dashboards" and len(rest) == 1 and method == "GET":
                return 200, self._find(self._dashboards, project, rest[0])
            if resource == "insights" and not rest:
                if method == "GET":
                    found = self._filter_insights(project, query)
                    return 200, self._page(found, query, target)
                if method == "POST":
                    return 201, self._create_insight(project, body)
            if resource == "insights" and len(rest) == 1:
                insight = self._find(self._insights, project, rest[0])
                if method == "GET":
                    return 200, insight
                if method == "PATCH":
                    return 200, self._update_insight(project, insight, body)
        if method == "GET":
            raise _not_found()
        raise _Reject(
            405, "invalid_request", "method_not_allowed", f'Method "{method}" not allowed.'
        )

    def _authenticate(self, authorization: str) -> None:
        """Raise the 401 PostHog answers unless the bearer key is a known personal key."""
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise _Reject(
                401,
                "authentication_error",
                "not_authenticated",
                "Authentication credentials were not provided.",
            )
        if key.strip() not in self.personal_api_keys:
            raise _Reject(
                401, "authentication_error", "authentication_failed", "Personal API key invalid."
            )

    def _project(self, segment: str) -> int:
        """The project id of a path segment, or the 404 or 403 PostHog would answer."""
        if not segment.isdigit() or int(segment) not in self.projects:
            raise _not_found()
        if int(segment) in self.forbidden_projects:
            raise _Reject(
                403,
                "authentication_error",
                "permission_denied",
                "You do not have permission to perform this action.",
            )

        return int(segment)

    def _take_id(self) -> int:
        """A fresh id, shared by dashboards, insights and tiles (caller holds the lock)."""
        taken = self._next_id
        self._next_id += 1

        return taken

    @staticmethod
    def _listed(store: dict[int, dict[str, Any]], project: int) -> list[dict[str, Any]]:
        """The stored objects of one project, in creation order."""
        return [item for item in store.values() if item["_project"] == project]

    @staticmethod
    def _find(store: dict[int, dict[str, Any]], project: int, segment: str) -> dict[str, Any]:
        """One stored object of the project by its id segment, or a 404."""
        item = store.get(int(segment)) if segment.isdigit() else None
        if item is None or item["_project"] != project:
            raise _not_found()

        return _public(item)

    @staticmethod
    def _page(items: list[dict[str, Any]], query: dict[str, str], target: str) -> dict[str, Any]:
        """One page of ``items`` by ``limit`` and ``offset``, with a ``next`` link if more."""
        try:
            limit = int(query.get("limit", _PAGE_DEFAULT))
            offset = int(query.get("offset", 0))
        except ValueError as error:
            raise _invalid("limit and offset must be integers") from error
        chunk = items[offset : offset + limit]
        following = None
        if offset + limit < len(items):
            path = urlsplit(target).path
            following = f"{path}?limit={limit}&offset={offset + limit}"
            extra = {k: v for k, v in query.items() if k not in ("limit", "offset")}
            following += "".join(f"&{k}={v}" for k, v in extra.items())

        return {
            "count": len(items),
            "next": following,
            "previous": None,
            "results": [_public(item) for item in chunk],
        }

    def _create_dashboard(self, project: int, body: Any) -> dict[str, Any]:
        """Check a dashboard body and store the new dashboard."""
        fields = _fields(body, _DASHBOARD_FIELDS)
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("This field is required.", "name")
        if not isinstance(fields.get("description", ""), str):
            raise _invalid("Not a valid string.", "description")
        dashboard_id = self._take_id()
        self._dashboards[dashboard_id] = {
            "id": dashboard_id,
            "name": name,
            "description": fields.get("description", ""),
            "pinned": bool(fields.get("pinned", False)),
            "created_at": _now(),
            "deleted": False,
            "tags": [],
            "tiles": [],
            "_project": project,
        }

        return _public(self._dashboards[dashboard_id])

    def _dashboard_ids(self, project: int, value: Any) -> list[int]:
        """Check that ``value`` lists ids of dashboards of this project."""
        if not isinstance(value, list) or not all(type(item) is int for item in value):
            raise _invalid("Expected a list of dashboard ids.", "dashboards")
        for dashboard_id in value:
            found = self._dashboards.get(dashboard_id)
            if found is None or found["_project"] != project:
                raise _invalid(
                    f'Invalid pk "{dashboard_id}" - object does not exist.', "dashboards"
                )

        return list(value)

    def _create_insight(self, project: int, body: Any) -> dict[str, Any]:
        """Check an insight body, store the insight and put it on its dashboards."""
        fields = _fields(body, _INSIGHT_FIELDS)
        _check_insight_fields(fields, require_query=True)
        dashboards = self._dashboard_ids(project, fields.get("dashboards", []))
        insight_id = self._take_id()
        insight = {
            "id": insight_id,
            "short_id": "".join(
                secrets.choice(string.ascii_letters + string.digits) for _ in "x" * 8
            ),
            "name": fields.get("name"),
            "derived_name": None,
            "description": fields.get("description", ""),
            "query": fields["query"],
            "filters": {},
            "dashboards": [],
            "dashboard_tiles": [],
            "saved": bool(fields.get("saved", True)),
            "created_at": _now(),
            "last_modified_at": _now(),
            "deleted": False,
            "result": None,
            "_project": project,
        }
        self._insights[insight_id] = insight
        self._attach(insight, dashboards)

        return _public(insight)

    def _update_insight(self, project: int, current: dict[str, Any], body: Any) -> dict[str, Any]:
        """Check a partial insight body and apply it."""
        fields = _fields(body, _INSIGHT_FIELDS)
        _check_insight_fields(fields, require_query=False)
        insight = self._insights[current["id"]]
        dashboards = fields.pop("dashboards", None)
        insight.update(fields)
        insight["last_modified_at"] = _now()
        if dashboards is not None:
            self._attach(insight, self._dashboard_ids(project, dashboards))

        return _public(insight)

    def _attach(self, insight: dict[str, Any], dashboards: list[int]) -> None:
        """Put the insight on exactly ``dashboards``, adding and removing tiles."""
        for dashboard in self._dashboards.values():
            tiles = dashboard["tiles"]
            dashboard["tiles"] = [t for t in tiles if t["insight"]["id"] != insight["id"]]
        insight["dashboards"] = list(dashboards)
        insight["dashboard_tiles"] = []
        for dashboard_id in dashboards:
            tile_id = self._take_id()
            tile = {
                "id": tile_id,
                "insight": {"id": insight["id"], "short_id": insight["short_id"]},
            }
            self._dashboards[dashboard_id]["tiles"].append(tile)
            insight["dashboard_tiles"].append({"id": tile_id, "dashboard_id": dashboard_id})

    def _filter_insights(self, project: int, query: dict[str, str]) -> list[dict[str, Any]]:
        """The project's insights matching the ``dashboards``, ``saved`` and ``search`` filters."""
        found = self._listed(self._insights, project)
        if "dashboards" in query:
            try:
                wanted = json.loads(query["dashboards"])
            except ValueError as error:
                raise _invalid("dashboards must be a JSON list of ids", "dashboards") from error
            if not isinstance(wanted, list):
                raise _invalid("dashboards must be a JSON list of ids", "dashboards")
            found = [item for item in found if all(d in item["dashboards"] for d in wanted)]
        if "saved" in query:
            saved = query["saved"].lower() in ("true", "1")
            found = [item for item in found if item["saved"] == saved]
        if "search" in query:
            term = query["search"].lower()
            found = [item for item in found if term in (item["name"] or "").lower()]

        return found


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """A stored object without its private bookkeeping keys, as a deep copy."""
    copied: dict[str, Any] = json.loads(json.dumps(item))

    return {key: value for key, value in copied.items() if not key.startswith("_")}


def _fields(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    """The body as an object whose keys are all in ``allowed``."""
    if not isinstance(body, dict):
        raise _invalid("Invalid data. Expected a dictionary.")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _invalid(f"Unknown field(s): {', '.join(unknown)}", unknown[0])

    return dict(body)


def _check_insight_fields(fields: dict[str, Any], require_query: bool) -> None:
    """Check an insight body's name, description and query."""
    for key in ("name", "description"):
        if key in fields and fields[key] is not None and not isinstance(fields[key], str):
            raise _invalid("Not a valid string.", key)
    if "saved" in fields and not isinstance(fields["saved"], bool):
        raise _invalid("Must be a valid boolean.", "saved")
    if require_query and "query" not in fields:
        raise _invalid("This field is required.", "query")
    if "query" in fields:
        try:
            check_insight_query(fields["query"])
        except SchemaError as error:
            raise _invalid(str(error), "query") from error
