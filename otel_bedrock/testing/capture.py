"""A PostHog capture emulator that the real ``posthog`` client can send events to.

Point a client at it::

    with CaptureEmulator(accepted_keys={"phc_test"}) as emu:
        client = Posthog("phc_test", host=emu.url)
        client.capture("bedrock_completion", distinct_id="user-1")
        client.flush()
        assert emu.wait_for(1, timeout=5)

Endpoints, as posthog-python and PostHog use them:

- ``/batch/`` and ``/i/v0/ai/batch/``: ``{"api_key", "batch": [events], "sent_at"}``.
- ``/i/v1/analytics/events``: ``{"created_at", "batch": [events]}`` with the key in an
  ``Authorization: Bearer`` header; answered with a per-uuid ``results`` map.
- ``/i/v0/e/``, ``/e/``, ``/capture/``, ``/track/``: one event carrying its own ``api_key``
  (or ``token``), or a ``batch`` object as above.

- ``/flags``: 200 with no flags for an accepted project key, 401 otherwise, as PostHog answers
  it; used to check a key at start.

Bodies may be gzip or zlib (``deflate``) compressed, announced by ``Content-Encoding``; other
encodings (zstd, br) get 415. Answers follow PostHog: 200 ``{"status": "Ok"}``; 400 for
unreadable JSON, an empty batch or an event without ``event`` or ``distinct_id``; 401 for a
missing key, a personal key (``phx_``) or, when ``accepted_keys`` is given, any other key; 413
for a body over ``max_body_bytes`` or an analytics event over ``max_event_bytes``. Error bodies
are JSON with ``type``, ``code`` and ``detail`` (the field posthog-python reports).
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import parse_qs, urlsplit

from otel_bedrock.testing._server import EmulatorBase, LoopbackServer, QuietHandler

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 1_000_000

_V1_PATH = "/i/v1/analytics/events"
_AI_PATH = "/i/v0/ai/batch"
_BATCH_PATHS = frozenset({"/batch", _AI_PATH, _V1_PATH})
_SINGLE_PATHS = frozenset({"/i/v0/e", "/e", "/capture", "/track"})


class CapturedEvent(TypedDict):
    """An event the emulator accepted, as the client sent it."""

    event: str
    distinct_id: str
    properties: dict[str, Any]
    uuid: str | None
    timestamp: str | None
    api_key: str


@dataclass(frozen=True)
class CaptureRequest:
    """One capture request and how it was answered.

    Attributes:
        path: The request path, query string included.
        status: The HTTP status answered.
        event_count: Events in the body (0 when the body could not be read).
        content_encoding: The ``Content-Encoding`` header, empty when absent.
    """

    path: str
    status: int
    event_count: int
    content_encoding: str


class _Reject(Exception):
    """An error answer: status, PostHog error type and code, and a message."""

    def __init__(self, status: int, kind: str, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"type": kind, "code": code, "detail": detail, "attr": None}
        self.headers: dict[str, str] = {}


@dataclass
class _Injected:
    """A failure to answer to the next ``count`` requests."""

    status: int
    count: int
    retry_after: float | None


def _decode(body: bytes, encoding: str) -> bytes:
    """Undo the request's ``Content-Encoding``."""
    try:
        if encoding in ("", "identity"):
            return body
        if encoding in ("gzip", "gzip-js"):
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as error:
        raise _Reject(400, "validation_error", "invalid_payload", f"bad {encoding} body") from error
    raise _Reject(415, "validation_error", "unsupported_encoding", f"unsupported {encoding!r}")


def _split(document: Any, is_batch: bool) -> tuple[list[Any], Any]:
    """Return the events of a request body and the API key given at its top level."""
    if isinstance(document, list):
        return document, None
    if not isinstance(document, dict):
        raise _Reject(400, "validation_error", "invalid_payload", "body must be a JSON object")
    key = document.get("api_key") or document.get("token")
    if is_batch or "batch" in document:
        events = document.get("batch")
        if not isinstance(events, list):
            raise _Reject(400, "validation_error", "invalid_payload", "'batch' must be a list")
        return events, key

    return [document], key


def _event_key(event: Any) -> Any:
    """An API key carried by an event itself."""
    if not isinstance(event, dict):
        return None
    properties = event.get("properties")
    nested = properties.get("token") if isinstance(properties, dict) else None

    return event.get("api_key") or event.get("token") or nested


def _check_key(key: Any, accepted: frozenset[str] | None) -> str:
    """Return a usable project key or raise the 401 PostHog would answer."""
    if not isinstance(key, str) or not key:
        raise _Reject(401, "authentication_error", "missing_api_key", "API key is missing.")
    if key.startswith("phx_"):
        raise _Reject(
            401, "authentication_error", "personal_api_key", "Use a project API key, not phx_."
        )
    if accepted is not None and key not in accepted:
        raise _Reject(401, "authentication_error", "invalid_api_key", "Project API key invalid.")

    return key


