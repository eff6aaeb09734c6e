"""A Bedrock Runtime emulator that real boto3 clients can call over loopback HTTP.

Point a client at it::

    with BedrockEmulator() as emu:
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=emu.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        emu.enqueue(throttle())  # the first call is throttled, boto3 retries
        client.converse(modelId="us.amazon.nova-micro-v1:0", messages=[...])

Scripted responses are served in order, whatever the path. When none is queued, the emulator
answers with a deterministic success in the format of the operation and model family: the
input token count is the number of whitespace-separated words in the request's prompt text
(at least 1), the reply is always ``REPLY_TEXT`` and its token count ``REPLY_TOKENS``.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from otel_bedrock.testing import eventstream
from otel_bedrock.testing._replies import (
    ERROR_NAMESPACE,
    FIRST_BYTE_LATENCY_MS,
    LATENCY_MS,
    REPLY_TEXT,
    REPLY_TOKENS,
    default_reply,
    model_family,
    prompt_tokens,
)
from otel_bedrock.testing._server import EmulatorBase, LoopbackServer, QuietHandler

__all__ = [
    "FIRST_BYTE_LATENCY_MS",
    "LATENCY_MS",
    "REPLY_TEXT",
    "REPLY_TOKENS",
    "BedrockEmulator",
    "RecordedRequest",
    "ScriptedResponse",
    "error_response",
    "model_family",
    "parse_path",
    "prompt_tokens",
    "server_error",
    "stream",
    "stream_exception_after",
    "synthesize",
    "throttle",
    "validation_error",
]

logger = logging.getLogger(__name__)

_OPERATIONS = {
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "count-tokens": "CountTokens",
}
_HOP_BY_HOP = frozenset({"connection", "transfer-encoding", "content-length", "keep-alive"})


@dataclass
class ScriptedResponse:
    """One HTTP answer the emulator serves instead of a synthesized success.

    Attributes:
        status: HTTP status code.
        headers: Response headers; ``Content-Length`` is always computed from ``body``.
        body: The raw body bytes (JSON, or event-stream messages for streams).
        delay_seconds: Seconds to wait before answering.
        truncate_after: When set, send only this many body bytes (with the full
            ``Content-Length``) and close the connection, like a cut stream.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_seconds: float = 0.0
    truncate_after: int | None = None

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status}")
        if self.delay_seconds < 0:
            raise ValueError(f"delay_seconds must not be negative, got {self.delay_seconds}")
        if self.truncate_after is not None and self.truncate_after < 0:
            raise ValueError(f"truncate_after must not be negative, got {self.truncate_after}")

    @classmethod
    def from_recording(cls, response: Mapping[str, Any]) -> ScriptedResponse:
        """Build a response from a recording's ``response`` object (``body`` or ``body_base64``).

        Hop-by-hop headers (``connection``, ``transfer-encoding``, ``content-length``) are
        dropped; all other recorded headers are kept as they are.
        """
        if "body_base64" in response:
            body = base64.b64decode(response["body_base64"])
        else:
            body = str(response.get("body") or "").encode("utf-8")
        headers = {
            str(name): str(value)
            for name, value in dict(response.get("headers") or {}).items()
            if str(name).lower() not in _HOP_BY_HOP
        }

        return cls(status=int(response["status"]), headers=headers, body=body)


@dataclass(frozen=True)
class RecordedRequest:
    """A request the emulator received.

    Attributes:
        method: HTTP method.
        raw_path: The path as sent, still percent-encoded.
        model_id: The decoded model id, or ``None`` when the path names none.
        operation: ``InvokeModel``, ``Converse``... or ``None`` for an unknown path.
        headers: Request headers with lower-case names.
        body: The raw request body.
    """

    method: str
    raw_path: str
    model_id: str | None
    operation: str | None
    headers: dict[str, str]
    body: bytes


