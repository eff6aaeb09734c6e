"""``otel-bedrock emulators``: both emulators for a program run beside them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.conftest import child_environment

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_unchanged_program_runs_against_the_emulators_command(tmp_path: Path) -> None:
    """With the variables it prints, a plain boto3 program run under opentelemetry-instrument
    sends its events to the command, which prints them and keeps them in --events."""
    store = tmp_path / "events.jsonl"
    command = [str(BIN / "otel-bedrock"), "emulators", "--events", str(store)]
    with subprocess.Popen(
        command, env=child_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as emulators:
        printed = _run_beside(emulators)

    assert sorted(event["properties"]["operation"] for event in printed) == [
        "Converse",
        "ConverseStream",
        "InvokeModel",
        "InvokeModelWithResponseStream",
    ]
    assert {event["event"] for event in printed} == {"bedrock_completion"}
    assert emulators.returncode == 0
    assert len(store.read_text().splitlines()) == 4


def _exports(emulators: subprocess.Popen[str]) -> dict[str, str]:
    """The variables the command prints, read from its stderr."""
    assert emulators.stderr is not None
    exports = {}
    while len(exports) < 7:
        line = emulators.stderr.readline()
        assert line, "the command stopped before printing its environment"
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = value

    return exports


def _run_beside(emulators: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """Run the example program with the printed variables; the four events printed."""
    try:
        assert emulators.stdout is not None
        exports = _exports(emulators)
        done = subprocess.run(
            [str(BIN / "opentelemetry-instrument"), sys.executable, "examples/bedrock_calls.py"],
            env=child_environment(**exports),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return [json.loads(emulators.stdout.readline()) for _ in range(4)]
    finally:
        emulators.terminate()
        emulators.wait(timeout=10)


def test_api_key_makes_other_keys_get_401() -> None:
    """With --api-key, the command prints that key, takes events sent with it, and answers
    401 to any other key, as PostHog would."""
    command = [str(BIN / "otel-bedrock"), "emulators", "--api-key", "phc_mine"]
    with subprocess.Popen(
        command, env=child_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as emulators:
        try:
            exports = _exports(emulators)
            batch = {"batch": [{"event": "e", "distinct_id": "u", "properties": {}}]}
            url = exports["POSTHOG_HOST"] + "/batch/"
            wrong = requests.post(url, json={"api_key": "phc_other", **batch}, timeout=5)
            right = requests.post(url, json={"api_key": "phc_mine", **batch}, timeout=5)
        finally:
            emulators.terminate()
            emulators.wait(timeout=10)

    assert exports["POSTHOG_API_KEY"] == "phc_mine"
    assert (wrong.status_code, right.status_code) == (401, 200)
