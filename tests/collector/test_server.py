"""The collector's servers: OTLP/HTTP and OTLP/gRPC answers as the OTLP specification asks,
health, readiness and metrics. A real intake delivers to the capture emulator."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
import requests
import structlog
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families

from collector import server as server_module
from collector.server import Collector, CollectorThread
from collector.settings import load_collector_settings
from otel_bedrock import _once
from otel_bedrock.testing import CaptureEmulator
from otel_bedrock.testing._server import free_port
from tests.collector.builders import LLAMA, TRACE, bedrock_attributes, log, logs, span, traces

PROTOBUF = "application/x-protobuf"
USAGE = {"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3}
TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
# Llama 3.1 8B Instruct: $0.22 per million tokens in and out; 12 + 3 tokens.
LLAMA_COST = 15 * 0.22e-6


def collectors(make_intake: Any) -> Iterator[Callable[..., CollectorThread]]:
    """A builder of collectors on free loopback ports in front of a real intake (made by
    ``make_intake`` with ``intake_options``, unless one is given); each is stopped at the end.
    Shared by the fixtures of the collector's server test modules."""
    started: list[CollectorThread] = []

    def build(
        *,
        intake: Any = None,
        intake_options: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        body_timeout: float = 30.0,
        **settings: Any,
    ) -> CollectorThread:
        if intake is None:
            intake = make_intake(**(intake_options or {}))
        values = {"http_port": free_port(), "grpc_port": free_port(), **settings}
        collector = Collector(
            intake,
            load_collector_settings(**values),
            shutdown_timeout=2.0,
            request_grace=2.0,
            clock=clock,
            body_timeout=body_timeout,
        )
        thread = CollectorThread(collector).start()
        started.append(thread)
        return thread

    yield build
    for thread in started:
        thread.stop()


@pytest.fixture
def make_collector(make_intake: Any) -> Iterator[Callable[..., CollectorThread]]:
    """Start collectors in front of real intakes; stopped after the test."""
    yield from collectors(make_intake)


def post(
    server: CollectorThread,
    body: bytes,
    path: str = "/v1/traces",
    content_type: str = PROTOBUF,
    **headers: str,
) -> requests.Response:
    """POST a body to the collector's OTLP/HTTP server."""
    sent = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return requests.post(server.http_url + path, data=body, headers=sent, timeout=10)


def grpc_call(
    server: CollectorThread, body: bytes, method: str = TRACE_METHOD, **metadata: str
) -> bytes:
    """One raw OTLP/gRPC call: the request bytes out, the response bytes back."""
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(method)
        reply: bytes = call(body, metadata=tuple(metadata.items()), timeout=10)
        return reply


def one_call() -> ExportTraceServiceRequest:
    """An export request with one upstream-style span of a Llama call, 12 tokens in, 3 out."""
    return traces(span(0xA1, bedrock_attributes(**USAGE)))


def status_of(response: requests.Response) -> status_pb2.Status:
    """The google.rpc.Status of an error response, in the format the response declares."""
    status = status_pb2.Status()
    if response.headers["Content-Type"] == "application/json":
        document = response.json()
        status.code, status.message = document["code"], document["message"]
    else:
        status.ParseFromString(response.content)
    return status


def delivered(server: CollectorThread, capture: CaptureEmulator) -> list[Any]:
    """Every event PostHog received once the intake's delivery has flushed."""
    assert server.collector.intake.delivery.flush(5)
    return list(capture.events)


def assert_llama_event(event: Any) -> None:
    """The event of ``one_call``: model, tokens and cost computed by hand."""
    properties = event["properties"]
    assert event["event"] == "bedrock_completion"
    assert properties["model"] == LLAMA
    assert properties["prompt_token_count"] == 12
    assert properties["generation_token_count"] == 3
    assert properties["total_cost_in_dollars"] == pytest.approx(LLAMA_COST, abs=1e-12)


def test_health_and_readiness(make_collector: Any) -> None:
    """/healthz and /readyz answer 200 while the collector serves and PostHog answers."""
    server = make_collector()

    health = requests.get(server.http_url + "/healthz", timeout=5)
    ready = requests.get(server.http_url + "/readyz", timeout=5)

    assert (health.status_code, ready.status_code) == (200, 200)


