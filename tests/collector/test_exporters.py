"""Stock OTLP exporters, unchanged, in a separate process: an application traced by the
upstream botocore instrumentation alone calls the Bedrock emulator and exports over OTLP/HTTP
or OTLP/gRPC to the collector, which sends PostHog the same events as in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from collector.server import CollectorThread
from otel_bedrock.testing import BedrockEmulator, CaptureEmulator, validation_error
from otel_bedrock.testing._server import free_port
from tests.collector.test_server import LLAMA_COST, assert_llama_event, collectors
from tests.conftest import TEST_KEY
from tests.test_pipeline import llama_reply

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "exporter-token-51c9"

# The application: boto3 + upstream botocore instrumentation + the stock OTLP exporters.
APP = """
import sys

import boto3
from botocore.config import Config
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

transport, endpoint, bedrock_url, token = sys.argv[1:5]
headers = {"authorization": f"Bearer {token}"} if token else None
if transport == "http":
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    spans = OTLPSpanExporter(
        endpoint=endpoint + "/v1/traces", headers=headers, compression=Compression.Gzip
    )
    logs = OTLPLogExporter(endpoint=endpoint + "/v1/logs", headers=headers)
else:
    from grpc import Compression
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    spans = OTLPSpanExporter(
        endpoint=endpoint, insecure=True, headers=headers, compression=Compression.Gzip
    )
    logs = OTLPLogExporter(endpoint=endpoint, insecure=True, headers=headers)

resource = Resource.create({"service.name": "recipes"})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(spans))
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs))
BotocoreInstrumentor().instrument(
    tracer_provider=tracer_provider, logger_provider=logger_provider
)
client = boto3.client(
    "bedrock-runtime",
    endpoint_url=bedrock_url,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
)
body = '{"prompt": "Eggs and spinach?", "max_gen_len": 64}'
client.invoke_model(modelId="meta.llama3-1-8b-instruct-v1:0", body=body)
try:
    client.invoke_model(modelId="meta.llama3-1-8b-instruct-v1:0", body=body)
except client.exceptions.ValidationException:
    pass
