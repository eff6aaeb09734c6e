"""``otel-bedrock replay`` over the shared cases and real recordings.

Expected values come from each file itself: the case's ``expected`` block, or what the recorded
response shows (its token headers, its ``usage`` object, or the usage at the end of its event
stream, decoded with botocore's own event-stream decoder).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer

from otel_bedrock.replay import ReplayedEvent, replay
from tests.conftest import load_exchange, shared_files, shared_path

OUR_CASES = Path(__file__).resolve().parent / "data" / "cases"


@cache
def replayed(folder: Path) -> dict[str, list[ReplayedEvent]]:
    """Replay a whole folder once; events grouped by source file name."""
    grouped: dict[str, list[ReplayedEvent]] = {}
    for event in replay([str(folder)]):
        grouped.setdefault(Path(event.source).name, []).append(event)
    return grouped


def case_files() -> list[Path]:
    """The shared cases and ours."""
    return shared_files("cases") + sorted(OUR_CASES.glob("*.json"))


@pytest.mark.parametrize("path", case_files(), ids=lambda path: path.name)
def test_case_gives_the_expected_event(path: Path) -> None:
    """Each case produces exactly the event its expected block describes."""
    case = load_exchange(path)
    expected = case["expected"]
    events = replayed(path.parent).get(path.name, [])

    matching = [event for event in events if event.event == expected["event"]]

    assert len(matching) == expected.get("count", 1), [event.event for event in events]
    props = matching[0].properties
    for key, want in expected.get("properties", {}).items():
        if isinstance(want, float):
            assert props[key] == pytest.approx(want, abs=1e-9), key
        else:
            assert props[key] == want, key
    for key in expected.get("absent", []):
        assert key not in props, key


def _stream_messages(recording: dict[str, Any]) -> list[tuple[dict[str, Any], Any]]:
    """Headers and decoded JSON payload of each message in a recorded event stream."""
    buffer = EventStreamBuffer()
    buffer.add_data(base64.b64decode(recording["response"]["body_base64"]))
    messages = []
    for message in buffer:
        payload = json.loads(message.payload) if message.payload else {}
        messages.append((message.headers, payload))
    return messages


def recorded_truth(recording: dict[str, Any]) -> dict[str, Any]:
    """The event kind, tokens and stop reason a recorded response shows, read by hand."""
    response = recording["response"]
    if response["status"] >= 400:
        return {"event": "bedrock_error"}
    truth: dict[str, Any] = {"event": "bedrock_completion"}
    operation = recording["operation"]
    headers = response.get("headers", {})
    if operation == "InvokeModel":
        truth["prompt_token_count"] = int(headers["x-amzn-bedrock-input-token-count"])
        truth["generation_token_count"] = int(headers["x-amzn-bedrock-output-token-count"])
        for header, key in (
            ("x-amzn-bedrock-cache-read-input-token-count", "cache_read_token_count"),
            ("x-amzn-bedrock-cache-write-input-token-count", "cache_write_token_count"),
        ):
            if header in headers:
                truth[key] = int(headers[header])
    elif operation == "Converse":
        body = json.loads(response["body"])
        usage = body["usage"]
        truth["prompt_token_count"] = usage["inputTokens"]
        truth["generation_token_count"] = usage["outputTokens"]
        truth["stop_reason"] = body["stopReason"]
        if "cacheReadInputTokens" in usage:
            truth["cache_read_token_count"] = usage["cacheReadInputTokens"]
        if "cacheWriteInputTokens" in usage:
            truth["cache_write_token_count"] = usage["cacheWriteInputTokens"]
    elif operation == "ConverseStream":
        for headers_, payload in _stream_messages(recording):
            if headers_.get(":message-type") == "exception":
                return {"event": "bedrock_error"}
            if headers_.get(":event-type") == "messageStop":
                truth["stop_reason"] = payload["stopReason"]
            if headers_.get(":event-type") == "metadata":
                truth["prompt_token_count"] = payload["usage"]["inputTokens"]
                truth["generation_token_count"] = payload["usage"]["outputTokens"]
    elif operation == "InvokeModelWithResponseStream":
        for headers_, payload in _stream_messages(recording):
            if headers_.get(":message-type") == "exception":
                return {"event": "bedrock_error"}
            chunk = json.loads(base64.b64decode(payload["bytes"]))
            metrics = chunk.get("amazon-bedrock-invocationMetrics")
            if metrics:
                truth["prompt_token_count"] = metrics["inputTokenCount"]
                truth["generation_token_count"] = metrics["outputTokenCount"]
    return truth


@pytest.mark.parametrize("path", shared_files("recordings"), ids=lambda path: path.name)
def test_recording_replays_to_what_the_response_shows(path: Path) -> None:
    """Each real recording gives the event kind, tokens and stop reason its response shows."""
    recording = load_exchange(path)
    events = replayed(path.parent).get(path.name, [])
    if recording["operation"] == "CountTokens":
        assert events == []
        return
    truth = recorded_truth(recording)

    assert [event.event for event in events] == [truth.pop("event")]
    props = events[0].properties
    assert {key: props.get(key) for key in truth} == truth


def test_replay_command_prints_one_json_line_per_event() -> None:
    """The CLI prints each event as a JSON line naming its source file."""
    case = shared_path("cases", "titan-invoke-tokens.json")

    done = subprocess.run(
        [sys.executable, "-m", "otel_bedrock.cli", "replay", str(case)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(line["source"], line["event"]) for line in lines] == [
        (str(case), "bedrock_completion")
    ]
    assert lines[0]["properties"]["prompt_token_count"] == 5


def test_example_exchanges_replay_to_hand_computed_events() -> None:
    """The README's first command gives these events; costs are worked out by hand below."""
    folder = Path(__file__).resolve().parents[1] / "examples" / "exchanges"
    events = {Path(event.source).name: event for event in replay([str(folder)])}

    llama = events["llama-invoke.json"].properties
    assert (llama["prompt_token_count"], llama["generation_token_count"]) == (19, 61)
    assert llama["total_cost_in_dollars"] == pytest.approx(80 * 0.22e-6, abs=1e-12)
    claude = events["claude-converse-cache.json"].properties
    # Claude 3.5 Haiku: $0.80 input, $0.08 cache read, $4.00 output per million tokens.
    assert claude["input_cost_in_dollars"] == pytest.approx(24 * 0.8e-6 + 1200 * 0.08e-6)
    assert claude["total_cost_in_dollars"] == pytest.approx(1.152e-4 + 9 * 4e-6, abs=1e-12)
    nova = events["nova-converse-stream.json"].properties
    # Nova Lite: $0.06 input, $0.24 output per million tokens.
    assert nova["total_cost_in_dollars"] == pytest.approx(18 * 0.06e-6 + 4 * 0.24e-6, abs=1e-12)
    assert nova["stream_completed"] is True
    throttled = events["llama-throttled.json"]
    assert throttled.event == "bedrock_error"
    assert throttled.properties["error_type"] == "ThrottlingException"
    assert throttled.properties["error_code"] == 429