def test_protobuf_traces_become_an_event(make_collector: Any, capture: CaptureEmulator) -> None:
    """A protobuf export gets an empty protobuf response, and its span becomes one event."""
    server = make_collector()

    response = post(server, one_call().SerializeToString())

    assert response.status_code == 200
    assert response.headers["Content-Type"] == PROTOBUF
    assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()
    [event] = delivered(server, capture)
    assert_llama_event(event)


def test_json_traces_become_an_event(make_collector: Any, capture: CaptureEmulator) -> None:
    """An OTLP JSON export (hex ids, lowerCamelCase) gets a JSON response and one event."""
    server = make_collector()
    attributes = [
        {
            "key": key,
            "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value},
        }
        for key, value in bedrock_attributes(**USAGE).items()
    ]
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": []},
                "scopeSpans": [
                    {
                        "scope": {"name": "opentelemetry.instrumentation.botocore"},
                        "spans": [
                            {
                                "traceId": f"{TRACE:032x}",
                                "spanId": "00000000000000b1",
                                "name": "Bedrock Runtime.InvokeModel",
                                "kind": 3,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000000250000000",
                                "attributes": attributes,
                            }
                        ],
                    }
                ],
            }
        ]
    }

    response = post(server, json.dumps(document).encode(), content_type="application/json")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {}
    [event] = delivered(server, capture)
    assert_llama_event(event)
    assert event["properties"]["span_id"] == "00000000000000b1"


def test_gzip_body_is_read(make_collector: Any, capture: CaptureEmulator) -> None:
    """A gzip-compressed protobuf body is accepted like a plain one."""
    server = make_collector()

    response = post(server, gzip.compress(one_call().SerializeToString()), Content_Encoding="gzip")

    assert response.status_code == 200
    [event] = delivered(server, capture)
    assert_llama_event(event)


def test_invalid_ids_are_a_partial_success(make_collector: Any, capture: CaptureEmulator) -> None:
    """A span with an all-zero trace id is refused in partial_success; the valid one is kept."""
    server = make_collector()
    bad = span(0xA2, bedrock_attributes(**USAGE))
    bad.trace_id = bytes(16)
    request = traces(span(0xA1, bedrock_attributes(**USAGE)), bad)

    response = post(server, request.SerializeToString())

    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert answer.partial_success.error_message == "1 span(s) with an invalid trace or span id"
    [event] = delivered(server, capture)
    assert_llama_event(event)


def test_invalid_ids_in_json_are_a_partial_success_in_json(make_collector: Any) -> None:
    """The JSON response to a JSON request carries partialSuccess in lowerCamelCase."""
    server = make_collector()
    document = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0" * 32,
                                "spanId": "00000000000000c1",
                                "name": "Bedrock Runtime.InvokeModel",
                            }
                        ]
                    }
                ]
            }
        ]
    }

    response = post(server, json.dumps(document).encode(), content_type="application/json")

    assert response.status_code == 200
    assert response.json() == {
        "partialSuccess": {
            "rejectedSpans": "1",
            "errorMessage": "1 span(s) with an invalid trace or span id",
        }
    }


def test_malformed_protobuf_is_400_with_a_status(
    make_collector: Any, capture: CaptureEmulator
) -> None:
    """A corrupt protobuf body gets 400 and a google.rpc.Status; the next request still works."""
    server = make_collector()

    response = post(server, b"\xff\xff\xff\xff")

    assert response.status_code == 400
    assert response.headers["Content-Type"] == PROTOBUF
    status = status_of(response)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.message.startswith("malformed protobuf body")
    assert post(server, one_call().SerializeToString()).status_code == 200
    [event] = delivered(server, capture)
    assert_llama_event(event)