# Logs first, as a service's SDK usually sends them: the spans then need no content wait.
logger_provider.shutdown()
tracer_provider.shutdown()
"""


def run_app(
    transport: str,
    endpoint: str,
    bedrock: BedrockEmulator,
    *,
    token: str = "",
    capture_content: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the application in its own process; it makes a good call and a refused one."""
    bedrock.reset()
    bedrock.enqueue(llama_reply(tokens=(12, 3)), validation_error("Bad prompt."))
    env = {
        **os.environ,
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": str(capture_content).lower(),
    }
    done = subprocess.run(
        [sys.executable, "-c", APP, transport, endpoint, bedrock.endpoint_url, token],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def make_collector(make_intake: Any) -> Iterator[Callable[..., CollectorThread]]:
    """Start collectors in front of real intakes; stopped after the test."""
    yield from collectors(make_intake)


def endpoint(server: CollectorThread, transport: str) -> str:
    """Where the application's exporters send to."""
    return server.http_url if transport == "http" else server.grpc_target


def by_event(events: list[Any]) -> dict[str, Any]:
    """Events by name; each name once."""
    names = [event["event"] for event in events]
    assert len(names) == len(set(names)), names
    return {event["event"]: event for event in events}


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_stock_exporter_calls_become_posthog_events(
    transport: str, make_collector: Any, bedrock: BedrockEmulator, capture: CaptureEmulator
) -> None:
    """Through a collector that needs a bearer token, with exporters configured with it, a
    good call becomes bedrock_completion with the model, its tokens and their cost, and a
    refused one becomes bedrock_error with the AWS error."""
    server = make_collector(token=TOKEN)

    run_app(transport, endpoint(server, transport), bedrock, token=TOKEN)

    assert capture.wait_for(2, timeout=10)
    events = by_event(list(capture.events))
    completion, error = events["bedrock_completion"], events["bedrock_error"]
    assert_llama_event(completion)
    assert completion["properties"]["input_cost_in_dollars"] == pytest.approx(
        12 * 0.22e-6, abs=1e-12
    )
    assert completion["properties"]["output_cost_in_dollars"] == pytest.approx(
        3 * 0.22e-6, abs=1e-12
    )
    assert completion["properties"]["operation"] == "InvokeModel"
    assert "prompt" not in completion["properties"]
    assert error["properties"]["error_type"] == "ValidationException"
    assert error["properties"]["error_code"] == 400
    assert error["properties"]["model"] == "meta.llama3-1-8b-instruct-v1:0"
    counts = server.collector.intake.counts()
    assert (counts["received"], counts["converted"], counts["rejected"]) == (2, 2, 0)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_stock_exporters_without_the_token_are_refused(
    transport: str, make_collector: Any, bedrock: BedrockEmulator, capture: CaptureEmulator
) -> None:
    """Without the token nothing is accepted, and the exporters do not retry (401 and
    UNAUTHENTICATED are final), so the application is not held up."""
    server = make_collector(token=TOKEN)
    started = time.monotonic()

    run_app(transport, endpoint(server, transport), bedrock)

    assert time.monotonic() - started < 15
    assert server.collector.intake.counts()["received"] == 0
    assert list(capture.events) == []


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_stock_log_exporter_content_joins_its_span(
    transport: str, make_collector: Any, bedrock: BedrockEmulator, capture: CaptureEmulator
) -> None:
    """With content capture on both sides, upstream's content log records reach the collector
    through the stock log exporter and give the event its prompt and generation."""
    server = make_collector(intake_options={"capture_content": True, "content_wait": 5.0})

    run_app(transport, endpoint(server, transport), bedrock, capture_content=True)

    assert capture.wait_for(2, timeout=10)
    completion = by_event(list(capture.events))["bedrock_completion"]
    assert completion["properties"]["prompt"] == "Eggs and spinach?"
    assert completion["properties"]["generation"] == "Omelette."
    assert completion["properties"]["total_cost_in_dollars"] == pytest.approx(LLAMA_COST, abs=1e-12)


@pytest.mark.parametrize("delivery", ["process", "thread"])
def test_sigterm_drains_spans_still_waiting(
    delivery: str, tmp_path: Path, bedrock: BedrockEmulator, capture: CaptureEmulator
) -> None:
    """SIGTERM to ``python -m collector``, set up by flags and the posthog block of a
    configuration file: spans still waiting for content are converted and delivered at once,
    the process exits 0, and its JSON log lines hold no token, key or prompt; with delivery
    from a child process and from a thread."""
    capture.reset()
    http_port, grpc_port = free_port(), free_port()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = tmp_path / "otel-config.yaml"
    config.write_text(
        'file_format: "1.0"\n'
        "tracer_provider:\n"
        "  processors:\n"
        "    - batch:\n"
        "        exporter:\n"
        "          posthog:\n"
        "            api_key: ${TEST_POSTHOG_KEY}\n"
        f"            host: {capture.url}\n"
        "            spool: 'off'\n"
        "            capture_content: true\n"
    )
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("POSTHOG_", "OTEL_BEDROCK_")) or name == "OTEL_BEDROCK_DATA_DIR"
    }
    env["TEST_POSTHOG_KEY"] = TEST_KEY
    command = [
        sys.executable,
        "-m",
        "collector",
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        "--token-file",
        str(token_file),
        "--content-wait",
        "60",
        "--config",
        str(config),
        "--delivery",
        delivery,
    ]
    service = subprocess.Popen(
        command, env=env, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        base = f"http://127.0.0.1:{http_port}"
        wait_until_ready(base, service)
        run_app("http", base, bedrock, token=TOKEN)  # no content records: the spans wait
        metrics = requests.get(base + "/metrics", timeout=5).text
        assert "otel_bedrock_collector_spans_pending 2.0" in metrics
        assert list(capture.events) == []

        started = time.monotonic()
        service.send_signal(signal.SIGTERM)
        _, stderr = service.communicate(timeout=30)
    finally:
        if service.poll() is None:
            service.kill()
            service.communicate()

    assert service.returncode == 0, stderr
    assert time.monotonic() - started < 10
    assert sorted(event["event"] for event in capture.events) == [
        "bedrock_completion",
        "bedrock_error",
    ]
    lines = [json.loads(line) for line in stderr.splitlines()]
    names = [line["event"] for line in lines]
    assert "collector_stopped" in names
    started_line = lines[names.index("collector_started")]
    assert started_line["auth"] == "on"
    assert started_line["http_port"] == http_port
    assert started_line["spool"] == "off"
    ready = next(line for line in lines if line["event"] == "posthog_delivery_ready")
    assert ready["host"] == capture.url  # the library's own lines have fields too
    stopped = next(line for line in lines if line["event"] == "collector_stopped")
    assert (stopped["converted"], stopped["sent"], stopped["dropped"]) == (2, 2, 0)
    assert TOKEN not in stderr
    assert TEST_KEY not in stderr
    assert "Eggs and spinach" not in stderr


def wait_until_ready(base: str, service: subprocess.Popen[str], timeout: float = 20) -> None:
    """Poll /readyz until the collector answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert service.poll() is None, service.communicate()[1]
        try:
            if requests.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError("the collector did not become ready")
