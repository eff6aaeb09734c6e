"""The intake: received spans become the same PostHog events as in-process, once per call."""

from __future__ import annotations

import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import pipeline
from collector.otlp import JSON, decode_traces
from collector.pipeline import Accepted, Intake
from otel_bedrock.config import load_settings
from otel_bedrock.delivery import PostHogDelivery
from otel_bedrock.delivery.transport import to_wire
from otel_bedrock.events import CaptureEvent
from otel_bedrock.exporter import PostHogSpanExporter
from otel_bedrock.testing import CapturedEvent, CaptureEmulator, stream, validation_error
from otel_bedrock.testing._server import free_port
from tests.collector.builders import LLAMA, bedrock_attributes, log, logs, span, traces
from tests.collector.conftest import BotocoreSpans
from tests.conftest import TEST_KEY, eventually
from tests.test_pipeline import LLAMA_BODY, MESSAGES, converse_stream_events, llama_reply

NOVA = "us.amazon.nova-micro-v1:0"
USAGE = {"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3}


def delivered(intake: Intake, capture: CaptureEmulator) -> list[CapturedEvent]:
    """Every event PostHog received, after the intake's delivery has flushed."""
    assert intake.delivery.flush(5)
    return list(capture.events)


def wire(event: CapturedEvent) -> dict[str, Any]:
    """An event as PostHog received it, without the key it came with."""
    return {key: value for key, value in event.items() if key != "api_key"}


def sent(event: CaptureEvent) -> dict[str, Any]:
    """An event as delivery sends it, in the fields PostHog keeps."""
    return {key: value for key, value in to_wire(event).items() if key != "type"}


def intake_counts(intake: Intake) -> dict[str, int]:
    """The intake's own counters (without the delivery's)."""
    names = ("received", "converted", "skipped", "duplicates", "rejected", "failed", "pending")
    return {name: intake.counts()[name] for name in names}


def test_upstream_botocore_spans_give_the_same_events_as_in_process(
    make_intake: Any, botocore_spans: BotocoreSpans, capture: CaptureEmulator
) -> None:
    """For real upstream spans, the collector's events equal the in-process exporter's."""
    bedrock, client = botocore_spans.bedrock, botocore_spans.client
    bedrock.enqueue(llama_reply(), stream(converse_stream_events()), validation_error("Bad."))
    client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)
    with botocore_spans.tracer.start_as_current_span("POST /recipe"):
        for _ in client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"]:
            pass
    with pytest.raises(Exception, match="Bad."):
        client.converse(modelId=NOVA, messages=MESSAGES)
    spans = botocore_spans.finished()
    settings = load_settings(api_key=TEST_KEY, host=capture.url, event_schema="both")
    unused = PostHogDelivery(TEST_KEY, capture.url, spool_path=None)
    in_process = PostHogSpanExporter(settings=settings, delivery=unused)
    expected = {event.uuid: sent(event) for item in spans for event in in_process.events_for(item)}
    intake = make_intake(event_schema="both")

    accepted = intake.accept_traces(encode_spans(spans))

    assert accepted == Accepted()
    received = {event["uuid"]: wire(event) for event in delivered(intake, capture)}
    assert len(received) == 6
    for uuid, event in expected.items():
        assert received[uuid] == event
    assert intake_counts(intake) == {
        "received": 4,
        "converted": 3,
        "skipped": 1,
        "duplicates": 0,
        "rejected": 0,
        "failed": 0,
        "pending": 0,
    }


def test_event_values_from_an_upstream_span(
    make_intake: Any, botocore_spans: BotocoreSpans, capture: CaptureEmulator
) -> None:
    """Tokens and cost of a Llama 3.1 8B call: 12 in, 3 out, at $0.22 per million each."""
    botocore_spans.bedrock.enqueue(llama_reply(tokens=(12, 3)))
    botocore_spans.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)
    intake = make_intake()

    intake.accept_traces(encode_spans(botocore_spans.finished()))

    [event] = delivered(intake, capture)
    properties = event["properties"]
    assert event["event"] == "bedrock_completion"
    assert properties["model"] == LLAMA
    assert properties["prompt_token_count"] == 12
    assert properties["generation_token_count"] == 3
    assert properties["input_cost_in_dollars"] == pytest.approx(12 * 0.22e-6, abs=1e-12)
    assert properties["output_cost_in_dollars"] == pytest.approx(3 * 0.22e-6, abs=1e-12)
    assert properties["total_cost_in_dollars"] == pytest.approx(15 * 0.22e-6, abs=1e-12)
    assert properties["operation"] == "InvokeModel"