def test_malformed_json_is_400_with_a_json_status(make_collector: Any) -> None:
    """Unreadable JSON gets 400 and a JSON google.rpc.Status."""
    server = make_collector()

    response = post(server, b"{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert status_of(response).message.startswith("malformed JSON body")


def test_wrong_content_type_is_415(make_collector: Any) -> None:
    """A body that is neither protobuf nor JSON gets 415, naming the types that work."""
    server = make_collector()

    response = post(server, b"spans", content_type="text/plain")

    assert response.status_code == 415
    assert "application/x-protobuf" in status_of(response).message


def test_unknown_content_encoding_is_415(make_collector: Any) -> None:
    """A compression OTLP does not use (zstd) gets 415."""
    server = make_collector()

    response = post(server, one_call().SerializeToString(), Content_Encoding="zstd")

    assert response.status_code == 415
    assert "zstd" in status_of(response).message


def test_logs_endpoint_answers_an_export_logs_response(make_collector: Any) -> None:
    """/v1/logs takes an ExportLogsServiceRequest and answers an empty ExportLogsServiceResponse."""
    server = make_collector()
    request = logs(log({"content": "hi"}, span_id=0xA1))

    response = post(server, request.SerializeToString(), path="/v1/logs")

    assert response.status_code == 200
    assert ExportLogsServiceResponse.FromString(response.content) == ExportLogsServiceResponse()
    assert server.collector.intake.counts()["logs_received"] == 1


def test_grpc_export_becomes_an_event(make_collector: Any, capture: CaptureEmulator) -> None:
    """An OTLP/gRPC TraceService/Export call is answered and its span becomes one event."""
    server = make_collector()

    reply = grpc_call(server, one_call().SerializeToString())

    assert ExportTraceServiceResponse.FromString(reply) == ExportTraceServiceResponse()
    [event] = delivered(server, capture)
    assert_llama_event(event)


def test_grpc_partial_success(make_collector: Any) -> None:
    """OTLP/gRPC reports spans with invalid ids in partial_success."""
    server = make_collector()
    bad = span(0xA2, bedrock_attributes(**USAGE))
    bad.span_id = bytes(8)

    reply = grpc_call(server, traces(bad).SerializeToString())

    assert ExportTraceServiceResponse.FromString(reply).partial_success.rejected_spans == 1


def test_grpc_malformed_message_is_invalid_argument(
    make_collector: Any, capture: CaptureEmulator
) -> None:
    """A corrupt gRPC message gets INVALID_ARGUMENT (not retried); the server goes on."""
    server = make_collector()

    with pytest.raises(grpc.RpcError) as raised:
        grpc_call(server, b"\xff\xff\xff\xff")

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert grpc_call(server, one_call().SerializeToString()) == b""
    [event] = delivered(server, capture)
    assert_llama_event(event)


def test_grpc_logs_service(make_collector: Any) -> None:
    """LogsService/Export is served too."""
    server = make_collector()

    reply = grpc_call(server, logs(log("x", span_id=0xA1)).SerializeToString(), LOGS_METHOD)

    assert ExportLogsServiceResponse.FromString(reply) == ExportLogsServiceResponse()


def test_metrics_count_requests_and_the_intake(make_collector: Any) -> None:
    """/metrics shows requests by transport, path and status, and the intake's counters."""
    server = make_collector()
    post(server, one_call().SerializeToString())
    post(server, b"\xff")
    grpc_call(server, one_call().SerializeToString())
    assert server.collector.intake.delivery.flush(5)

    text = requests.get(server.http_url + "/metrics", timeout=5).text

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    requests_total = "otel_bedrock_collector_requests_total"
    http = (("path", "/v1/traces"), ("transport", "http"))
    grpc_path = (("path", "TraceService/Export"), ("status", "OK"), ("transport", "grpc"))
    assert samples[(requests_total, (http[0], ("status", "200"), http[1]))] == 1
    assert samples[(requests_total, (http[0], ("status", "400"), http[1]))] == 1
    assert samples[(requests_total, grpc_path)] == 1
    assert samples[("otel_bedrock_collector_spans_received_total", ())] == 2
    assert samples[("otel_bedrock_collector_spans_converted_total", ())] == 1
    assert samples[("otel_bedrock_collector_spans_duplicate_total", ())] == 1
    assert samples[("otel_bedrock_collector_events_total", (("outcome", "sent"),))] == 1
    assert samples[("otel_bedrock_collector_ready", ())] == 1


def test_stop_lets_a_request_under_way_finish_then_drains(
    make_collector: Any, capture: CaptureEmulator
) -> None:
    """A body still streaming in when stop begins is read, answered 200 and delivered; readiness
    turns off at once; new connections are refused."""
    server = make_collector()
    body = one_call().SerializeToString()
    stopping = threading.Event()

    def slowly() -> Iterator[bytes]:
        yield body[:10]
        stopping.wait(5)
        time.sleep(0.2)  # stop is under way
        yield body[10:]

    with ThreadPoolExecutor(max_workers=1) as pool:
        response = pool.submit(post, server, slowly())
        time.sleep(0.2)  # the request has started
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        stopping.set()
        time.sleep(0.1)
        ready_while_stopping = server.collector.is_ready()
        assert response.result(10).status_code == 200
        stopper.join(10)

    assert ready_while_stopping is False
    [event] = list(capture.events)
    assert_llama_event(event)
    with pytest.raises(requests.ConnectionError):
        post(server, body)


def test_refused_requests_are_logged_at_a_sane_rate(make_collector: Any) -> None:
    """Many malformed requests make one log line, without the body or the message."""
    server = make_collector()

    with structlog.testing.capture_logs() as lines:
        for _ in range(5):
            post(server, b"\xff secret prompt text")

    refused = [line for line in lines if line["event"] == "request_refused"]
    assert refused == [
        {
            "event": "request_refused",
            "log_level": "warning",
            "transport": "http",
            "path": "/v1/traces",
            "status": "400",
            "reason": "malformed_body",
            "suppressed": 0,
        }
    ]


def test_http2_on_the_http_port_is_one_line_naming_the_fix(
    make_collector: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gRPC exporter pointed at the OTLP/HTTP port gets 400, and the log says once, in one
    line without a traceback, which port or protocol setting to change."""
    monkeypatch.setattr(_once, "_seen", {})
    server = make_collector()
    host, port = server.http_url.removeprefix("http://").split(":")

    answers = []
    with caplog.at_level(logging.WARNING, logger="aiohttp.server"):
        for _ in range(3):
            with socket.create_connection((host, int(port)), timeout=5) as connection:
                connection.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00")
                answers.append(connection.recv(64))

    assert all(answer.startswith(b"HTTP/1.0 400 Bad Request") for answer in answers)
    records = [record for record in caplog.records if record.name == "aiohttp.server"]
    assert [(record.levelname, record.exc_info) for record in records] == [("WARNING", None)]
    assert records[0].getMessage() == (
        "otlp_http_request_unreadable peer=127.0.0.1 error=BadHttpMessage: an HTTP/2 client, "
        "most likely an OTLP/gRPC exporter, sent to the OTLP/HTTP port; point gRPC exporters "
        "at the gRPC port (--grpc-port, 4317 by default), or set "
        "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (later ones not logged)"
    )


def test_metrics_are_refused_with_the_setting_that_stops_them(make_collector: Any) -> None:
    """OTLP metrics, which SDKs send by default, get 404 with a body that says how to stop
    them (exporters log that body)."""
    server = make_collector()

    response = post(server, b"", path="/v1/metrics")

    assert response.status_code == 404
    assert response.text == (
        "this service takes OTLP traces and logs only; set OTEL_METRICS_EXPORTER=none in the "
        "sender, or send metrics elsewhere\n"
    )


class _HeldIntake:
    """An intake whose ``accept_traces`` waits until released, to hold decoding places; the
    rest is the real intake's."""

    def __init__(self, intake: Any) -> None:
        self._intake = intake
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def accept_traces(self, request: ExportTraceServiceRequest) -> Any:
        self.entered.release()
        self.release.wait(10)
        return self._intake.accept_traces(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._intake, name)


def test_requests_past_the_decoding_places_wait_then_get_503(
    make_collector: Any, make_intake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most MAX_DECODING requests are decoded at once; one more waits DECODE_WAIT for its
    turn and is then answered 503 with Retry-After, and the others complete."""
    monkeypatch.setattr(server_module, "DECODE_WAIT", 0.3)
    held = _HeldIntake(make_intake())
    server = make_collector(intake=held)
    body = one_call().SerializeToString()

    with ThreadPoolExecutor(server_module.MAX_DECODING) as pool:
        first = [pool.submit(post, server, body) for _ in range(server_module.MAX_DECODING)]
        for _ in first:
            assert held.entered.acquire(timeout=10)
        late = post(server, body)
        held.release.set()
        answers = [future.result() for future in first]

    assert late.status_code == 503
    assert late.headers["Retry-After"] == "1"
    assert status_of(late).message == "too many requests being decoded at once"
    assert [answer.status_code for answer in answers] == [200] * server_module.MAX_DECODING


def test_a_connection_that_never_finishes_its_headers_is_closed(
    make_collector: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends half a request and stalls loses its connection after the idle
    timeout, so stalled connections cannot pile up; the server goes on answering."""
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT", 0.5)
    server = make_collector()
    host, port = server.http_url.removeprefix("http://").split(":")

    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = connection.recv(64)
        waited = time.monotonic() - started

    assert closed == b""
    assert waited < 9  # closed by the server, not by this test's own 10 s timeout
    assert requests.get(server.http_url + "/healthz", timeout=5).status_code == 200
