"""Tests for the PostHog capture emulator, driven by the real posthog client and raw HTTP."""

from __future__ import annotations

import gzip
import http.client
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from posthog import Posthog

from otel_bedrock.testing import CaptureEmulator, CaptureRequest

KEY = "phc_testkey"


@pytest.fixture
def emu() -> Iterator[CaptureEmulator]:
    """A running capture emulator, stopped after the test."""
    with CaptureEmulator() as emulator:
        yield emulator


def make_posthog(emu: CaptureEmulator, key: str = KEY, **options: Any) -> Posthog:
    """A real posthog client pointed at the emulator."""
    return Posthog(key, host=emu.url, flush_at=100, flush_interval=0.05, **options)


def post(
    emu: CaptureEmulator, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """POST ``body`` (bytes, or JSON-encoded otherwise) and return status, headers and JSON."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        connection.request("POST", path, data, all_headers)
        response = connection.getresponse()
        payload = json.loads(response.read())
        return response.status, dict(response.getheaders()), payload
    finally:
        connection.close()


def event(name: str = "bedrock_completion", distinct_id: str | None = "user-1") -> dict[str, Any]:
    """A minimal event as posthog-python sends it."""
    return {
        "event": name,
        "distinct_id": distinct_id,
        "properties": {"model": "meta.llama3-1-8b-instruct-v1:0"},
        "uuid": "0190b7c5-0000-7000-8000-000000000001",
        "timestamp": "2026-01-02T03:04:05+00:00",
    }


def test_posthog_capture_and_flush(emu: CaptureEmulator) -> None:
    """Events captured and flushed by posthog-python are recorded with their fields."""
    client = make_posthog(emu)
    uuid = client.capture("bedrock_completion", distinct_id="user-1", properties={"tokens": 12})
    client.flush()
    client.shutdown()

    assert emu.wait_for(1, timeout=5)
    (captured,) = emu.events
    assert captured["event"] == "bedrock_completion"
    assert captured["distinct_id"] == "user-1"
    assert captured["properties"]["tokens"] == 12
    assert captured["uuid"] == uuid
    assert captured["api_key"] == KEY
    assert captured["timestamp"] is not None
    assert emu.requests == [CaptureRequest("/batch/", 200, 1, "")]


def test_posthog_gzip(emu: CaptureEmulator) -> None:
    """A gzip-compressed batch from posthog-python is decoded and accepted."""
    client = make_posthog(emu, gzip=True)
    client.capture("first", distinct_id="u")
    client.capture("second", distinct_id="u")
    client.flush()
    client.shutdown()

    assert [e["event"] for e in emu.events] == ["first", "second"]
    assert emu.requests == [CaptureRequest("/batch/", 200, 2, "gzip")]


def test_posthog_ai_lane_endpoint(emu: CaptureEmulator) -> None:
    """capture_ai posts to the AI batch endpoint, which the emulator accepts."""
    client = make_posthog(emu)
    client.capture_ai("$ai_generation", distinct_id="u", properties={"$ai_model": "m"})
    client.flush()
    client.shutdown()

    assert [e["event"] for e in emu.events] == ["$ai_generation"]
    assert emu.requests[0].path == "/i/v0/ai/batch/"


def test_bad_key_gets_401_with_accepted_keys() -> None:
    """A key outside accepted_keys is answered 401 and its events are not recorded."""
    errors: list[Any] = []
    with CaptureEmulator(accepted_keys={KEY}) as emu:
        client = make_posthog(emu, "phc_wrong", on_error=lambda e, batch: errors.append(e))
        client.capture("bedrock_completion", distinct_id="u")
        client.flush()
        client.shutdown()

        assert emu.events == []
        assert emu.requests == [CaptureRequest("/batch/", 401, 1, "")]
    assert [e.status for e in errors] == [401]
    assert errors[0].message == "Project API key invalid."


def test_injected_503_then_success(emu: CaptureEmulator) -> None:
    """After one injected 503, posthog-python's retry is accepted."""
    emu.fail_next(503)
    client = make_posthog(emu)
    client.capture("bedrock_completion", distinct_id="u")
    client.flush()
    client.shutdown()

    assert [r.status for r in emu.requests] == [503, 200]
    assert [e["event"] for e in emu.events] == ["bedrock_completion"]


def test_injected_429_carries_retry_after(emu: CaptureEmulator) -> None:
    """An injected 429 with retry_after sends the Retry-After header, then answers normally."""
    emu.fail_next(429, count=2, retry_after=1.5)
    body = {"api_key": KEY, "batch": [event()]}

    first, second, third = (post(emu, "/batch/", body) for _ in range(3))

    assert (first[0], first[1]["Retry-After"]) == (429, "1.5")
    assert second[0] == 429
    assert third[0:3:2] == (200, {"status": "Ok"})
    assert len(emu.events) == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        ({"api_key": KEY, "batch": [event(distinct_id=None)]}, 400, "missing_distinct_id"),
        ({"api_key": KEY, "batch": [{"distinct_id": "u"}]}, 400, "missing_event_name"),
        ({"api_key": KEY, "batch": []}, 400, "empty_batch"),
        ({"batch": [event()]}, 401, "missing_api_key"),
        ({"api_key": "phx_personal", "batch": [event()]}, 401, "personal_api_key"),
    ],
)
def test_rejections(emu: CaptureEmulator, body: Any, status: int, code: str) -> None:
    """Malformed bodies, incomplete events and bad keys get PostHog's status and code."""
    answered, _, payload = post(emu, "/batch/", body)

    assert (answered, payload["code"]) == (status, code)
    assert emu.events == []
    assert emu.requests[0].status == status


