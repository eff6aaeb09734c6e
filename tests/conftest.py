"""Fixtures: the two emulators on loopback and the whole pipeline in this process."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import otel_bedrock
from otel_bedrock.config import load_settings
from otel_bedrock.exporter import PostHogSpanExporter
from otel_bedrock.processor import BedrockSpanProcessor
from otel_bedrock.setup import instrument_botocore
from otel_bedrock.testing import BedrockEmulator, CapturedEvent, CaptureEmulator
from otel_bedrock.testing._server import free_port

BUNDLED = Path(__file__).resolve().parent / "data" / "bedrock"
"""Real Bedrock Runtime exchanges (``recordings/``, from other projects' test suites, each
naming its source and licence) and cases built from reported bugs (``cases/``)."""
SHARED = Path(__file__).resolve().parents[2] / "shared"
"""Where newer exchanges in the same format may lie beside the checkout; they join the bundled
ones, a file of the same name replacing its bundled copy."""
TEST_KEY = "phc_test"


def shared_files(folder: str) -> list[Path]:
    """The exchange files of ``recordings`` or ``cases``: bundled, plus any beside the checkout."""
    found = {path.name: path for path in (BUNDLED / folder).glob("*.json")}
    found.update({path.name: path for path in (SHARED / folder).glob("*.json")})

    return [found[name] for name in sorted(found)]


def shared_path(*parts: str) -> Path:
    """A file or folder of the exchanges: beside the checkout if there, else the bundled one."""
    beside = SHARED.joinpath(*parts)

    return beside if beside.exists() else BUNDLED.joinpath(*parts)


def load_exchange(path: Path) -> dict[str, Any]:
    """One exchange file."""
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


@pytest.fixture(scope="session", autouse=True)
def private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Spools and event stores of this test run, apart from the user's own data folder.

    Set in the environment, so that programs the tests start use it too.
    """
    folder = tmp_path_factory.mktemp("otel-bedrock-data")
    previous = os.environ.get("OTEL_BEDROCK_DATA_DIR")
    os.environ["OTEL_BEDROCK_DATA_DIR"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["OTEL_BEDROCK_DATA_DIR"]
    else:
        os.environ["OTEL_BEDROCK_DATA_DIR"] = previous


@pytest.fixture(scope="session")
def bedrock() -> Iterator[BedrockEmulator]:
    """A Bedrock Runtime emulator shared by the session; reset before each use."""
    with BedrockEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def capture() -> Iterator[CaptureEmulator]:
    """A PostHog capture emulator shared by the session; reset before each use."""
    with CaptureEmulator(accepted_keys={TEST_KEY}) as emulator:
        yield emulator


class Pipeline:
    """The in-process pipeline: boto3 -> botocore instrumentation + our hooks -> PostHog."""

    def __init__(self, bedrock: BedrockEmulator, capture: CaptureEmulator, **settings: Any):
        self.bedrock = bedrock
        self.capture = capture
        resolved = load_settings(api_key=TEST_KEY, host=capture.url, **settings)
        self.provider = TracerProvider()
        self.exporter = PostHogSpanExporter(settings=resolved)
        self.provider.add_span_processor(BedrockSpanProcessor())
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        instrument_botocore(resolved, tracer_provider=self.provider)
        self.client = make_client(bedrock.endpoint_url)

    def events(self) -> list[CapturedEvent]:
        """Every event PostHog received so far, after flushing the pipeline."""
        assert otel_bedrock.flush(10_000)
        return list(self.capture.events)

    def only_event(self) -> CapturedEvent:
        """The single event PostHog received."""
        events = self.events()
        assert len(events) == 1, [event["event"] for event in events]
        return events[0]

    def close(self) -> None:
        BotocoreInstrumentor().uninstrument()
        self.provider.shutdown()


def make_client(endpoint_url: str, total_attempts: int = 1) -> Any:
    """A real boto3 Bedrock Runtime client for the emulator, by default with no retries."""
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": total_attempts, "mode": "standard"}),
    )


def eventually(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)

    return bool(condition())


def child_environment(**extra: str) -> dict[str, str]:
    """The environment for a program the tests start: the developer's OpenTelemetry, AWS and
    PostHog variables removed (the test's data folder kept, so no spool lands in $HOME), then
    ``extra``."""
    prefixes = ("OTEL_", "AWS_", "POSTHOG_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    if "OTEL_BEDROCK_DATA_DIR" in os.environ:
        env["OTEL_BEDROCK_DATA_DIR"] = os.environ["OTEL_BEDROCK_DATA_DIR"]
    env.update(extra)

    return env


@pytest.fixture
def unused_port() -> int:
    """A loopback port where nothing listens."""
    return free_port()


@pytest.fixture
def make_pipeline(bedrock: BedrockEmulator, capture: CaptureEmulator) -> Iterator[Any]:
    """Build a pipeline with the given settings; torn down after the test."""
    built: list[Pipeline] = []

    def build(**settings: Any) -> Pipeline:
        bedrock.reset()
        capture.reset()
        pipeline = Pipeline(bedrock, capture, **settings)
        built.append(pipeline)
        return pipeline

    yield build
    for pipeline in built:
        pipeline.close()


@pytest.fixture
def pipeline(make_pipeline: Any) -> Pipeline:
    """A pipeline with default settings (content capture off)."""
    built: Pipeline = make_pipeline()
    return built
