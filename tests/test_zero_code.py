"""The three ways to run in-process, each as a separate program over real HTTP.

Each test starts a plain boto3 program in a new process, pointed at the Bedrock emulator by
boto3's own ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` and at the capture emulator by
``POSTHOG_HOST``, and checks what PostHog received.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_bedrock.testing import BedrockEmulator, CaptureEmulator
from otel_bedrock.testing.bedrock import REPLY_TOKENS
from tests.conftest import TEST_KEY, child_environment

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OPERATIONS = ["InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"]


def run(
    bedrock: BedrockEmulator, capture: CaptureEmulator, argv: list[str], **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run a program with a clean OpenTelemetry environment and the emulators' addresses."""
    bedrock.reset()
    capture.reset()
    env = child_environment(
        **{
            "POSTHOG_API_KEY": TEST_KEY,
            "POSTHOG_HOST": capture.url,
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.endpoint_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            **extra,
        }
    )
    return subprocess.run(
        argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def completions(capture: CaptureEmulator) -> dict[str, dict[str, Any]]:
    """Completion events by operation."""
    return {
        event["properties"]["operation"]: event["properties"]
        for event in capture.events
        if event["event"] == "bedrock_completion"
    }


@pytest.mark.parametrize("config_file", [None, "otel-config.yaml"])
def test_unchanged_program_under_opentelemetry_instrument(
    bedrock: BedrockEmulator, capture: CaptureEmulator, config_file: str | None
) -> None:
    """Every call of an untouched boto3 program becomes a complete event, in both modes."""
    extra = {"OTEL_CONFIG_FILE": config_file} if config_file else {}

    done = run(
        bedrock,
        capture,
        [str(BIN / "opentelemetry-instrument"), sys.executable, "examples/bedrock_calls.py"],
        **extra,
    )

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    events = completions(capture)
    assert sorted(events) == sorted(OPERATIONS)
    for props in events.values():
        assert props["model"] == "meta.llama3-1-8b-instruct-v1:0"
        # The emulator counts the 7 words of the prompt and answers with its 8-token reply.
        assert props["prompt_token_count"] == 7
        assert props["generation_token_count"] == REPLY_TOKENS == 8
        assert props["cost_status"] == "priced"
        assert props["total_cost_in_dollars"] == pytest.approx(15 * 0.22e-6, abs=1e-12)


@pytest.mark.parametrize(
    "model",
    [
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "amazon.nova-lite-v1:0",
        "amazon.titan-text-express-v1",
    ],
)
def test_the_example_calls_models_of_other_families(
    bedrock: BedrockEmulator, capture: CaptureEmulator, model: str
) -> None:
    """The example builds each family's InvokeModel body, so BEDROCK_MODEL_ID may name any
    model the emulator serves; every call is an event of that model with its counts."""
    done = run(
        bedrock,
        capture,
        [str(BIN / "opentelemetry-instrument"), sys.executable, "examples/bedrock_calls.py"],
        BEDROCK_MODEL_ID=model,
    )

    assert done.returncode == 0, done.stderr
    events = completions(capture)
    assert sorted(events) == sorted(OPERATIONS)
    for props in events.values():
        assert props["model"] == model
        assert (props["prompt_token_count"], props["generation_token_count"]) == (7, 8)
        assert props["cost_status"] == "priced"


def test_embedded_configure_call(bedrock: BedrockEmulator, capture: CaptureEmulator) -> None:
    """The embedded example's one configure() call gives an event with the identified user."""
    done = run(bedrock, capture, [sys.executable, "examples/embedded.py"])

    assert done.returncode == 0, done.stderr
    [event] = capture.events
    assert event["event"] == "bedrock_completion"
    assert event["distinct_id"] == "cook@example.com"


def test_bad_setting_is_reported_and_the_program_still_runs(
    bedrock: BedrockEmulator, capture: CaptureEmulator
) -> None:
    """A personal key where a project key belongs is named at start; the app keeps working."""
    done = run(
        bedrock,
        capture,
        [str(BIN / "opentelemetry-instrument"), sys.executable, "examples/bedrock_calls.py"],
        POSTHOG_API_KEY="phx_personal_key",
    )

    assert done.returncode == 0, done.stderr
    assert "ConverseStream:" in done.stdout
    assert "POSTHOG_API_KEY='phx_...': this is a personal API key" in done.stderr
    assert "phx_personal_key" not in done.stderr
    assert "Traceback" not in done.stderr
    assert capture.events == []


def test_configuration_file_settings_reach_the_hooks(
    bedrock: BedrockEmulator, capture: CaptureEmulator, tmp_path: Path
) -> None:
    """capture_content set only in the configuration file gives prompt and generation text."""
    config = (ROOT / "otel-config.yaml").read_text()
    config = config.replace(
        "capture_content: ${OTEL_BEDROCK_CAPTURE_CONTENT:-false}", "capture_content: true"
    )
    path = tmp_path / "otel-config.yaml"
    path.write_text(config)

    done = run(
        bedrock,
        capture,
        [str(BIN / "opentelemetry-instrument"), sys.executable, "examples/bedrock_calls.py"],
        OTEL_CONFIG_FILE=str(path),
    )

    assert done.returncode == 0, done.stderr
    converse = completions(capture)["Converse"]
    assert converse["prompt"] == "Suggest a recipe with eggs and spinach."
    assert converse["generation"] == "This is a reply from the Bedrock emulator."


OTHER_DISTRO = """
import os

from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _OTelSDKConfigurator


class Distro(BaseDistro):
    def _configure(self, **kwargs):
        os.environ.setdefault("OTEL_TRACES_EXPORTER", "console")


class Configurator(_OTelSDKConfigurator):
    pass
"""


def test_works_beside_another_distro_with_one_variable(
    bedrock: BedrockEmulator, capture: CaptureEmulator, tmp_path: Path
) -> None:
    """With a second distro installed first in the path, OTEL_PYTHON_DISTRO picks ours."""
    (tmp_path / "other_distro.py").write_text(OTHER_DISTRO)
    info = tmp_path / "other_distro-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: other-distro\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[opentelemetry_distro]\ndistro = other_distro:Distro\n\n"
        "[opentelemetry_configurator]\nconfigurator = other_distro:Configurator\n"
    )

    done = run(
        bedrock,
        capture,
        [str(BIN / "opentelemetry-instrument"), sys.executable, "examples/bedrock_calls.py"],
        PYTHONPATH=str(tmp_path),
        OTEL_PYTHON_DISTRO="otel_bedrock",
    )

    assert done.returncode == 0, done.stderr
    assert sorted(completions(capture)) == sorted(OPERATIONS)


HELD_STREAM = """
import boto3

client = boto3.client("bedrock-runtime", region_name="us-east-1")
messages = [{"role": "user", "content": [{"text": "Eggs?"}]}]
RESPONSE = client.converse_stream(modelId="amazon.nova-lite-v1:0", messages=messages)
EVENTS = iter(RESPONSE["stream"])
FIRST = next(EVENTS)
"""


def test_stream_still_held_at_exit_gives_its_event(
    bedrock: BedrockEmulator, capture: CaptureEmulator, tmp_path: Path
) -> None:
    """A stream the program still holds, unfinished, when it exits is sent as incomplete."""
    script = tmp_path / "held.py"
    script.write_text(HELD_STREAM)

    done = run(
        bedrock, capture, [str(BIN / "opentelemetry-instrument"), sys.executable, str(script)]
    )

    assert done.returncode == 0, done.stderr
    [event] = capture.events
    assert event["properties"]["operation"] == "ConverseStream"
    assert event["properties"]["stream_completed"] is False