def test_body_over_limit_gets_413() -> None:
    """A batch body over max_body_bytes is answered 413."""
    with CaptureEmulator(max_body_bytes=1000) as emu:
        body = {"api_key": KEY, "batch": [event()] * 20}

        status, _, payload = post(emu, "/batch/", body)

    assert (status, payload["code"]) == (413, "payload_too_large")


def test_event_over_limit_gets_413_but_not_on_ai_endpoint() -> None:
    """An analytics event over max_event_bytes is refused; the AI endpoint takes it."""
    big = event()
    big["properties"]["blob"] = "x" * 2000
    with CaptureEmulator(max_event_bytes=1000) as emu:
        analytics, _, _ = post(emu, "/batch/", {"api_key": KEY, "batch": [big]})
        ai, _, _ = post(emu, "/i/v0/ai/batch/", {"api_key": KEY, "batch": [big]})

    assert (analytics, ai) == (413, 200)


@pytest.mark.parametrize("path", ["/i/v0/e/", "/e/", "/capture/", "/track/", "/e"])
def test_single_event_endpoints(emu: CaptureEmulator, path: str) -> None:
    """Single-event endpoints accept one event carrying its own api_key."""
    status, _, payload = post(emu, path, {**event(), "api_key": KEY})

    assert (status, payload) == (200, {"status": "Ok"})
    assert emu.events[0]["api_key"] == KEY
    assert emu.events[0]["uuid"] == "0190b7c5-0000-7000-8000-000000000001"


def test_deflate_body(emu: CaptureEmulator) -> None:
    """A zlib-compressed body announced as deflate is decoded."""
    raw = json.dumps({"api_key": KEY, "batch": [event()]}).encode("utf-8")

    status, _, _ = post(emu, "/batch/", zlib.compress(raw), {"Content-Encoding": "deflate"})

    assert status == 200
    assert emu.requests[0].content_encoding == "deflate"


def test_corrupt_gzip_gets_400(emu: CaptureEmulator) -> None:
    """A body announced as gzip that is not gzip is answered 400."""
    status, _, payload = post(emu, "/batch/", b"plain", {"Content-Encoding": "gzip"})

    assert (status, payload["code"]) == (400, "invalid_payload")