def _to_captured(event: Any, key: str, max_bytes: int | None) -> CapturedEvent:
    """Validate one event and convert it to a ``CapturedEvent``."""
    if not isinstance(event, dict):
        raise _Reject(400, "validation_error", "invalid_event", "an event must be an object")
    name = event.get("event")
    properties = event.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    distinct_id = event.get("distinct_id", properties.get("distinct_id"))
    if not isinstance(name, str) or not name:
        raise _Reject(400, "validation_error", "missing_event_name", "event name is missing")
    if distinct_id is None or distinct_id == "":
        raise _Reject(400, "validation_error", "missing_distinct_id", "distinct_id is missing")
    if max_bytes is not None and len(json.dumps(event)) > max_bytes:
        raise _Reject(413, "validation_error", "event_too_big", "event exceeds the size limit")
    uuid, timestamp = event.get("uuid"), event.get("timestamp")

    return CapturedEvent(
        event=name,
        distinct_id=str(distinct_id),
        properties=properties,
        uuid=None if uuid is None else str(uuid),
        timestamp=None if timestamp is None else str(timestamp),
        api_key=key,
    )


def _read_events(body: bytes, encoding: str, is_batch: bool, limit: int) -> tuple[list[Any], Any]:
    """Decode, size-check and parse a capture body into its events and top-level key."""
    if len(body) > limit:
        raise _Reject(413, "validation_error", "payload_too_large", "body too large")
    raw = _decode(body, encoding)
    if len(raw) > limit:
        raise _Reject(413, "validation_error", "payload_too_large", "body too large")
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise _Reject(400, "validation_error", "invalid_json", "malformed JSON") from error

    return _split(document, is_batch)


def _admit(
    emulator: CaptureEmulator, path: str, events: list[Any], key: Any, authorization: str
) -> list[CapturedEvent]:
    """Apply injected failures, the key check and event validation; return accepted events."""
    injected = emulator._injected_failure()
    if injected is not None:
        reject = _Reject(injected.status, "server_error", "injected", "injected failure")
        if injected.retry_after is not None:
            reject.headers["Retry-After"] = f"{injected.retry_after:g}"
        raise reject
    if key is None and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if key is None and events:
        key = _event_key(events[0])
    key = _check_key(key, emulator.accepted_keys)
    if not events:
        raise _Reject(400, "validation_error", "empty_batch", "the batch is empty")
    limit = None if path == _AI_PATH else emulator.max_event_bytes

    return [_to_captured(event, key, limit) for event in events]


