"""OTLP/HTTP bodies: export requests in, export responses out.

Requests come as binary protobuf (``application/x-protobuf``) or OTLP JSON
(``application/json``), optionally gzip- or deflate-compressed (``Content-Encoding``). OTLP
JSON differs from protobuf's canonical JSON in one way that matters here: trace and span ids
are hex strings, not base64; keys are lowerCamelCase (the proto field names are accepted too),
enum values may be numbers, and unknown fields are ignored.

Responses use the request's format: an ``Export*ServiceResponse`` whose ``partial_success``
tells the client how many spans or log records were refused and why, or for a refused request
a ``google.rpc.Status``.

Errors, all raised before anything is accepted::

    BadRequest               400: the body cannot be read
    ├── UnsupportedMediaType 415: a content type or encoding we do not speak
    └── TooLarge             413: the body, or what it expands to, is over the limit

Every function here is pure and may be called from any thread.
"""

from __future__ import annotations

import binascii
import json
import zlib
from typing import Any, TypeVar

# No type stubs ship with protobuf; the generated message classes below are typed.
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError, Message  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
"""Largest body accepted, before and after decompression."""

_MEDIA_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
_CHUNK = 64 * 1024

_Request = TypeVar("_Request", ExportTraceServiceRequest, ExportLogsServiceRequest)


class BadRequest(Exception):
    """The request body cannot be read; ``status`` is the HTTP status to answer."""

    status = 400


class UnsupportedMediaType(BadRequest):
    """A ``Content-Type`` or ``Content-Encoding`` that OTLP/HTTP does not use."""

    status = 415


class TooLarge(BadRequest):
    """The body, or what it decompresses to, is larger than allowed."""

    status = 413


def media_type(content_type: str | None) -> str:
    """The body format a ``Content-Type`` header names: :data:`PROTOBUF` or :data:`JSON`.

    Parameters such as ``charset`` are ignored.

    Raises:
        UnsupportedMediaType: for a missing header or any other type.
    """
    base = (content_type or "").split(";", 1)[0].strip().lower()
    found = _MEDIA_TYPES.get(base)
    if found is None:
        raise UnsupportedMediaType(
            f"unsupported content type {content_type!r}; use {PROTOBUF} or {JSON}"
        )

    return found


def decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body with its ``Content-Encoding`` undone, at most ``max_bytes`` long.

    Decompression stops as soon as the output passes ``max_bytes``, so a small body that
    expands enormously (a gzip bomb) costs no more than the limit.

    Raises:
        TooLarge: when the body or its decompressed form is over ``max_bytes``.
        UnsupportedMediaType: for an encoding other than gzip, deflate or identity.
        BadRequest: for a corrupt compressed body.
    """
    if len(body) > max_bytes:
        raise TooLarge(f"body of {len(body)} bytes is over the limit of {max_bytes}")
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return _inflate(body, 16 + zlib.MAX_WBITS, max_bytes, "gzip")
    if encoding == "deflate":
        try:
            return _inflate(body, zlib.MAX_WBITS, max_bytes, "deflate")
        except TooLarge:
            raise
        except BadRequest:
            # Some clients send raw deflate data without the zlib wrapper.
            return _inflate(body, -zlib.MAX_WBITS, max_bytes, "deflate")
    raise UnsupportedMediaType(
        f"unsupported content encoding {content_encoding!r}; use gzip, deflate or none"
    )


def _inflate(body: bytes, wbits: int, max_bytes: int, name: str) -> bytes:
    """Decompress one or more concatenated members, stopping past ``max_bytes``."""
    out = bytearray()
    data = body
    try:
        while True:
            inflater = zlib.decompressobj(wbits)
            while data:
                out += inflater.decompress(data, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    raise TooLarge(f"decompressed body is over the limit of {max_bytes} bytes")
                data = inflater.unconsumed_tail
            out += inflater.flush()
            if not inflater.eof:
                raise BadRequest(f"truncated {name} body")
            data = inflater.unused_data
            if not data:
                break
    except zlib.error as error:
        raise BadRequest(f"corrupt {name} body: {error}") from None
    if len(out) > max_bytes:
        raise TooLarge(f"decompressed body is over the limit of {max_bytes} bytes")

    return bytes(out)


def decode_traces(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ExportTraceServiceRequest:
    """An ``ExportTraceServiceRequest`` from an OTLP/HTTP ``/v1/traces`` body.

    Raises:
        BadRequest: or one of its subclasses; see the module docstring.
    """
    return _decode(ExportTraceServiceRequest(), body, content_type, content_encoding, max_bytes)


def decode_logs(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ExportLogsServiceRequest:
    """An ``ExportLogsServiceRequest`` from an OTLP/HTTP ``/v1/logs`` body.

    Raises:
        BadRequest: or one of its subclasses; see the module docstring.
    """
    return _decode(ExportLogsServiceRequest(), body, content_type, content_encoding, max_bytes)


def _decode(
    request: _Request,
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    max_bytes: int,
) -> _Request:
    kind = media_type(content_type)
    data = decompress(body, content_encoding, max_bytes)
    if kind == PROTOBUF:
        try:
            request.ParseFromString(data)
        except (DecodeError, RecursionError) as error:
            raise BadRequest(f"malformed protobuf body: {error}") from None
        return request
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise BadRequest(f"malformed JSON body: {error}") from None
    if not isinstance(document, dict):
        raise BadRequest("the JSON body must be an object")
    try:
        json_format.ParseDict(_ids_to_base64(document), request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as error:
        raise BadRequest(f"malformed OTLP JSON body: {error}") from None

    return request


# Fields holding ids (hex in OTLP JSON, base64 in protobuf's JSON), by both spellings.
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def _ids_to_base64(value: Any) -> Any:
    """A copy of an OTLP JSON document with every hex id rewritten in base64."""
    if isinstance(value, list):
        return [_ids_to_base64(item) for item in value]
    if not isinstance(value, dict):
        return value
    converted = {}
    for key, item in value.items():
        if key in _ID_KEYS and isinstance(item, str):
            converted[key] = _hex_to_base64(key, item)
        elif isinstance(item, dict | list) and key not in ("value", "body"):
            converted[key] = _ids_to_base64(item)
        else:
            # Attribute values and log bodies are user data: an attribute named "traceId"
            # inside them keeps its value.
            converted[key] = item

    return converted


def _hex_to_base64(key: str, text: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise BadRequest(f"{key} {text[:40]!r} is not a hex string") from None

    return binascii.b2a_base64(raw, newline=False).decode()


def encode_traces_response(content_type: str, rejected: int = 0, message: str = "") -> bytes:
    """The ``ExportTraceServiceResponse`` body, with ``partial_success`` when spans were refused.

    ``content_type`` is the request's format (:func:`media_type` of its header).
    """
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
        )

    return _encode(response, content_type)


def encode_logs_response(content_type: str, rejected: int = 0, message: str = "") -> bytes:
    """The ``ExportLogsServiceResponse`` body, with ``partial_success`` when records were refused.

    ``content_type`` is the request's format (:func:`media_type` of its header).
    """
    response = ExportLogsServiceResponse()
    if rejected or message:
        response.partial_success.CopyFrom(
            ExportLogsPartialSuccess(rejected_log_records=rejected, error_message=message)
        )

    return _encode(response, content_type)


def _encode(message: Message, content_type: str) -> bytes:
    if content_type == JSON:
        text: str = json_format.MessageToJson(message, indent=None)
        return text.encode()
    body: bytes = message.SerializeToString()

    return body


def encode_status(content_type: str, code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` body for a refused request (OTLP/HTTP error responses).

    Args:
        content_type: :data:`PROTOBUF` or :data:`JSON`, as the request used.
        code: The gRPC status code that matches the refusal (3 invalid argument, 8 resource
            exhausted, 14 unavailable, 16 unauthenticated).
        message: What went wrong, for the client's log.
    """
    if content_type == JSON:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()
    # Status has int32 code = 1 and string message = 2; encoded by hand so that no extra
    # package is needed for two fields.
    body = b""
    if code:
        body += b"\x08" + _varint(code)
    if text:
        body += b"\x12" + _varint(len(text)) + text

    return body


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)
