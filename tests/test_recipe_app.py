"""The recipe app, untouched, under ``opentelemetry-instrument``, driven over HTTP.

The app runs as a separate process pointed at the Bedrock emulator by boto3's own
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` and at the capture emulator by ``POSTHOG_HOST``; callers
identify themselves with a W3C ``baggage: user.id=...`` header only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from otel_bedrock import demo
from otel_bedrock.testing import (
    BedrockEmulator,
    CapturedEvent,
    CaptureEmulator,
    throttle,
    validation_error,
)
from otel_bedrock.testing._server import free_port
from otel_bedrock.testing.bedrock import REPLY_TEXT, REPLY_TOKENS
from tests.conftest import TEST_KEY, child_environment

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "recipe_app" / "app.py"
BIN = Path(sys.executable).parent
MODEL = "meta.llama3-1-8b-instruct-v1:0"
PRICE = 0.22e-6  # Llama 3.1 8B Instruct, dollars per input and per output token
ATTEMPTS = 2  # AWS_MAX_ATTEMPTS given to the app


@pytest.fixture(scope="module")
def app_url(bedrock: BedrockEmulator, capture: CaptureEmulator) -> Iterator[str]:
    """The recipe app under opentelemetry-instrument, for the whole module."""
    port = free_port()
    env = child_environment(
        POSTHOG_API_KEY=TEST_KEY,
        POSTHOG_HOST=capture.url,
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME=bedrock.endpoint_url,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_MAX_ATTEMPTS=str(ATTEMPTS),
        OTEL_BSP_SCHEDULE_DELAY="50",
        PORT=str(port),
    )
    argv = [str(BIN / "opentelemetry-instrument"), sys.executable, str(APP)]
    url = f"http://127.0.0.1:{port}"
    # The app's output goes to a file: a pipe nobody reads could fill up and stall the app.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, _tail(log)
                try:
                    with urllib.request.urlopen(url + "/", timeout=1):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "the recipe app did not start"
                    time.sleep(0.05)
            yield url
        finally:
            demo.stop(process)


def _tail(log: Any) -> str:
    """The last output of the app."""
    log.seek(0)
    return str(log.read()[-2000:].decode("utf-8", "replace"))


def post(url: str, ingredients: str, email: str) -> tuple[int, dict[str, Any]]:
    """POST a recipe request with the email as baggage; the status and JSON answer."""
    body = json.dumps({"ingredients": ingredients, "email": email}).encode()
    headers = {"Content-Type": "application/json", "baggage": "user.id=" + quote(email, safe="")}
    request = urllib.request.Request(url + "/api/generate-recipe", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def received(capture: CaptureEmulator, count: int) -> list[CapturedEvent]:
    """The events PostHog received, once there are ``count`` of them."""
    assert capture.wait_for(count, timeout=10)
    time.sleep(0.3)  # nothing more may arrive
    return capture.events


@pytest.fixture
def emulators(bedrock: BedrockEmulator, capture: CaptureEmulator) -> tuple[BedrockEmulator, Any]:
    """Both emulators, emptied."""
    bedrock.reset()
    capture.reset()
    return bedrock, capture


def test_each_recipe_is_one_completion_for_its_caller(
    app_url: str, emulators: tuple[BedrockEmulator, CaptureEmulator]
) -> None:
    """Each successful request gives one priced completion with the caller's email as user."""
    bedrock, capture = emulators
    asks = [
        ("eggs, spinach", "ana+test@example.com"),
        ("rice, chickpeas, garlic", "bruno@example.com"),
        ("tofu", "ana+test@example.com"),
    ]

    answers = [post(app_url, ingredients, email) for ingredients, email in asks]

    assert answers == [(200, {"recipe": REPLY_TEXT})] * 3
    sent = [json.loads(request.body) for request in bedrock.requests]
    assert sent[1] == {
        "prompt": "Generate a recipe using these ingredients: rice, chickpeas, garlic",
        "max_gen_len": 512,
        "temperature": 0.5,
        "top_p": 0.9,
    }
    assert {request.model_id for request in bedrock.requests} == {MODEL}
    events = received(capture, 3)
    assert [e["event"] for e in events] == ["bedrock_completion"] * 3
    by_user = sorted((e["distinct_id"], e["properties"]["prompt_token_count"]) for e in events)
    # The prompt is six words plus one per comma-separated word of the ingredients.
    assert by_user == [
        ("ana+test@example.com", 7),
        ("ana+test@example.com", 8),
        ("bruno@example.com", 9),
    ]
    for event in events:
        props = event["properties"]
        n_in = props["prompt_token_count"]
        assert props["model"] == MODEL
        assert props["operation"] == "InvokeModel"
        assert props["generation_token_count"] == REPLY_TOKENS == 8
        assert props["cost_status"] == "priced"
        assert props["input_cost_in_dollars"] == pytest.approx(n_in * PRICE, abs=1e-12)
        assert props["output_cost_in_dollars"] == pytest.approx(8 * PRICE, abs=1e-12)
        assert props["total_cost_in_dollars"] == pytest.approx((n_in + 8) * PRICE, abs=1e-12)
        assert "$process_person_profile" not in props


def test_throttled_request_is_one_error_and_a_500(
    app_url: str, emulators: tuple[BedrockEmulator, CaptureEmulator]
) -> None:
    """A call throttled on every attempt answers 500 and gives one error event for the caller."""
    bedrock, capture = emulators
    bedrock.enqueue(*(throttle() for _ in range(ATTEMPTS)))

    status, answer = post(app_url, "lemon, basil", "chiara@example.com")

    assert status == 500
    assert answer["error"].startswith(
        "Could not generate a recipe: An error occurred (ThrottlingException)"
    )
    assert len(bedrock.requests) == ATTEMPTS
    events = received(capture, 1)
    assert len(events) == 1
    event = events[0]
    assert event["event"] == "bedrock_error"
    assert event["distinct_id"] == "chiara@example.com"
    props = event["properties"]
    assert props["error_type"] == "ThrottlingException"
    assert props["error_code"] == 429
    assert props["retry_attempts"] == ATTEMPTS - 1
    assert props["model"] == MODEL
    assert "total_cost_in_dollars" not in props


def test_invalid_request_is_one_error_and_a_500(
    app_url: str, emulators: tuple[BedrockEmulator, CaptureEmulator]
) -> None:
    """A request Bedrock rejects as invalid answers 500 and gives one error event."""
    bedrock, capture = emulators
    bedrock.enqueue(validation_error("Malformed input request: bad max_gen_len."))

    status, answer = post(app_url, "potatoes", "dev@example.com")

    assert status == 500
    assert answer == {
        "error": "Could not generate a recipe: An error occurred (ValidationException) when "
        "calling the InvokeModel operation: Malformed input request: bad max_gen_len."
    }
    events = received(capture, 1)
    assert [(e["event"], e["distinct_id"]) for e in events] == [
        ("bedrock_error", "dev@example.com")
    ]
    props = events[0]["properties"]
    assert props["error_type"] == "ValidationException"
    assert props["error_code"] == 400
    assert props["error_message"] == "Malformed input request: bad max_gen_len."
    assert props["retry_attempts"] == 0


def test_page_sends_the_email_as_baggage(app_url: str) -> None:
    """The page served at / posts to the API with the email percent-encoded in baggage."""
    with urllib.request.urlopen(app_url + "/", timeout=5) as response:
        page = response.read().decode()

    assert '"baggage": "user.id=" + encodeURIComponent(email)' in page
    assert 'fetch("/api/generate-recipe"' in page
