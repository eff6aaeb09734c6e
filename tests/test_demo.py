"""``otel-bedrock demo`` run as a user runs it: a separate process, real app, real HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from otel_bedrock.store import EVENTS_FILE
from otel_bedrock.testing import CaptureEmulator

BIN = Path(sys.executable).parent
PRICE = 0.22e-6  # Llama 3.1 8B Instruct, dollars per input and per output token


def run_demo(data_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run the demo with its data in ``data_dir`` and no PostHog project of the user's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POSTHOG_"))}
    env.update(OTEL_BEDROCK_DATA_DIR=str(data_dir), COLUMNS="120", **extra)
    argv = [str(BIN / "otel-bedrock"), "demo", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=90, check=False)


def row(output: str, name: str) -> str:
    """The value printed in the table row ``name``."""
    found = re.search(rf"{re.escape(name)}\s*│\s*(.+?)\s*│", output)
    assert found, f"no row {name!r} in:\n{output}"
    return found.group(1)


def dollars(printed: str) -> float:
    """A printed dollar amount, such as ``$0.00000352``."""
    assert printed.startswith("$"), printed
    return float(printed[1:])


def test_demo_prints_the_five_insights_of_its_events(tmp_path: Path) -> None:
    """The printed insights equal a hand computation from the events the demo stored."""
    done = run_demo(tmp_path, "--requests", "12")

    assert done.returncode == 0, done.stdout + done.stderr
    events = [json.loads(line) for line in (tmp_path / EVENTS_FILE).read_text().splitlines()]
    completions = [e for e in events if e["event"] == "bedrock_completion"]
    errors = [e for e in events if e["event"] == "bedrock_error"]
    # 12 requests: one throttled until boto3 gave up, one rejected as invalid, one throttled
    # once and retried successfully.
    assert (len(events), len(completions), len(errors)) == (12, 10, 2)
    assert sorted(e["properties"]["error_type"] for e in errors) == [
        "ThrottlingException",
        "ValidationException",
    ]
    assert sorted(e["properties"]["retry_attempts"] for e in completions) == [0] * 9 + [1]
    for event in completions:
        props = event["properties"]
        n_tokens = props["prompt_token_count"] + props["generation_token_count"]
        assert props["total_cost_in_dollars"] == pytest.approx(n_tokens * PRICE, abs=1e-12)
    tokens = [
        e["properties"]["prompt_token_count"] + e["properties"]["generation_token_count"]
        for e in completions
    ]
    total = sum(tokens) * PRICE
    users = {e["distinct_id"] for e in completions}
    assert all(user.endswith("@example.com") for user in users)
    elapsed = sum(e["properties"]["response_time_in_ms"] for e in completions) / 10
    out = done.stdout
    assert row(out, "Generation count") == "10"
    # Dollars are printed with six significant digits.
    assert dollars(row(out, "Average cost per call")) == pytest.approx(total / 10, rel=1e-5)
    assert dollars(row(out, "Average cost per user")) == pytest.approx(total / len(users), rel=1e-5)
    assert dollars(row(out, "Total cost")) == pytest.approx(total, rel=1e-5)
    assert row(out, "Average response time") == f"{elapsed:.1f} ms"
    assert row(out, "Error rate") == "16.67%"
    assert row(out, "Events received") == "12"
    assert row(out, "Requests sent") == "12"
    assert row(out, "Requests succeeded") == "10"
    assert row(out, "Requests failed") == "2"
    assert row(out, "Users") == str(len(users))
    assert str(tmp_path / EVENTS_FILE) in out.replace("\n", "")


def test_demo_copies_its_events_to_the_users_project(tmp_path: Path) -> None:
    """With POSTHOG_API_KEY set, that project receives the same events and the command says so."""
    with CaptureEmulator(accepted_keys={"phc_mine"}) as mine:
        host = mine.url
        done = run_demo(tmp_path, "--requests", "4", POSTHOG_API_KEY="phc_mine", POSTHOG_HOST=host)

        assert done.returncode == 0, done.stdout + done.stderr
        assert mine.wait_for(4, timeout=5)
        copied = {str(e["uuid"]): e for e in mine.events}
    local = [json.loads(line) for line in (tmp_path / EVENTS_FILE).read_text().splitlines()]
    assert sorted(copied) == sorted(e["uuid"] for e in local)
    for event in local:
        twin = copied[event["uuid"]]
        assert twin["event"] == event["event"]
        assert twin["distinct_id"] == event["distinct_id"]
        assert twin["timestamp"] == event["timestamp"]
        assert twin["properties"] == event["properties"]
    assert f"Sent 4 events to your PostHog project at {host}" in done.stdout


def test_demo_without_the_app_says_where_it_looked(tmp_path: Path) -> None:
    """A missing app file stops the demo at once with exit code 1 and the path it tried."""
    missing = tmp_path / "nowhere" / "app.py"

    done = run_demo(tmp_path, "--app", str(missing))

    assert done.returncode == 1
    assert f"the recipe app is not at {missing}" in done.stderr


def test_demo_reports_an_app_that_fails_to_start(tmp_path: Path) -> None:
    """An app that exits before answering fails the demo with its exit code and its output."""
    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nprint('no kitchen today')\nsys.exit(3)\n")

    done = run_demo(tmp_path, "--app", str(broken))

    assert done.returncode == 1
    assert "the recipe app exited with code 3 before answering" in done.stderr
    assert "no kitchen today" in done.stderr


CRASHING_APP = """
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self):
        print("recipe app giving up", flush=True)
        os._exit(3)


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def test_demo_reports_an_app_that_dies_mid_run(tmp_path: Path) -> None:
    """An app that dies on its first request gives exit 1 and the app's last words."""
    app = tmp_path / "crashing_app.py"
    app.write_text(CRASHING_APP)

    done = run_demo(tmp_path, "--app", str(app), "--requests", "3")

    assert done.returncode == 1
    assert "the recipe app stopped answering" in done.stderr
    assert "recipe app giving up" in done.stderr
    assert "Traceback" not in done.stderr