def test_other_spans_are_skipped_and_bad_ids_rejected(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Non-Bedrock spans make no event; spans with invalid ids are refused as partial success."""
    intake = make_intake()
    s3 = span(0x11, {"rpc.service": "S3", "rpc.method": "GetObject"})
    server = span(0x12, {"http.route": "/recipe"}, kind=2)
    bad = span(0x13, bedrock_attributes(**USAGE))
    bad.trace_id = bytes(16)

    accepted = intake.accept_traces(traces(s3, server, bad))

    assert accepted == Accepted(1, "1 span(s) with an invalid trace or span id")
    assert delivered(intake, capture) == []
    assert intake_counts(intake)["received"] == 3
    assert intake_counts(intake)["skipped"] == 2
    assert intake_counts(intake)["rejected"] == 1


def test_nested_spans_in_one_request_make_one_event(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Two instrumentations' spans for one call: the inner span's facts win, the outer fills in."""
    intake = make_intake()
    outer = span(
        0x21,
        bedrock_attributes(
            **{"cloud.region": "eu-west-1", "user.id": "u-outer", "gen_ai.usage.input_tokens": 99}
        ),
        parent=0x20,
        duration_ms=300,
    )
    inner = span(0x22, bedrock_attributes(**USAGE), parent=0x21, duration_ms=250)
    app = span(0x20, {"http.route": "/recipe"}, kind=2)

    intake.accept_traces(traces(app, inner, outer))

    [event] = delivered(intake, capture)
    properties = event["properties"]
    assert properties["span_id"] == "0000000000000022"
    assert properties["aws_region"] == "us-east-1"
    assert event["distinct_id"] == "u-outer"
    assert properties["prompt_token_count"] == 12
    assert properties["response_time_in_ms"] == 250
    assert intake_counts(intake)["duplicates"] == 1
    assert intake_counts(intake)["converted"] == 1


def test_nested_spans_in_later_requests_make_one_event_with_both_facts(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Two nested spans of one call in separate requests, in either order, within the merge
    wait: one event, the inner span's, with what only the outer span knew filled in."""
    intake = make_intake(merge_wait=0.3)
    cache = {"gen_ai.usage.cache_creation.input_tokens": 1000}
    inner = span(0x32, bedrock_attributes(**USAGE), parent=0x31)
    outer = span(0x31, bedrock_attributes(**USAGE, **cache), parent=0x30)
    other_inner = span(0x42, bedrock_attributes(**USAGE), parent=0x41)
    other_outer = span(0x41, bedrock_attributes(**USAGE, **cache), parent=0x40)

    intake.accept_traces(traces(inner))
    intake.accept_traces(traces(outer))
    intake.accept_traces(traces(other_outer))
    intake.accept_traces(traces(other_inner))

    assert eventually(lambda: intake_counts(intake)["converted"] == 2)
    events = delivered(intake, capture)
    assert sorted(event["properties"]["span_id"] for event in events) == [
        "0000000000000032",
        "0000000000000042",
    ]
    assert [event["properties"]["cache_write_token_count"] for event in events] == [1000, 1000]
    assert intake_counts(intake)["duplicates"] == 2


def test_nested_span_after_the_merge_wait_is_a_duplicate(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Without a merge wait, whichever of two nested spans comes first makes the event; the
    other is counted as a duplicate."""
    intake = make_intake()
    inner = span(0x32, bedrock_attributes(**USAGE), parent=0x31)
    outer = span(0x31, bedrock_attributes(**USAGE), parent=0x30)
    other_inner = span(0x42, bedrock_attributes(**USAGE), parent=0x41)
    other_outer = span(0x41, bedrock_attributes(**USAGE), parent=0x40)

    intake.accept_traces(traces(inner))
    intake.accept_traces(traces(outer))
    intake.accept_traces(traces(other_outer))
    intake.accept_traces(traces(other_inner))

    events = delivered(intake, capture)
    assert sorted(event["properties"]["span_id"] for event in events) == [
        "0000000000000032",
        "0000000000000041",
    ]
    assert intake_counts(intake)["duplicates"] == 2


def test_a_span_sent_twice_makes_one_event(make_intake: Any, capture: CaptureEmulator) -> None:
    """A client that re-sends a request after a lost answer does not double the call."""
    intake = make_intake()
    request = traces(span(0x51, bedrock_attributes(**USAGE)))

    intake.accept_traces(request)
    intake.accept_traces(request)

    assert len(delivered(intake, capture)) == 1
    assert intake_counts(intake)["duplicates"] == 1


def test_separate_calls_under_one_parent_are_separate_events(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Two Bedrock calls made by one request handler are two events, not duplicates."""
    intake = make_intake()
    first = span(0x61, bedrock_attributes(**USAGE), parent=0x60)
    second = span(0x62, bedrock_attributes(**USAGE), parent=0x60)

    intake.accept_traces(traces(first))
    intake.accept_traces(traces(second, span(0x60, {"http.route": "/recipe"})))

    assert len(delivered(intake, capture)) == 2
    assert intake_counts(intake)["duplicates"] == 0


def user_message(span_id: int, text: str) -> Any:
    """Upstream's content record for a user message."""
    return log({"content": [{"text": text}]}, span_id=span_id, event_name="gen_ai.user.message")


def choice(span_id: int, text: str) -> Any:
    """Upstream's content record for the model's answer."""
    return log(
        {"index": 0, "finish_reason": "stop", "message": {"content": [{"text": text}]}},
        span_id=span_id,
        event_name="gen_ai.choice",
    )


def test_content_records_after_the_span_are_joined(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """With capture on, a span waits for its content records and the event carries them."""
    intake = make_intake(content_wait=5.0, capture_content=True)

    intake.accept_traces(traces(span(0x71, bedrock_attributes(**USAGE))))
    assert intake_counts(intake)["pending"] == 1
    intake.accept_logs(logs(user_message(0x71, "Eggs?")))
    assert intake_counts(intake)["pending"] == 1
    intake.accept_logs(logs(choice(0x71, "Omelette.")))
    intake.shutdown(2.0)

    [event] = list(capture.events)
    assert event["properties"]["prompt"] == "Eggs?"
    assert event["properties"]["generation"] == "Omelette."
    assert intake.counts()["logs_joined"] == 2


def test_content_records_before_the_span_need_no_wait(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Records that come first are kept; a span whose content is complete converts at once."""
    intake = make_intake(content_wait=30.0, capture_content=True, event_schema="ai")
    intake.accept_logs(
        logs(
            choice(0x81, "Omelette."),
            log({"content": "Be brief."}, span_id=0x81, event_name="gen_ai.system.message"),
            user_message(0x81, "Eggs?"),
        )
    )

    intake.accept_traces(traces(span(0x81, bedrock_attributes(**USAGE))))

    assert intake_counts(intake)["pending"] == 0
    [event] = delivered(intake, capture)
    assert event["properties"]["$ai_input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Eggs?"},
    ]
    assert event["properties"]["$ai_output_choices"] == [
        {"role": "assistant", "content": "Omelette."}
    ]


def test_without_content_the_span_goes_after_the_wait(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """With capture on and no records, the event leaves once content_wait has passed."""
    intake = make_intake(content_wait=0.2, capture_content=True)
    started = time.monotonic()

    intake.accept_traces(traces(span(0x91, bedrock_attributes(**USAGE))))

    assert capture.wait_for(1, timeout=5)
    assert time.monotonic() - started >= 0.2
    assert "prompt" not in capture.events[0]["properties"]
    assert intake_counts(intake)["pending"] == 0


def test_with_capture_off_nothing_waits_and_content_is_dropped(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Capture off: records are not kept and the span converts at once, without content."""
    intake = make_intake(content_wait=30.0)

    intake.accept_logs(logs(user_message(0xA1, "Eggs?"), choice(0xA1, "Omelette.")))
    intake.accept_traces(traces(span(0xA1, bedrock_attributes(**USAGE))))

    assert intake_counts(intake)["pending"] == 0
    [event] = delivered(intake, capture)
    assert "prompt" not in event["properties"]
    assert "generation" not in event["properties"]
    assert intake.counts()["logs_received"] == 2


def test_joined_content_is_capped(make_intake: Any, capture: CaptureEmulator) -> None:
    """Content from records is cut to max_content_chars like in-process content."""
    intake = make_intake(capture_content=True, max_content_chars=4)
    intake.accept_logs(logs(user_message(0xB1, "Eggs and spinach?"), choice(0xB1, "Omelette.")))

    intake.accept_traces(traces(span(0xB1, bedrock_attributes(**USAGE))))

    [event] = delivered(intake, capture)
    assert event["properties"]["prompt"] == "Eggs"
    assert event["properties"]["generation"] == "Omel"
    assert event["properties"]["content_truncated"] is True


def test_content_of_nested_spans_joins_the_one_event(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Records that name either of two nested spans end up in the call's one event."""
    intake = make_intake(content_wait=5.0, capture_content=True)
    intake.accept_traces(traces(span(0xC2, bedrock_attributes(**USAGE), parent=0xC1)))
    intake.accept_logs(logs(user_message(0xC1, "Eggs?")))
    intake.accept_traces(traces(span(0xC1, bedrock_attributes(**USAGE))))
    intake.accept_logs(logs(choice(0xC2, "Omelette.")))

    intake.shutdown(2.0)

    [event] = list(capture.events)
    assert event["properties"]["span_id"] == "00000000000000c2"
    assert (event["properties"]["prompt"], event["properties"]["generation"]) == (
        "Eggs?",
        "Omelette.",
    )
    assert intake_counts(intake)["duplicates"] == 1


def test_shutdown_converts_waiting_spans_at_once(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Shutdown does not wait out content_wait: waiting spans are converted and delivered."""
    intake = make_intake(content_wait=30.0, capture_content=True)
    intake.accept_traces(traces(span(0xD1, bedrock_attributes(**USAGE))))
    started = time.monotonic()

    intake.shutdown(2.0)

    assert time.monotonic() - started < 2.0
    assert len(capture.events) == 1
    assert intake.ready() is False


def test_real_upstream_content_records_are_joined(
    make_intake: Any,
    botocore_spans: BotocoreSpans,
    capture: CaptureEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Upstream's own content log records, encoded by the SDK, give the event its text."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    botocore_spans.bedrock.enqueue(llama_reply())
    botocore_spans.client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)
    intake = make_intake(capture_content=True, event_schema="ai")

    intake.accept_logs(encode_logs(botocore_spans.finished_logs()))
    intake.accept_traces(encode_spans(botocore_spans.finished()))

    [event] = delivered(intake, capture)
    assert event["properties"]["$ai_input"] == [{"role": "user", "content": "Eggs and spinach?"}]
    assert event["properties"]["$ai_output_choices"] == [
        {"role": "assistant", "content": "Omelette."}
    ]


def test_refusal_when_posthog_fails_and_there_is_no_room(
    make_intake: Any, unused_port: int
) -> None:
    """PostHog down with the memory queue full: refuse, asking to come back after the backoff."""
    slow = {"max_queue": 2, "base_backoff": 30, "max_backoff": 30}
    intake = make_intake(posthog_url=f"http://127.0.0.1:{unused_port}", delivery=slow)
    assert (intake.refusal(), intake.ready()) == (None, True)

    intake.accept_traces(traces(span(0xF1, bedrock_attributes(**USAGE))))
    assert eventually(lambda: intake.delivery.pressure().failing)
    assert intake.refusal() is None
    intake.accept_traces(traces(span(0xF2, bedrock_attributes(**USAGE))))
    intake.accept_traces(traces(span(0xF3, bedrock_attributes(**USAGE))))

    refusal = intake.refusal()
    assert refusal is not None and 20 <= refusal <= 30
    assert intake.ready() is False
    intake.shutdown(0.1)
    assert intake.counts()["dropped"] == 3


def test_counts_include_the_delivery(make_intake: Any, capture: CaptureEmulator) -> None:
    """counts() adds the delivery's outcomes to the intake's own counters."""
    intake = make_intake()
    intake.accept_traces(traces(span(0xE1, bedrock_attributes(**USAGE))))
    delivered(intake, capture)

    counts = intake.counts()

    assert counts["converted"] == 1
    assert counts["sent"] == 1
    assert {"retried", "spooled", "evicted", "dropped", "logs_received"} <= counts.keys()


RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "otlp"


def recorded(folder: str, name: str) -> ExportTraceServiceRequest:
    """A recorded export request of one call (tests/data/otlp)."""
    return decode_traces((RECORDINGS / folder / f"{name}.traces.json").read_bytes(), JSON)


def nest(outer: ExportTraceServiceRequest, inner: ExportTraceServiceRequest) -> None:
    """Make the single span of ``inner`` a child of the single span of ``outer``, as when two
    instrumentations trace one call in one process."""
    [outer_span] = outer.resource_spans[0].scope_spans[0].spans
    [inner_span] = inner.resource_spans[0].scope_spans[0].spans
    inner_span.trace_id = outer_span.trace_id
    inner_span.parent_span_id = outer_span.span_id


def test_openllmetry_around_botocore_is_one_call_with_both_facts(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """OpenLLMetry's span around upstream botocore's for one Claude call gives one event:
    botocore's ids and counts, and the cache write only OpenLLMetry recorded.

    Haiku 3.5 at $0.80 in, $4 out, $1 cache write per million tokens:
    4 x 0.8 + 50 x 4 + 18131 x 1 = 18334.2 micro-dollars.
    """
    outer, inner = recorded("openllmetry", "invoke_claude"), recorded("botocore", "invoke_claude")
    nest(outer, inner)
    [inner_span] = inner.resource_spans[0].scope_spans[0].spans
    outer.resource_spans.extend(inner.resource_spans)
    intake = make_intake()

    intake.accept_traces(outer)

    [event] = delivered(intake, capture)
    properties = event["properties"]
    assert properties["span_id"] == inner_span.span_id.hex()
    assert event["distinct_id"] == "user-42"
    assert (properties["prompt_token_count"], properties["generation_token_count"]) == (4, 50)
    assert properties["cache_write_token_count"] == 18131
    assert properties["total_cost_in_dollars"] == pytest.approx(0.0183342, abs=1e-12)
    assert intake_counts(intake)["duplicates"] == 1


def test_recorded_spans_of_two_instrumentations_in_two_requests_count_once(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Nested spans of one call exported in separate requests still make one event."""
    outer, inner = recorded("openinference", "converse"), recorded("botocore", "converse")
    nest(outer, inner)
    intake = make_intake()

    intake.accept_traces(inner)
    intake.accept_traces(outer)

    assert len(delivered(intake, capture)) == 1
    assert intake_counts(intake)["duplicates"] == 1


def test_content_on_the_span_needs_no_wait(make_intake: Any, capture: CaptureEmulator) -> None:
    """With capture on, a span that carries its own prompt and reply converts at once."""
    intake = make_intake(content_wait=30.0, capture_content=True)

    intake.accept_traces(recorded("genai-bedrock", "converse"))

    assert intake_counts(intake)["pending"] == 0
    [event] = delivered(intake, capture)
    assert event["properties"]["generation"]


def test_concurrent_requests_count_each_call_once(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Threads sending the inner and outer spans of 200 calls at once: 200 events, 200 dups."""
    intake = make_intake()
    requests = []
    for number in range(200):
        outer_id, inner_id = 0x1000 + 2 * number, 0x1001 + 2 * number
        requests.append(traces(span(outer_id, bedrock_attributes(**USAGE), parent=0x999)))
        requests.append(traces(span(inner_id, bedrock_attributes(**USAGE), parent=outer_id)))
    random.Random(7).shuffle(requests)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(intake.accept_traces, requests))

    assert len({event["uuid"] for event in delivered(intake, capture)}) == 200
    assert capture.wait_for(200) and len(capture.events) == 200
    assert intake_counts(intake)["converted"] == 200
    assert intake_counts(intake)["duplicates"] == 200


def test_records_past_the_content_limit_are_not_kept(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Once a span holds max_content_chars of prompt, more prompt records are dropped, flagged."""
    intake = make_intake(capture_content=True, max_content_chars=10)
    records = [user_message(0x2A1, f"message {number}") for number in range(50)]
    intake.accept_logs(logs(*records, choice(0x2A1, "Omelette.")))

    intake.accept_traces(traces(span(0x2A1, bedrock_attributes(**USAGE))))

    [event] = delivered(intake, capture)
    assert event["properties"]["prompt"] == "message 0\nm"
    assert event["properties"]["generation"] == "Omelette."
    assert event["properties"]["content_truncated"] is True
    assert intake.counts()["logs_joined"] == 3


def test_early_records_are_bounded_by_characters(
    make_intake: Any, capture: CaptureEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the character budget for spans not yet seen, the oldest span's records go first;
    each record counts PIECE_CHARS besides its text."""
    monkeypatch.setattr(pipeline, "EARLY_CHARS", 12 + 2 * pipeline.PIECE_CHARS)
    intake = make_intake(content_wait=0.05, capture_content=True)
    intake.accept_logs(logs(user_message(0x2B1, "first"), user_message(0x2B2, "second")))
    intake.accept_logs(logs(user_message(0x2B3, "third")))

    intake.accept_traces(
        traces(*(span(key, bedrock_attributes(**USAGE)) for key in (0x2B1, 0x2B3)))
    )

    assert capture.wait_for(2, timeout=5)
    prompts = {
        event["properties"]["span_id"]: event["properties"].get("prompt")
        for event in capture.events
    }
    assert prompts == {"00000000000002b1": None, "00000000000002b3": "third"}


def test_many_tiny_early_records_are_bounded_too(
    make_intake: Any, capture: CaptureEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records of one character each still fill the budget: beyond it, the oldest go."""
    monkeypatch.setattr(pipeline, "EARLY_CHARS", 3 * (pipeline.PIECE_CHARS + 1))
    intake = make_intake(content_wait=0.05, capture_content=True)
    for key in range(0x2D1, 0x2D6):
        intake.accept_logs(logs(user_message(key, "x")))

    intake.accept_traces(
        traces(*(span(key, bedrock_attributes(**USAGE)) for key in range(0x2D1, 0x2D6)))
    )

    assert capture.wait_for(5, timeout=5)
    kept = sorted(
        event["properties"]["span_id"][-3:]
        for event in capture.events
        if event["properties"].get("prompt") == "x"
    )
    assert kept == ["2d3", "2d4", "2d5"]


def test_identity_keys_name_the_person_in_the_collector(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """The identity_keys setting applies to received spans as it does in-process."""
    intake = make_intake(identity_keys="tenant.user")

    intake.accept_traces(traces(span(0x2C1, bedrock_attributes(**USAGE, **{"tenant.user": "t-9"}))))

    [event] = delivered(intake, capture)
    assert event["distinct_id"] == "t-9"


def test_identity_keys_name_the_person_on_the_enclosing_span(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """A request span that names its user under a configured key names the call inside it."""
    intake = make_intake(identity_keys="tenant.user")
    server = span(0x2C5, {"http.route": "/recipe", "tenant.user": "t-7"}, kind=2)

    intake.accept_traces(traces(server, span(0x2C6, bedrock_attributes(**USAGE), parent=0x2C5)))

    [event] = delivered(intake, capture)
    assert event["distinct_id"] == "t-7"


def test_nested_spans_naming_different_operations_are_one_call(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """An outer span that cannot tell a stream from a plain call still nests as the same call."""
    intake = make_intake()
    outer = span(0x2D1, bedrock_attributes("InvokeModel", **USAGE))
    inner = span(0x2D2, bedrock_attributes("InvokeModelWithResponseStream", **USAGE), parent=0x2D1)

    intake.accept_traces(traces(outer, inner))

    [event] = delivered(intake, capture)
    assert event["properties"]["operation"] == "InvokeModelWithResponseStream"
    assert intake_counts(intake)["duplicates"] == 1


def test_the_person_on_the_enclosing_span_names_the_call(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """A request span with ``user.id`` encloses a Bedrock span that names nobody: the event is
    that user's, as in-process, whether the request span comes in the same export request or
    a later one within the merge wait; a person on the Bedrock span itself wins."""
    intake = make_intake(merge_wait=0.3)
    server = span(0x51, {"http.route": "/recipe", "user.id": "alice@example.com"}, kind=2)
    call = span(0x52, bedrock_attributes(**USAGE), parent=0x51)
    later_call = span(0x62, bedrock_attributes(**USAGE), parent=0x61)
    later_server = span(0x61, {"enduser.id": "bob@example.com"}, kind=2)
    own = span(0x72, bedrock_attributes(**USAGE, **{"user.id": "carol"}), parent=0x71)
    own_server = span(0x71, {"user.id": "dave"}, kind=2)

    intake.accept_traces(traces(call, server, own, own_server))
    intake.accept_traces(traces(later_call))
    intake.accept_traces(traces(later_server, scope="opentelemetry.instrumentation.flask"))

    assert eventually(lambda: intake_counts(intake)["converted"] == 3)
    people = {
        event["properties"]["span_id"]: event["distinct_id"] for event in delivered(intake, capture)
    }
    assert people == {
        "0000000000000052": "alice@example.com",
        "0000000000000062": "bob@example.com",
        "0000000000000072": "carol",
    }


def test_an_enclosing_span_after_the_conversion_names_nobody(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """The enclosing span must come before the call is converted: later, the event is
    already anonymous (a known limit)."""
    intake = make_intake()

    intake.accept_traces(traces(span(0x82, bedrock_attributes(**USAGE), parent=0x81)))
    intake.accept_traces(traces(span(0x81, {"user.id": "erin"}, kind=2)))

    [event] = delivered(intake, capture)
    assert event["properties"]["$process_person_profile"] is False


def _attribute_keys_read() -> list[str]:
    """Every dotted attribute key written in the dialects and in our attribute names."""
    root = Path(pipeline.__file__).resolve().parents[1]
    sources = (root / "collector" / "dialects.py", root / "otel_bedrock" / "attributes.py")
    found = set()
    for source in sources:
        found.update(re.findall(r'"([a-z_]+(?:\.[A-Za-z0-9_]+)+)"', source.read_text()))

    return sorted(key for key in found if not key.endswith(".py"))


# Values of every type OTLP can carry, and strings that look like counts or ids but are not.
ODD_VALUES: tuple[Any, ...] = (
    None,
    -1,
    2**63 - 1,
    1.5,
    float("nan"),
    float("inf"),
    True,
    "",
    "²",
    "١٢",
    "1e400",
    "x" * 10_000,
    b"\x00\xff",
    (1, "a"),
    (),
    {"a": {"b": (1,)}},
    {},
    "null",
    "{}",
    '[{"role": 1}]',
    "[" * 50,
    "Converse",
    "Bedrock Runtime",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/x",
)
DIALECT_SCOPES = (
    "opentelemetry.instrumentation.botocore.bedrock-runtime",
    "opentelemetry.instrumentation.genai.bedrock",
    "opentelemetry.instrumentation.bedrock",
    "openinference.instrumentation.bedrock",
    "@opentelemetry/instrumentation-aws-sdk",
)


def test_spans_with_odd_values_under_known_keys_all_become_events_or_are_skipped(
    make_intake: Any, capture: CaptureEmulator
) -> None:
    """Bedrock spans of every dialect with odd values under the keys the dialects read: each
    becomes an event or is skipped as not a Bedrock call; none fails, none is lost."""
    keys = _attribute_keys_read()
    chance = random.Random(11)
    intake = make_intake()
    requests = []
    for number in range(400):
        attributes: dict[str, Any] = {
            **bedrock_attributes(chance.choice(("Converse", "InvokeModel", "ConverseStream"))),
            "gen_ai.system": "aws.bedrock",
            "gen_ai.operation.name": "chat",
        }
        for key in chance.sample(keys, 8):
            attributes[key] = chance.choice(ODD_VALUES)
        requests.append(
            traces(span(0x7000 + number, attributes), scope=chance.choice(DIALECT_SCOPES))
        )

    answers = [intake.accept_traces(request) for request in requests]

    counts = intake_counts(intake)
    assert answers == [Accepted()] * 400
    assert counts["failed"] == 0
    assert counts["converted"] + counts["skipped"] == 400
    assert counts["converted"] > 200
    assert len(delivered(intake, capture)) == counts["converted"]


def test_a_span_that_cannot_be_read_is_a_partial_success(
    make_intake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span whose reading fails is counted failed and reported back as rejected, so that
    the sender's log says so; the other spans of the request are converted."""
    real = pipeline.dialects.canonical

    def fails_for_one(received: Any, **options: Any) -> Any:
        if received.context.span_id == 0x7F01:
            raise ValueError("unreadable")
        return real(received, **options)

    monkeypatch.setattr(pipeline.dialects, "canonical", fails_for_one)
    intake = make_intake()

    answer = intake.accept_traces(
        traces(span(0x7F01, bedrock_attributes(**USAGE)), span(0x7F02, bedrock_attributes(**USAGE)))
    )

    assert answer == Accepted(1, "1 span(s) whose attributes could not be read as a Bedrock call")
    assert intake_counts(intake)["failed"] == 1
    assert intake_counts(intake)["converted"] == 1


def test_calls_waiting_to_be_converted_count_against_the_room_left(make_intake: Any) -> None:
    """While PostHog fails, calls held for the merge wait will each be an event that delivery
    must keep: once they fill the room it has left, new requests are refused, before
    delivery itself is full."""
    dead = f"http://127.0.0.1:{free_port()}"
    intake = make_intake(merge_wait=30, delivery={"max_queue": 5}, posthog_url=dead)
    intake.delivery.send(
        CaptureEvent("bedrock_completion", "user-1", {}, str(uuid4()), datetime.now(UTC))
    )
    assert eventually(lambda: intake.delivery.pressure().failing)
    assert intake.delivery.pressure().room == 4  # the failed event waits in memory

    for number in range(3):
        intake.accept_traces(traces(span(0x7A00 + number, bedrock_attributes(**USAGE))))
    three = intake.refusal()
    intake.accept_traces(traces(span(0x7A10, bedrock_attributes(**USAGE))))

    assert three is None
    assert intake.delivery.pressure().full is False
    assert intake.refusal() is not None
    assert intake_counts(intake)["pending"] == 4


def test_a_nest_thousands_deep_is_cut_into_calls(make_intake: Any) -> None:
    """Bedrock spans each the parent of the next, 4,000 deep, are not one call: they are cut
    into calls of MAX_NESTED spans, the rest counted as duplicates (so that no call gathers
    thousands of spans, whose folding grew with the square of their number)."""
    depth = 4_000
    chain = [
        span(0x9000 + number, bedrock_attributes(), parent=0x9000 + number - 1 if number else None)
        for number in range(depth)
    ]
    intake = make_intake()

    intake.accept_traces(traces(*chain))

    counts = intake_counts(intake)
    assert counts["converted"] == depth // pipeline.MAX_NESTED
    assert counts["duplicates"] == depth - depth // pipeline.MAX_NESTED