class _CaptureHandler(QuietHandler):
    """Serves capture requests on the server's per-connection threads."""

    def do_POST(self) -> None:
        """Read, check and record a capture request, then answer it."""
        emulator = self.server.owner
        assert isinstance(emulator, CaptureEmulator)
        emulator._pause()
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        encoding = encoding or parse_qs(url.query).get("compression", [""])[0].lower()
        body = self.read_body()
        if emulator._stall():
            self.close_connection = True
            return
        events: list[Any] = []
        if path == "/flags":
            self._answer_flags(emulator, body)
            return
        try:
            if path not in _BATCH_PATHS and path not in _SINGLE_PATHS:
                raise _Reject(404, "not_found", "not_found", f"no capture endpoint at {path}")
            is_batch = path in _BATCH_PATHS
            events, key = _read_events(body, encoding, is_batch, emulator.max_body_bytes)
            authorization = self.headers.get("Authorization", "")
            captured = _admit(emulator, path, events, key, authorization)
        except _Reject as reject:
            emulator._record(self.path, reject.status, len(events), encoding, [])
            self._answer(reject.status, reject.body, reject.headers)
            return
        emulator._record(self.path, 200, len(events), encoding, captured)
        if path == _V1_PATH:
            results = {str(e.get("uuid")): {"result": "ok"} for e in events}
            self._answer(200, {"results": results}, {})
        else:
            self._answer(200, {"status": "Ok"}, {})

    def _answer_flags(self, emulator: CaptureEmulator, body: bytes) -> None:
        """Answer ``/flags`` as PostHog does for a project key: no flags, or 401."""
        try:
            document = json.loads(body or b"{}")
        except ValueError:
            document = {}
        key = (
            document.get("api_key") or document.get("token") if isinstance(document, dict) else None
        )
        known = emulator.accepted_keys is None or key in emulator.accepted_keys
        if not isinstance(key, str) or not key.startswith("phc_") or not known:
            detail = "Project API key invalid. You can find your project API key in PostHog."
            self._answer(
                401,
                {"type": "authentication_error", "code": "invalid_api_key", "detail": detail},
                {},
            )
            return
        self._answer(200, {"flags": {}, "errorsWhileComputingFlags": False}, {})

    def do_GET(self) -> None:
        """Answer 404: the emulator serves no flags, config or decide endpoints."""
        self._answer(404, {"type": "not_found", "code": "not_found", "detail": "not found"}, {})

    def _answer(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        """Answer with ``payload`` as JSON."""
        body = json.dumps(payload).encode("utf-8")
        self.respond(status, {"Content-Type": "application/json", **headers}, body)


class CaptureEmulator(EmulatorBase):
    """A PostHog capture server on loopback for tests and demos.

    Thread-safe: every method may be called from any thread while the server threads answer
    requests.

    Args:
        accepted_keys: Project keys to accept; any non-personal key when ``None``.
        store_path: When given, each accepted event is appended to this file as a JSON line.
        max_body_bytes: Largest request body accepted, compressed or not.
        max_event_bytes: Largest serialised analytics event (the AI endpoint has no such cap).
        host: Address to bind.
        port: Port to bind; 0 (the default) picks a free ephemeral port.
    """

    def __init__(
        self,
        accepted_keys: Iterable[str] | None = None,
        store_path: str | Path | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        if max_event_bytes <= 0:
            raise ValueError(f"max_event_bytes must be positive, got {max_event_bytes}")
        self.accepted_keys = None if accepted_keys is None else frozenset(accepted_keys)
        self.store_path = None if store_path is None else Path(store_path)
        self.max_body_bytes = max_body_bytes
        self.max_event_bytes = max_event_bytes
        self._loop = LoopbackServer(_CaptureHandler, self, host, port)
        self._changed = threading.Condition()
        self._events: list[CapturedEvent] = []
        self._requests: list[CaptureRequest] = []
        self._failures: list[_Injected] = []
        self._delay = 0.0
        self._hanging = False
        self._stalled = 0

    @property
    def url(self) -> str:
        """The host to give ``Posthog(..., host=...)``, e.g. ``http://127.0.0.1:50124``."""
        return self._loop.base_url

    @property
    def events(self) -> list[CapturedEvent]:
        """A copy of the accepted events, in arrival order."""
        with self._changed:
            return list(self._events)

    @property
    def requests(self) -> list[CaptureRequest]:
        """A copy of the capture requests received, in arrival order."""
        with self._changed:
            return list(self._requests)

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (and ``Retry-After`` if given)."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._changed:
            self._failures.append(_Injected(status, count, retry_after))

    def set_delay(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each request from now on."""
        with self._changed:
            self._delay = max(0.0, seconds)

    def hang(self, on: bool = True) -> None:
        """Read each request and never answer it, as a stalled PostHog does, until ``hang(False)``.

        A stalled request records nothing; when the hang ends (or the emulator stops), its
        connection is closed without an answer, as by a server that died mid-request.
        """
        with self._changed:
            self._hanging = on
            self._changed.notify_all()

    @property
    def stalled(self) -> int:
        """Requests that met a hang (and were never answered) so far."""
        with self._changed:
            return self._stalled

    def stop(self) -> None:
        """End any hang, then stop serving and close every open connection."""
        self.hang(False)
        super().stop()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` events were accepted; False if ``timeout`` passed."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._events) >= count, timeout)

    def reset(self) -> None:
        """Forget events, requests, pending failures and the delay (the store file is kept)."""
        with self._changed:
            self._hanging = False
            self._stalled = 0
            self._changed.notify_all()
            self._events.clear()
            self._requests.clear()
            self._failures.clear()
            self._delay = 0.0

    def _pause(self) -> None:
        """Sleep for the configured delay."""
        with self._changed:
            delay = self._delay
        if delay > 0:
            time.sleep(delay)

    def _stall(self) -> bool:
        """While hanging, hold the request until the hang ends; True when it was held."""
        with self._changed:
            if not self._hanging:
                return False
            self._stalled += 1
            self._changed.notify_all()
            self._changed.wait_for(lambda: not self._hanging)

        return True

    def _injected_failure(self) -> _Injected | None:
        """Consume one injected failure, if any is pending."""
        with self._changed:
            if not self._failures:
                return None
            failure = self._failures[0]
            failure.count -= 1
            if failure.count == 0:
                self._failures.pop(0)
            return failure

    def _record(
        self, path: str, status: int, count: int, encoding: str, events: list[CapturedEvent]
    ) -> None:
        """Record a request and its accepted events, append them to the store, wake waiters."""
        with self._changed:
            self._requests.append(CaptureRequest(path, status, count, encoding))
            if events and self.store_path is not None:
                with self.store_path.open("a", encoding="utf-8") as store:
                    store.writelines(json.dumps(event) + "\n" for event in events)
            self._events.extend(events)
            self._changed.notify_all()
        logger.debug("capture_request path=%s status=%s events=%s", path, status, count)
