"""The collector's limits: bearer token, request size, request rate and backpressure. After
each refusal the service still serves, and nothing it had accepted is lost."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
import requests
from google.rpc import error_details_pb2, status_pb2

from collector.refusals import TokenBucket
from collector.server import CollectorThread
from otel_bedrock.testing import CaptureEmulator
from tests.collector.builders import bedrock_attributes, span, traces
from tests.collector.test_server import (
    USAGE,
    assert_llama_event,
    collectors,
    delivered,
    grpc_call,
    one_call,
    post,
    status_of,
)

TOKEN = "collector-token-7f3a"


@pytest.fixture
def make_collector(make_intake: Any) -> Iterator[Callable[..., CollectorThread]]:
    """Start collectors in front of real intakes; stopped after the test."""
    yield from collectors(make_intake)


def call_with_id(span_id: int) -> bytes:
    """An export body with one Llama call span of the given id."""
    return traces(span(span_id, bedrock_attributes(**USAGE))).SerializeToString()


def span_ids(events: list[Any]) -> list[str]:
    """The span ids of events, sorted."""
    return sorted(event["properties"]["span_id"] for event in events)


def assert_still_serving(server: CollectorThread, capture: CaptureEmulator, events: int) -> None:
    """A good request is still accepted, and PostHog ends with ``events`` + 1 events."""
    assert post(server, call_with_id(0xFFFF)).status_code == 200
    found = delivered(server, capture)
    assert len(found) == events + 1
    assert "000000000000ffff" in span_ids(found)


def retry_info(error: grpc.RpcError) -> tuple[int | None, int | None]:
    """The retry delay in seconds from grpc-status-details-bin and from
    google.rpc.retryinfo-bin, each None when absent."""
    trailers = dict(error.trailing_metadata() or ())
    from_status = from_key = None
    if "grpc-status-details-bin" in trailers:
        status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        assert status.code == error.code().value[0]
        [detail] = status.details
        info = error_details_pb2.RetryInfo()
        assert detail.Unpack(info)
        from_status = info.retry_delay.seconds
    if "google.rpc.retryinfo-bin" in trailers:
        info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
        from_key = info.retry_delay.seconds
    return from_status, from_key


# -- bearer token ----------------------------------------------------------------------------


def test_http_requests_need_the_token(make_collector: Any, capture: CaptureEmulator) -> None:
    """Without the token, or with another, 401 with WWW-Authenticate: Bearer; with it, 200."""
    server = make_collector(token=TOKEN)
    body = one_call().SerializeToString()

    missing = post(server, body)
    wrong = post(server, body, Authorization="Bearer collector-token-7f3b")
    basic = post(server, body, Authorization=f"Basic {TOKEN}")
    right = post(server, body, Authorization=f"Bearer {TOKEN}")

    assert [missing.status_code, wrong.status_code, basic.status_code] == [401, 401, 401]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert status_of(missing).code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert right.status_code == 200
    [event] = delivered(server, capture)
    assert_llama_event(event)
    assert server.collector.intake.counts()["received"] == 1


def test_a_token_that_is_not_ascii_is_401_not_500(make_collector: Any) -> None:
    """A header with bytes outside ASCII (Latin-1 or invalid UTF-8) is a wrong token."""
    server = make_collector(token=TOKEN)
    host, port = server.http_url.removeprefix("http://").split(":")
    answers = []
    for token in (b"t\xf6k", "tök".encode(), b"\xff\xfe"):
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            connection.sendall(
                b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf"
                b"\r\nContent-Length: 0\r\nConnection: close\r\nAuthorization: Bearer "
                + token
                + b"\r\n\r\n"
            )
            answers.append(connection.recv(64).split(b"\r\n", 1)[0])

    assert answers == [b"HTTP/1.1 401 Unauthorized"] * 3


def test_health_readiness_and_metrics_need_no_token(make_collector: Any) -> None:
    """Probes and scrapers reach /healthz, /readyz and /metrics without the token."""
    server = make_collector(token=TOKEN)

    statuses = [
        requests.get(server.http_url + path, timeout=5).status_code
        for path in ("/healthz", "/readyz", "/metrics")
    ]

    assert statuses == [200, 200, 200]


def test_grpc_requests_need_the_token(make_collector: Any, capture: CaptureEmulator) -> None:
    """gRPC without the token, or with another, is UNAUTHENTICATED; with it, accepted."""
    server = make_collector(token=TOKEN)
    body = one_call().SerializeToString()

    codes = []
    for metadata in ({}, {"authorization": "Bearer nope"}):
        with pytest.raises(grpc.RpcError) as raised:
            grpc_call(server, body, **metadata)
        codes.append(raised.value.code())
    grpc_call(server, body, authorization=f"Bearer {TOKEN}")

    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 2
    [event] = delivered(server, capture)
    assert_llama_event(event)


# -- request size ----------------------------------------------------------------------------


def test_announced_size_over_the_limit_is_413_before_the_body(
    make_collector: Any, capture: CaptureEmulator
) -> None:
    """A Content-Length over the limit is answered 413 at once, without waiting for a body."""
    server = make_collector(max_request_bytes=1000)
    head = (
        "POST /v1/traces HTTP/1.1\r\nHost: collector\r\n"
        "Content-Type: application/x-protobuf\r\nContent-Length: 1000000000\r\n\r\n"
    )

    with socket.create_connection(("127.0.0.1", server.collector.http_port), timeout=5) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(4096)

    assert answer.startswith(b"HTTP/1.1 413")
    assert_still_serving(server, capture, 0)


def test_streamed_body_over_the_limit_is_413(make_collector: Any, capture: CaptureEmulator) -> None:
    """A chunked body (no Content-Length) is refused with 413 once it passes the limit."""
    server = make_collector(max_request_bytes=1000)

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"\x00" * 500

    response = post(server, chunks())  # type: ignore[arg-type]

    assert response.status_code == 413
    assert status_of(response).code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "Retry-After" not in response.headers
    assert_still_serving(server, capture, 0)


def test_body_that_stalls_is_408_and_the_service_goes_on(
    make_collector: Any, capture: CaptureEmulator
) -> None:
    """A client that announces 100 bytes and sends 3 gets 408 once the body timeout passes."""
    server = make_collector(body_timeout=0.5)
    port = int(server.http_url.rsplit(":", 1)[1])

    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\nabc"
        )
        answer = client.recv(4096)

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert_still_serving(server, capture, 0)


def test_gzip_body_expanding_past_the_limit_is_413(
    make_collector: Any, capture: CaptureEmulator
) -> None:
    """A small gzip body that expands past the limit (a gzip bomb) gets 413."""
    server = make_collector(max_request_bytes=1000)
    bomb = gzip.compress(b"\x00" * 500_000)
    assert len(bomb) < 1000

    response = post(server, bomb, Content_Encoding="gzip")

    assert response.status_code == 413
    assert_still_serving(server, capture, 0)


def test_grpc_message_over_the_limit_is_resource_exhausted_without_retry(
    make_collector: Any, capture: CaptureEmulator
) -> None:
    """A gRPC message over the limit gets RESOURCE_EXHAUSTED with no RetryInfo: not retried."""
    server = make_collector(max_request_bytes=1000)

    with pytest.raises(grpc.RpcError) as raised:
        grpc_call(server, b"\x0a" + b"\x80" * 2000)

    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_info(raised.value) == (None, None)
    assert_still_serving(server, capture, 0)


# -- request rate ----------------------------------------------------------------------------


def test_over_the_rate_is_429_with_retry_after(
    make_collector: Any, capture: CaptureEmulator
) -> None:
    """Past the burst, 429 with Retry-After; once a token is back, accepted again."""
    now = [0.0]
    server = make_collector(rate_limit=5, burst=2, clock=lambda: now[0])

    first = [post(server, call_with_id(0xD1 + n)) for n in range(3)]
    now[0] += 0.25  # one token back at 5 per second
    later = post(server, call_with_id(0xD9))

    assert [response.status_code for response in first] == [200, 200, 429]
    assert first[2].headers["Retry-After"] == "1"
    assert status_of(first[2]).code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert later.status_code == 200
    events = delivered(server, capture)
    assert span_ids(events) == ["00000000000000d1", "00000000000000d2", "00000000000000d9"]


def test_token_bucket_refills_at_its_rate_up_to_the_burst() -> None:
    """Three at once, then one every half second at two per second; idle time refills only
    up to the burst."""
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])

    at_start = [bucket.take() for _ in range(4)]
    now[0] = 0.5
    half_a_second_later = [bucket.take() for _ in range(2)]
    now[0] = 100.0
    after_a_long_pause = [bucket.take() for _ in range(4)]

    assert at_start == [0.0, 0.0, 0.0, 0.5]
    assert half_a_second_later == [0.0, 0.5]
    assert after_a_long_pause == [0.0, 0.0, 0.0, 0.5]


def test_grpc_over_the_rate_is_resource_exhausted_with_retry_info(make_collector: Any) -> None:
    """Over the rate, gRPC answers RESOURCE_EXHAUSTED with RetryInfo, which makes it retryable."""
    server = make_collector(rate_limit=1, burst=1, clock=lambda: 0.0)
    grpc_call(server, call_with_id(0xD1))

    with pytest.raises(grpc.RpcError) as raised:
        grpc_call(server, call_with_id(0xD2))

    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_info(raised.value) == (1, 1)


def test_a_flood_loses_nothing_that_was_accepted(
    make_collector: Any, capture: CaptureEmulator
) -> None:
    """Forty concurrent requests against a burst of five (and two more per second): every 200
    becomes an event, every other answer is 429 with Retry-After, and the service goes on."""
    now = [0.0]
    server = make_collector(rate_limit=2, burst=5, clock=lambda: now[0])

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda n: post(server, call_with_id(0x100 + n)), range(40)))

    accepted = [n for n, response in enumerate(responses) if response.status_code == 200]
    refused = [response for response in responses if response.status_code != 200]
    assert len(accepted) == 5
    assert {response.status_code for response in refused} == {429}
    assert all(response.headers["Retry-After"] == "1" for response in refused)
    events = delivered(server, capture)
    assert span_ids(events) == sorted(f"{0x100 + n:016x}" for n in accepted)
    now[0] += 0.5  # a token back
    assert_still_serving(server, capture, len(accepted))


# -- backpressure ----------------------------------------------------------------------------


def test_backpressure_is_503_and_unavailable_until_posthog_is_back(
    make_collector: Any, capture: CaptureEmulator
) -> None:
    """PostHog failing with the queue full: 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo,
    /readyz 503, /healthz 200. Once PostHog answers, everything accepted arrives."""
    slow = {"max_queue": 2, "base_backoff": 0.3, "max_backoff": 0.3}
    server = make_collector(intake_options={"delivery": slow})
    capture.fail_next(503, count=1_000_000)
    intake = server.collector.intake
    assert post(server, call_with_id(0xE1)).status_code == 200
    deadline = time.monotonic() + 5
    while not intake.delivery.pressure().failing and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [post(server, call_with_id(0xE2 + n)).status_code for n in range(2)] == [200, 200]

    refused = post(server, call_with_id(0xE9))
    with pytest.raises(grpc.RpcError) as raised:
        grpc_call(server, call_with_id(0xEA))
    ready = requests.get(server.http_url + "/readyz", timeout=5)
    health = requests.get(server.http_url + "/healthz", timeout=5)

    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert status_of(refused).code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    seconds, _ = retry_info(raised.value)
    assert seconds is not None and seconds >= 1
    assert (ready.status_code, health.status_code) == (503, 200)
    capture.reset()  # PostHog answers again
    assert capture.wait_for(3, timeout=10)
    assert span_ids(list(capture.events)) == [
        "00000000000000e1",
        "00000000000000e2",
        "00000000000000e3",
    ]
    assert requests.get(server.http_url + "/readyz", timeout=5).status_code == 200
    assert_still_serving(server, capture, 3)


def test_posthog_slower_than_the_senders_is_503_never_a_drop(
    make_collector: Any, capture: CaptureEmulator
) -> None:
    """PostHog healthy but slow while the queue is full: 503 + Retry-After instead of dropping;
    every accepted call arrives once, and nothing is counted as dropped."""
    server = make_collector(intake_options={"delivery": {"max_queue": 2}})
    capture.set_delay(1.0)

    responses = [post(server, call_with_id(0x200 + n)) for n in range(8)]

    accepted = [n for n, response in enumerate(responses) if response.status_code == 200]
    refused = [response for response in responses if response.status_code != 200]
    assert refused
    assert {response.status_code for response in refused} == {503}
    assert all(int(response.headers["Retry-After"]) >= 1 for response in refused)
    capture.set_delay(0.0)
    assert capture.wait_for(len(accepted), timeout=10)
    assert span_ids(list(capture.events)) == sorted(f"{0x200 + n:016x}" for n in accepted)
    assert server.collector.intake.counts()["dropped"] == 0
