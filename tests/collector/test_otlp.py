"""OTLP/HTTP bodies: protobuf and OTLP JSON in, compressed or not; responses in kind."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.otlp import (
    JSON,
    PROTOBUF,
    BadRequest,
    TooLarge,
    UnsupportedMediaType,
    decode_logs,
    decode_traces,
    decompress,
    encode_logs_response,
    encode_status,
    encode_traces_response,
    media_type,
)

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"
PARENT_ID = "eee19b7ec3c1b173"

# An OTLP JSON body as the specification's example writes it: hex ids, lowerCamelCase keys,
# a numeric enum, int64 values as strings.
TRACES_JSON = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "opentelemetry.instrumentation.botocore"},
                    "spans": [
                        {
                            "traceId": TRACE_ID,
                            "spanId": SPAN_ID,
                            "parentSpanId": PARENT_ID,
                            "name": "Bedrock Runtime.Converse",
                            "kind": 3,
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "attributes": [
                                {"key": "rpc.method", "value": {"stringValue": "Converse"}},
                                {"key": "traceId", "value": {"stringValue": "not-an-id"}},
                            ],
                            "status": {"code": "STATUS_CODE_ERROR", "message": "throttled"},
                            "unknownField": {"ignored": True},
                        }
                    ],
                }
            ],
        }
    ]
}


def traces_request() -> ExportTraceServiceRequest:
    """A request with one span, built as a protobuf message."""
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex(TRACE_ID)
    span.span_id = bytes.fromhex(SPAN_ID)
    span.name = "Bedrock Runtime.InvokeModel"
    return request


def test_protobuf_body_decodes() -> None:
    """A binary protobuf body gives the same message back."""
    body = traces_request().SerializeToString()

    assert decode_traces(body, "application/x-protobuf") == traces_request()


def test_json_body_with_hex_ids_decodes() -> None:
    """OTLP JSON: hex ids, numeric and named enums, string int64s; unknown fields ignored."""
    body = json.dumps(TRACES_JSON).encode()

    request = decode_traces(body, "application/json; charset=utf-8")

    [span] = request.resource_spans[0].scope_spans[0].spans
    assert span.trace_id == bytes.fromhex(TRACE_ID)
    assert span.span_id == bytes.fromhex(SPAN_ID)
    assert span.parent_span_id == bytes.fromhex(PARENT_ID)
    assert span.kind == Span.SpanKind.SPAN_KIND_CLIENT
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.status.code == 2
    assert span.attributes[1].value.string_value == "not-an-id"
    assert request.resource_spans[0].scope_spans[0].scope.name == (
        "opentelemetry.instrumentation.botocore"
    )


def test_json_accepts_proto_field_names() -> None:
    """snake_case keys (the proto field names) are read too, ids still as hex."""
    body = json.dumps(
        {
            "resource_spans": [
                {"scope_spans": [{"spans": [{"trace_id": TRACE_ID, "span_id": SPAN_ID}]}]}
            ]
        }
    ).encode()

    [span] = decode_traces(body, JSON).resource_spans[0].scope_spans[0].spans

    assert span.trace_id == bytes.fromhex(TRACE_ID)


def test_json_log_record_ids_are_hex() -> None:
    """Log records carry hex trace and span ids in OTLP JSON too."""
    body = json.dumps(
        {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {
                                    "traceId": TRACE_ID,
                                    "spanId": SPAN_ID,
                                    "eventName": "gen_ai.user.message",
                                    "body": {
                                        "kvlistValue": {
                                            "values": [
                                                {"key": "content", "value": {"stringValue": "hi"}}
                                            ]
                                        }
                                    },
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()

    [record] = decode_logs(body, JSON).resource_logs[0].scope_logs[0].log_records

    assert record.trace_id == bytes.fromhex(TRACE_ID)
    assert record.span_id == bytes.fromhex(SPAN_ID)
    assert record.event_name == "gen_ai.user.message"
    assert record.body.kvlist_value.values[0].value.string_value == "hi"


@pytest.mark.parametrize(
    "compress",
    [gzip.compress, zlib.compress, lambda data: gzip.compress(data[:5]) + gzip.compress(data[5:])],
    ids=["gzip", "deflate", "gzip-two-members"],
)
def test_compressed_bodies_decode(compress: object) -> None:
    """gzip (one or several members) and deflate bodies decode like plain ones."""
    assert callable(compress)
    body = traces_request().SerializeToString()
    encoding = "deflate" if compress is zlib.compress else "gzip"

    assert decode_traces(compress(body), PROTOBUF, encoding) == traces_request()


def test_raw_deflate_without_zlib_wrapper_decodes() -> None:
    """A deflate body without the zlib header (as some clients send) is read too."""
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    body = packer.compress(b"x" * 100) + packer.flush()

    assert decompress(body, "deflate", 1000) == b"x" * 100


def test_gzip_bomb_stops_at_the_limit() -> None:
    """A small gzip body that expands past max_bytes is refused as too large."""
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000

    with pytest.raises(TooLarge, match="over the limit of 1000000"):
        decode_traces(bomb, PROTOBUF, "gzip", max_bytes=1_000_000)


def test_body_over_the_limit_is_too_large() -> None:
    """A body longer than max_bytes is refused before it is read."""
    with pytest.raises(TooLarge) as raised:
        decode_traces(b"\0" * 11, PROTOBUF, max_bytes=10)

    assert raised.value.status == 413


def test_exactly_the_limit_is_accepted() -> None:
    """A body that decompresses to exactly max_bytes passes."""
    assert decompress(gzip.compress(b"a" * 64), "gzip", 64) == b"a" * 64


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "message"),
    [
        (b"\xff\xff\xff", PROTOBUF, None, "malformed protobuf"),
        (b"{not json", JSON, None, "malformed JSON"),
        (b"[]", JSON, None, "must be an object"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            JSON,
            None,
            "traceId 'zz' is not a hex string",
        ),
        (b'{"resourceSpans": 5}', JSON, None, "malformed OTLP JSON"),
        (b"not gzip at all", PROTOBUF, "gzip", "corrupt gzip"),
        (gzip.compress(b"abc")[:-4], PROTOBUF, "gzip", "truncated gzip"),
    ],
    ids=["protobuf", "json", "json-array", "hex", "json-shape", "gzip", "gzip-truncated"],
)
def test_malformed_bodies_are_bad_requests(
    body: bytes, content_type: str, encoding: str | None, message: str
) -> None:
    """An unreadable body raises BadRequest (400) saying what is wrong."""
    with pytest.raises(BadRequest, match=message) as raised:
        decode_traces(body, content_type, encoding)

    assert type(raised.value) is BadRequest
    assert raised.value.status == 400


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/grpc"])
def test_other_content_types_are_unsupported(content_type: str | None) -> None:
    """Anything but protobuf or JSON is an unsupported media type (415)."""
    with pytest.raises(UnsupportedMediaType) as raised:
        decode_traces(b"", content_type)

    assert raised.value.status == 415


def test_other_encodings_are_unsupported() -> None:
    """A content encoding other than gzip, deflate or identity is refused with 415."""
    with pytest.raises(UnsupportedMediaType, match="'zstd'"):
        decode_traces(b"", PROTOBUF, "zstd")


def test_media_type_names_the_format() -> None:
    """Content-Type headers map to the two formats, parameters and case ignored."""
    assert media_type("Application/JSON; charset=utf-8") == JSON
    assert media_type("application/x-protobuf") == PROTOBUF
    assert media_type("application/protobuf") == PROTOBUF


def test_empty_protobuf_body_is_an_empty_request() -> None:
    """An empty protobuf body is a valid request with nothing in it."""
    assert decode_traces(b"", PROTOBUF, "identity") == ExportTraceServiceRequest()
    assert decode_logs(b"", PROTOBUF) == ExportLogsServiceRequest()


def test_full_success_response_is_empty() -> None:
    """Without refusals the response carries no partial_success, in either format."""
    assert encode_traces_response(PROTOBUF) == b""
    assert json.loads(encode_traces_response(JSON)) == {}


def test_partial_success_for_rejected_spans() -> None:
    """Refused spans are reported in partial_success, lowerCamelCase in JSON."""
    body = encode_traces_response(PROTOBUF, 3, "3 spans with invalid ids")
    parsed = ExportTraceServiceResponse.FromString(body)

    assert parsed.partial_success.rejected_spans == 3
    assert parsed.partial_success.error_message == "3 spans with invalid ids"
    assert json.loads(encode_traces_response(JSON, 3, "bad ids")) == {
        "partialSuccess": {"rejectedSpans": "3", "errorMessage": "bad ids"}
    }


def test_partial_success_for_rejected_log_records() -> None:
    """Refused log records are reported in partial_success of the logs response."""
    parsed = ExportLogsServiceResponse.FromString(encode_logs_response(PROTOBUF, 2, "why"))

    assert parsed.partial_success.rejected_log_records == 2
    assert parsed.partial_success.error_message == "why"
    assert json.loads(encode_logs_response(JSON, 1)) == {
        "partialSuccess": {"rejectedLogRecords": "1"}
    }


def test_status_body_in_both_formats() -> None:
    """Refusals carry a google.rpc.Status that a stock client can read."""
    parsed = Status.FromString(encode_status(PROTOBUF, 8, "slow down ✓"))

    assert (parsed.code, parsed.message) == (8, "slow down ✓")
    assert Status.FromString(encode_status(PROTOBUF, 300, "x")).code == 300
    assert json.loads(encode_status(JSON, 3, "bad")) == {"code": 3, "message": "bad"}
