"""Encoder for AWS event-stream messages (``application/vnd.amazon.eventstream``).

Bedrock streams (ConverseStream, InvokeModelWithResponseStream) are a sequence of binary
messages. Each message is laid out as::

    total length (4) | headers length (4) | CRC32 of the previous 8 bytes (4)
    headers | payload | CRC32 of everything before it (4)

All integers are big-endian. A header is a one-byte name length, the name, a type byte and a
value; only string values (type 7, two-byte length) are produced here, which is all Bedrock
sends. The helpers build the three kinds of message Bedrock emits: events, exceptions and the
``chunk`` events of InvokeModelWithResponseStream.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

CONTENT_TYPE = "application/vnd.amazon.eventstream"

_STRING_TYPE = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_PRELUDE_AND_CRC_BYTES = _PRELUDE.size + 2 * _CRC.size


def _encode_headers(headers: Mapping[str, str]) -> bytes:
    """Encode string headers in the order given."""
    parts: list[bytes] = []
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        raw_value = value.encode("utf-8")
        if len(raw_name) > 255:
            raise ValueError(f"header name too long ({len(raw_name)} bytes): {name[:40]!r}")
        if len(raw_value) > 0xFFFF:
            raise ValueError(f"header {name!r} value too long ({len(raw_value)} bytes)")
        parts.append(bytes([len(raw_name)]) + raw_name + bytes([_STRING_TYPE]))
        parts.append(struct.pack(">H", len(raw_value)) + raw_value)

    return b"".join(parts)


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """Encode one event-stream message.

    Args:
        headers: Header names and string values, written in iteration order.
        payload: The message payload, usually JSON.

    Returns:
        The complete message, prelude and checksums included.
    """
    encoded_headers = _encode_headers(headers)
    total = _PRELUDE_AND_CRC_BYTES + len(encoded_headers) + len(payload)
    prelude = _PRELUDE.pack(total, len(encoded_headers))
    head = prelude + _CRC.pack(zlib.crc32(prelude))
    body = head + encoded_headers + payload

    return body + _CRC.pack(zlib.crc32(body))


def _json_bytes(value: Any) -> bytes:
    """Serialise ``value`` as compact JSON, the way Bedrock writes its payloads."""
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def event(event_type: str, payload: Mapping[str, Any]) -> bytes:
    """Encode an event message such as ``contentBlockDelta`` with a JSON payload."""
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }

    return encode_message(headers, _json_bytes(payload))


def exception(exception_type: str, message: str) -> bytes:
    """Encode an exception message, e.g. ``exception("throttlingException", "Slow down")``.

    Bedrock names stream exceptions in lowerCamel case; botocore raises them as
    ``EventStreamError`` with that name as the error code.
    """
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }

    return encode_message(headers, _json_bytes({"message": message}))


def chunk(payload: Mapping[str, Any]) -> bytes:
    """Encode an InvokeModelWithResponseStream ``chunk`` event carrying ``payload`` as JSON.

    The model's JSON goes base64-encoded into the ``bytes`` field, as Bedrock sends it.
    """
    inner = base64.b64encode(_json_bytes(payload)).decode("ascii")

    return event("chunk", {"bytes": inner})