def test_v1_endpoint_uses_bearer_key_and_answers_results(emu: CaptureEmulator) -> None:
    """The v1 endpoint takes the key from Authorization and answers per-uuid results."""
    body = gzip.compress(json.dumps({"created_at": "now", "batch": [event()]}).encode())
    headers = {"Authorization": f"Bearer {KEY}", "Content-Encoding": "gzip"}

    status, _, payload = post(emu, "/i/v1/analytics/events", body, headers)

    assert status == 200
    assert payload == {"results": {"0190b7c5-0000-7000-8000-000000000001": {"result": "ok"}}}
    assert emu.events[0]["api_key"] == KEY


def test_unknown_path_gets_404(emu: CaptureEmulator) -> None:
    """A path that is not a capture endpoint is answered 404."""
    status, _, _ = post(emu, "/decide/?v=3", {"api_key": KEY})

    assert status == 404


def test_flags_checks_the_project_key() -> None:
    """/flags answers 200 for the accepted project key and 401 for any other, as PostHog does."""
    with CaptureEmulator(accepted_keys={KEY}) as emu:
        ok, _, _ = post(emu, "/flags/?v=2", {"api_key": KEY, "distinct_id": "x"})
        refused, _, _ = post(emu, "/flags/?v=2", {"api_key": "phc_other", "distinct_id": "x"})

    assert (ok, refused) == (200, 401)


def test_wait_for_times_out(emu: CaptureEmulator) -> None:
    """wait_for returns False when too few events arrive before the timeout."""
    assert emu.wait_for(1, timeout=0.05) is False


def test_store_path_appends_json_lines(tmp_path: Path) -> None:
    """Accepted events are appended to store_path, one JSON object per line."""
    store = tmp_path / "events.jsonl"
    with CaptureEmulator(store_path=store) as emu:
        post(emu, "/batch/", {"api_key": KEY, "batch": [event("a"), event("b")]})
        post(emu, "/batch/", {"batch": [event("refused")]})

    lines = [json.loads(line) for line in store.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["a", "b"]
    assert lines[0]["api_key"] == KEY


def test_delay_applies_to_each_request(emu: CaptureEmulator) -> None:
    """With a delay set, a client whose timeout is shorter gets no answer in time."""
    emu.set_delay(0.3)
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=0.05)
    try:
        with pytest.raises(TimeoutError):
            connection.request("POST", "/batch/", b"{}")
            connection.getresponse()
    finally:
        connection.close()


def test_reset_forgets_everything(emu: CaptureEmulator) -> None:
    """reset() clears events, requests and pending failures."""
    post(emu, "/batch/", {"api_key": KEY, "batch": [event()]})
    emu.fail_next(503)

    emu.reset()

    assert (emu.events, emu.requests) == ([], [])
    assert post(emu, "/batch/", {"api_key": KEY, "batch": [event()]})[0] == 200


def test_accepted_socket_has_nodelay(emu: CaptureEmulator) -> None:
    """The connection accepted from the posthog client has TCP_NODELAY set."""
    client = make_posthog(emu)
    client.capture("bedrock_completion", distinct_id="u")
    client.flush()
    client.shutdown()

    assert emu.accepted_nodelay == [True]


def test_invalid_limits_raise() -> None:
    """A non-positive size limit is refused at construction, naming the parameter."""
    with pytest.raises(ValueError, match="max_body_bytes"):
        CaptureEmulator(max_body_bytes=0)


def test_chunked_request_body(emu: CaptureEmulator) -> None:
    """A body sent with chunked transfer encoding is read whole."""
    raw = json.dumps({"api_key": KEY, "batch": [event()]}).encode("utf-8")
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        connection.request("POST", "/batch/", iter([raw[:10], raw[10:]]), encode_chunked=True)
        status = connection.getresponse().status
    finally:
        connection.close()

    assert status == 200
    assert len(emu.events) == 1