def _json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> ScriptedResponse:
    """A JSON response with the given status and extra headers."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    body = json.dumps(payload).encode("utf-8")

    return ScriptedResponse(status=status, headers=all_headers, body=body)


def error_response(status: int, error_type: str, message: str) -> ScriptedResponse:
    """An AWS error: JSON ``{"message": ...}`` and the ``x-amzn-errortype`` header."""
    errortype = {"x-amzn-errortype": f"{error_type}:{ERROR_NAMESPACE}"}

    return _json_response(status, {"message": message}, errortype)


def throttle() -> ScriptedResponse:
    """A 429 ``ThrottlingException`` as Bedrock sends it."""
    return error_response(
        429, "ThrottlingException", "Too many requests, please wait before trying again."
    )


def validation_error(message: str = "Malformed input request.") -> ScriptedResponse:
    """A 400 ``ValidationException`` with ``message``."""
    return error_response(400, "ValidationException", message)


def server_error(message: str = "The server encountered an internal error.") -> ScriptedResponse:
    """A 500 ``InternalServerException``."""
    return error_response(500, "InternalServerException", message)


def stream(events: Sequence[bytes], *, invoke: bool = False) -> ScriptedResponse:
    """A 200 event-stream response made of already encoded ``events``.

    Args:
        events: Messages built with ``eventstream.event``, ``chunk`` or ``exception``.
        invoke: Add the ``x-amzn-bedrock-content-type`` header of InvokeModelWithResponseStream.
    """
    headers = {"Content-Type": eventstream.CONTENT_TYPE}
    if invoke:
        headers["x-amzn-bedrock-content-type"] = "application/json"

    return ScriptedResponse(status=200, headers=headers, body=b"".join(events))


def stream_exception_after(
    events: Sequence[bytes],
    exception_type: str = "throttlingException",
    message: str = "Too many requests, please wait before trying again.",
    *,
    invoke: bool = False,
) -> ScriptedResponse:
    """A 200 stream that sends ``events`` and then an exception message (lowerCamel type)."""
    return stream([*events, eventstream.exception(exception_type, message)], invoke=invoke)


def synthesize(operation: str | None, model_id: str | None, body: bytes) -> ScriptedResponse:
    """The emulator's default success for an operation, model and request body."""
    status, headers, payload = default_reply(operation, model_id, body)

    return ScriptedResponse(status=status, headers=headers, body=payload)


def parse_path(raw_path: str) -> tuple[str | None, str | None]:
    """Split ``/model/{percent-encoded id}/{op}`` into the decoded model id and operation name."""
    parts = urlsplit(raw_path).path.split("/")
    if len(parts) != 4 or parts[0] or parts[1] != "model":
        return None, None

    return unquote(parts[2]), _OPERATIONS.get(parts[3])


class _BedrockHandler(QuietHandler):
    """Serves Bedrock Runtime requests on the server's per-connection threads."""

    def do_POST(self) -> None:
        """Record the request and answer with the next scripted or a synthesized response."""
        emulator = self.server.owner
        assert isinstance(emulator, BedrockEmulator)
        body = self.read_body()
        model_id, operation = parse_path(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = RecordedRequest(self.command, self.path, model_id, operation, headers, body)
        response = emulator._take(request) or synthesize(operation, model_id, body)
        self._send(response)

    do_GET = do_POST

    def _send(self, response: ScriptedResponse) -> None:
        """Write a scripted response, applying its delay and truncation."""
        if response.delay_seconds > 0:
            time.sleep(response.delay_seconds)
        headers = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
        if not any(name.lower() == "x-amzn-requestid" for name in headers):
            headers["x-amzn-requestid"] = str(uuid.uuid4())
        if response.truncate_after is not None:
            self.respond_cut(response.status, headers, response.body, response.truncate_after)
        else:
            self.respond(response.status, headers, response.body)


class BedrockEmulator(EmulatorBase):
    """A Bedrock Runtime server on loopback for tests and demos.

    Thread-safe: ``enqueue``, ``requests`` and ``reset`` may be called from any thread while
    the server threads answer requests.

    Args:
        host: Address to bind.
        port: Port to bind; 0 (the default) picks a free ephemeral port.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._loop = LoopbackServer(_BedrockHandler, self, host, port)
        self._lock = threading.Lock()
        self._queue: list[ScriptedResponse] = []
        self._requests: list[RecordedRequest] = []

    @property
    def endpoint_url(self) -> str:
        """The ``endpoint_url`` to give boto3, e.g. ``http://127.0.0.1:50123``."""
        return self._loop.base_url

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """How many scripted responses are still queued."""
        with self._lock:
            return len(self._queue)

    def enqueue(self, *responses: ScriptedResponse) -> None:
        """Queue responses to serve, in order, to the next requests on any path."""
        with self._lock:
            self._queue.extend(responses)

    def load_exchange(self, exchange: Mapping[str, Any]) -> int:
        """Queue the ``response`` or each of the ``responses`` of a recorded exchange.

        Returns:
            How many responses were queued (0 for an exchange without any, such as a
            recorded connection failure).
        """
        recorded = exchange.get("responses") or [exchange.get("response")]
        recorded = [response for response in recorded if response]
        self.enqueue(*(ScriptedResponse.from_recording(r) for r in recorded))

        return len(recorded)

    def reset(self) -> None:
        """Drop queued responses and recorded requests."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    def _take(self, request: RecordedRequest) -> ScriptedResponse | None:
        """Record ``request`` and pop the next scripted response, if any."""
        with self._lock:
            self._requests.append(request)
            return self._queue.pop(0) if self._queue else None
