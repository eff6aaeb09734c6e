"""Tests for the event-stream encoder, checked against botocore's own decoder."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer, EventStreamMessage

from otel_bedrock.testing import eventstream
from tests.conftest import shared_files


def _decode(data: bytes) -> list[EventStreamMessage]:
    """Decode a byte string into messages with botocore's decoder."""
    buffer = EventStreamBuffer()
    buffer.add_data(data)

    return list(buffer)


def _recorded_streams() -> list[Any]:
    """Every recorded event-stream body in the shared recordings and cases."""
    params = []
    for path in shared_files("recordings") + shared_files("cases"):
        exchange = json.loads(path.read_text())
        responses = exchange.get("responses") or [exchange.get("response")]
        for index, response in enumerate(responses):
            if response and "body_base64" in response:
                body = base64.b64decode(response["body_base64"])
                params.append(pytest.param(body, id=f"{path.stem}-{index}"))

    return params


def test_encode_message_layout() -> None:
    """The prelude holds total and header lengths and its CRC; the message ends with a CRC."""
    message = eventstream.encode_message({"a": "bc"}, b"xyz")

    total, headers_length, prelude_crc = struct.unpack(">III", message[:12])
    assert total == len(message) == 12 + 7 + 3 + 4
    assert headers_length == 7
    assert prelude_crc == zlib.crc32(message[:8])
    assert message[12:19] == b"\x01a\x07\x00\x02bc"
    assert message[19:22] == b"xyz"
    assert struct.unpack(">I", message[-4:])[0] == zlib.crc32(message[:-4])


def test_encode_message_decodes_with_botocore() -> None:
    """botocore decodes an encoded message back to the same headers and payload."""
    headers = {":event-type": "metadata", "note": "héllo"}

    (message,) = _decode(eventstream.encode_message(headers, b'{"k":1}'))

    assert message.headers == headers
    assert message.payload == b'{"k":1}'


def test_event_has_bedrock_headers_and_json_payload() -> None:
    """An event carries the three Bedrock headers and compact JSON."""
    (message,) = _decode(eventstream.event("messageStop", {"stopReason": "end_turn"}))

    assert message.headers == {
        ":event-type": "messageStop",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert message.payload == b'{"stopReason":"end_turn"}'


def test_exception_message() -> None:
    """An exception carries its lowerCamel type and the message as JSON."""
    (message,) = _decode(eventstream.exception("throttlingException", "Slow down"))

    assert message.headers == {
        ":exception-type": "throttlingException",
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    assert json.loads(message.payload) == {"message": "Slow down"}


def test_chunk_wraps_payload_in_base64_bytes() -> None:
    """A chunk is a ``chunk`` event whose ``bytes`` field is the base64 of the JSON payload."""
    (message,) = _decode(eventstream.chunk({"generation": "Hi", "stop_reason": None}))

    assert message.headers[":event-type"] == "chunk"
    inner = json.loads(message.payload)["bytes"]
    assert json.loads(base64.b64decode(inner)) == {"generation": "Hi", "stop_reason": None}


def test_long_header_name_is_rejected() -> None:
    """A header name over 255 bytes raises ValueError instead of producing a corrupt frame."""
    with pytest.raises(ValueError, match="header name too long"):
        eventstream.encode_message({"n" * 256: "v"}, b"")


@pytest.mark.parametrize("body", _recorded_streams())
def test_recorded_stream_reencodes_byte_identically(body: bytes) -> None:
    """Decoding a recorded Bedrock stream and encoding each message again gives the same bytes."""
    messages = _decode(body)

    assert messages
    assert b"".join(eventstream.encode_message(m.headers, m.payload) for m in messages) == body
