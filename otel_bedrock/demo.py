"""The ``otel-bedrock demo`` command: the tutorial's recipe app, end to end, with no accounts.

The demo starts the Bedrock emulator and the PostHog capture emulator in this process, runs
``examples/recipe_app/app.py`` as a separate process under the real ``opentelemetry-instrument``
command, and sends it requests over HTTP from several users, each with a W3C ``baggage:
user.id=<email>`` header. Some calls are throttled by Bedrock (until boto3 gives up, or once,
then retried successfully) and some are rejected as invalid. When every event has reached the
capture emulator, it stops the app and prints the five insights of PostHog's Bedrock tutorial
computed from those events. The capture emulator also appends them to the local event store,
which ``otel-bedrock report`` reads.

With ``POSTHOG_API_KEY`` (and optionally ``POSTHOG_HOST``) set, the same events (same uuids,
users, properties and timestamps) are then sent to that PostHog project.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import otel_bedrock
from otel_bedrock import insights
from otel_bedrock.config import Settings, load_settings
from otel_bedrock.delivery import PostHogDelivery
from otel_bedrock.errors import ConfigError
from otel_bedrock.events import COMPLETION_EVENT, ERROR_EVENT, CaptureEvent
from otel_bedrock.report import METRICS, format_money
from otel_bedrock.store import default_event_store
from otel_bedrock.testing import (
    BedrockEmulator,
    CapturedEvent,
    CaptureEmulator,
    ScriptedResponse,
    throttle,
    validation_error,
)
from otel_bedrock.testing._server import free_port

logger = logging.getLogger(__name__)

DEMO_KEY = "phc_otel_bedrock_demo"
DEFAULT_APP = (
    Path(otel_bedrock.__file__).resolve().parents[1] / "examples" / "recipe_app" / "app.py"
)
MAX_ATTEMPTS = 2
"""boto3 attempts per call in the app (``AWS_MAX_ATTEMPTS``): one try and one retry."""

EVENT_NAMES = (COMPLETION_EVENT, ERROR_EVENT)
START_TIMEOUT = 30.0
DELIVERY_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

COOKS = ("ana", "bruno", "chiara", "dev", "emeka", "farah", "gus", "hana")
PANTRY = tuple(
    "eggs,spinach,feta,rice,chickpeas,tomatoes,garlic,lemon,chicken thighs,coconut milk,basil,"
    "mushrooms,potatoes,red lentils,ginger,tofu".split(",")
)

OK, RECOVERED, THROTTLED, INVALID = "ok", "recovered", "throttled", "invalid"


@dataclass(frozen=True)
class PlannedRequest:
    """One request of the demo: who sends it, what they ask, and how Bedrock will answer.

    Attributes:
        email: The caller, sent as baggage ``user.id``.
        ingredients: The ingredients, comma separated.
        outcome: ``ok``; ``recovered`` (throttled once, then retried successfully);
            ``throttled`` (on every attempt, so the call fails); or ``invalid`` (a 400).
    """

    email: str
    ingredients: str
    outcome: str

    def scripted(self) -> list[ScriptedResponse]:
        """The responses to queue on the Bedrock emulator before sending this request."""
        if self.outcome == RECOVERED:
            return [throttle()]
        if self.outcome == THROTTLED:
            return [throttle() for _ in range(MAX_ATTEMPTS)]
        if self.outcome == INVALID:
            return [validation_error("Malformed input request: max_gen_len must be <= 2048.")]

        return []


@dataclass
class Tally:
    """What the app answered."""

    sent: int = 0
    succeeded: int = 0
    failed: int = 0


def users(count: int) -> list[str]:
    """``count`` demo email addresses."""
    names = [*COOKS, *(f"cook{i}" for i in range(len(COOKS) + 1, count + 1))]

    return [f"{name}@example.com" for name in names[:count]]


def plan(count: int, user_count: int, seed: int) -> list[PlannedRequest]:
    """A deterministic mix of ``count`` requests from ``user_count`` users.

    About one in nine is throttled until boto3 gives up, one in twelve is throttled once and
    then succeeds, and one in twelve is rejected as invalid.
    """
    rng = random.Random(seed)
    emails = users(user_count)
    outcomes = [THROTTLED] * (count // 9) + [RECOVERED] * (count // 12)
    outcomes += [INVALID] * (count // 12)
    outcomes += [OK] * (count - len(outcomes))
    rng.shuffle(outcomes)
    planned = []
    for outcome in outcomes:
        picked = rng.sample(PANTRY, rng.randint(2, 5))
        planned.append(PlannedRequest(rng.choice(emails), ", ".join(picked), outcome))

    return planned


def app_environment(
    bedrock: BedrockEmulator, capture: CaptureEmulator, port: int
) -> dict[str, str]:
    """The app's environment: ours, with the user's OpenTelemetry, AWS and PostHog ones removed."""
    prefixes = ("OTEL_", "AWS_", "POSTHOG_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update(
        POSTHOG_API_KEY=DEMO_KEY,
        POSTHOG_HOST=capture.url,
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME=bedrock.endpoint_url,
        AWS_ACCESS_KEY_ID="demo",
        AWS_SECRET_ACCESS_KEY="demo",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_RETRY_MODE="standard",
        AWS_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        OTEL_PYTHON_DISTRO="otel_bedrock",
        OTEL_BEDROCK_SPOOL_PATH="off",  # the local emulator is always there: no disk spool
        OTEL_SERVICE_NAME="recipe-app",
        OTEL_BSP_SCHEDULE_DELAY="200",
        RECIPE_APP_HOST="127.0.0.1",
        PORT=str(port),
        PYTHONUNBUFFERED="1",
    )

    return env


def _log_tail(log: IO[bytes], lines: int = 15) -> str:
    """The last lines the app wrote."""
    log.seek(0)
    text = log.read().decode("utf-8", "replace")

    return "\n".join(text.splitlines()[-lines:])


@dataclass
class RunningApp:
    """The recipe app's process; ``log`` holds its last output lines once it stopped."""

    process: subprocess.Popen[bytes]
    log: str = ""


@contextmanager
def recipe_app(app: Path, env: dict[str, str], base_url: str) -> Iterator[RunningApp]:
    """Run the app under ``opentelemetry-instrument`` until it answers; stop it with SIGINT.

    SIGINT lets the app exit normally, so OpenTelemetry's exit handlers export and deliver
    what is still queued.

    Raises:
        click.ClickException: when the app exits or stays silent before answering.
    """
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    argv = [str(instrument), sys.executable, str(app)]
    with tempfile.TemporaryFile() as log:
        running = RunningApp(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
        try:
            _wait_until_ready(running.process, base_url, log)
            yield running
        finally:
            stop(running.process)
            running.log = _log_tail(log)


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: IO[bytes]) -> None:
    """Poll ``GET /`` until the app answers."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(
                f"the recipe app exited with code {process.returncode} before answering:\n"
                f"{_log_tail(log)}"
            )
        try:
            with urllib.request.urlopen(base_url + "/", timeout=1.0) as response:
                response.read()
            return
        except OSError:
            time.sleep(0.05)
    raise click.ClickException(
        f"the recipe app did not answer within {START_TIMEOUT:.0f} s:\n{_log_tail(log)}"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the app with SIGINT, then SIGTERM, then SIGKILL, whichever works first."""
    if process.poll() is not None:
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        process.send_signal(sig)
        try:
            process.wait(STOP_TIMEOUT)
            return
        except subprocess.TimeoutExpired:
            logger.warning("recipe_app_stop_slow pid=%s", process.pid)


def send(base_url: str, request: PlannedRequest) -> int:
    """POST one recipe request with the caller's email as baggage; the HTTP status answered."""
    body = json.dumps({"ingredients": request.ingredients, "email": request.email})
    headers = {
        "Content-Type": "application/json",
        "baggage": "user.id=" + quote(request.email, safe=""),
    }
    post = urllib.request.Request(
        base_url + "/api/generate-recipe", data=body.encode("utf-8"), headers=headers
    )
    try:
        with urllib.request.urlopen(post, timeout=30.0) as response:
            response.read()
            status: int = response.status
    except urllib.error.HTTPError as error:
        error.read()
        status = error.code

    return status


def run_requests(
    progress: Progress, bedrock: BedrockEmulator, base_url: str, planned: Sequence[PlannedRequest]
) -> Tally:
    """Send the planned requests one after the other, scripting Bedrock's answer to each."""
    tally = Tally()
    task = progress.add_task("Sending recipe requests", total=len(planned))
    for request in planned:
        bedrock.enqueue(*request.scripted())
        status = send(base_url, request)
        if bedrock.pending:
            logger.warning("demo_script_unused responses=%s", bedrock.pending)
            bedrock.reset()
        tally.sent += 1
        if status == 200:
            tally.succeeded += 1
        else:
            tally.failed += 1
        progress.advance(task)

    return tally


def insights_table(result: insights.Insights, tally: Tally, received: int) -> Table:
    """The tutorial's five insights, shown as the report shows them, and what the demo sent."""
    table = Table(
        title="PostHog's Bedrock tutorial insights", caption="from the events PostHog received"
    )
    table.add_column("Insight")
    table.add_column("Value", justify="right")
    for index, metric in enumerate(METRICS, start=1):
        table.add_row(
            metric.title, metric.text(metric.value(result)), end_section=index == len(METRICS)
        )
    table.add_row("Requests sent", str(tally.sent))
    table.add_row("Requests succeeded", str(tally.succeeded))
    table.add_row("Requests failed", str(tally.failed))
    table.add_row("Events received", str(received))
    table.add_row("Users", str(result.users))
    table.add_row("Total cost", format_money(result.total_cost))

    return table


FORWARD_SECONDS = 15.0
"""How long the demo tries to copy its events to the user's PostHog project."""


def forward(events: Sequence[CapturedEvent], settings: Settings) -> int:
    """Send ``events`` unchanged (same uuids) to the PostHog project of ``settings``.

    Returns:
        How many events were not delivered.
    """
    delivery = PostHogDelivery(
        str(settings.posthog_api_key), settings.posthog_host, shutdown_timeout=0
    )
    for event in events:
        delivery.send(
            CaptureEvent(
                event=event["event"],
                distinct_id=str(event["distinct_id"]),
                properties=dict(event["properties"]),
                uuid=str(event["uuid"]),
                timestamp=datetime.fromisoformat(str(event["timestamp"])),
            )
        )
    delivery.flush(FORWARD_SECONDS)
    delivery.shutdown()
    counters = delivery.counters.snapshot()

    return len(events) - counters["sent"]


def _forward_settings() -> Settings | None:
    """The PostHog project to copy the events to, when the environment names one."""
    try:
        settings = load_settings()
    except ConfigError as error:
        raise click.ClickException(str(error)) from error

    return settings if settings.posthog_api_key else None


def _check_app(app: Path) -> None:
    """Fail early, with what to do, when the app or its web framework is missing."""
    if not app.is_file():
        raise click.ClickException(
            f"the recipe app is not at {app}; run the demo from a clone of the repository, "
            "or give its path with --app examples/recipe_app/app.py"
        )
    for module in ("flask", "opentelemetry.instrumentation.flask"):
        if importlib.util.find_spec(module) is None:
            raise click.ClickException(
                f"{module} is not installed; the recipe app needs the demo extra: "
                "uv sync --extra demo (or pip install 'otel-bedrock[demo]')"
            )


@click.command("demo")
@click.option(
    "--app",
    "app_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_APP,
    show_default="examples/recipe_app/app.py of this repository",
    help="The recipe app to run.",
)
@click.option(
    "--requests",
    "request_count",
    type=click.IntRange(1, 1000),
    default=36,
    show_default=True,
    help="How many recipe requests to send.",
)
@click.option(
    "--users",
    "user_count",
    type=click.IntRange(1, 100),
    default=6,
    show_default=True,
    help="How many different users send them.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the request mix.")
def demo_command(app_path: Path, request_count: int, user_count: int, seed: int) -> None:
    """Run the recipe app against local Bedrock and PostHog emulators.

    Starts both emulators, runs the recipe app under opentelemetry-instrument, sends it
    requests from several users (some throttled, some invalid), and prints the five insights
    of PostHog's Bedrock tutorial computed from the events PostHog received. With
    POSTHOG_API_KEY set, the same events also go to that PostHog project.
    """
    started = time.monotonic()
    console = Console()
    _check_app(app_path)
    forward_to = _forward_settings()
    store = default_event_store()
    store.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"Events PostHog receives are also kept in [bold]{store}[/bold]")

    planned = plan(request_count, user_count, seed)
    with _sigterm_as_exit():
        try:
            events, tally, app_log = _drive(console, app_path, store, planned)
        except AppStopped as stopped:
            raise click.ClickException(f"{stopped}; its last lines:\n{stopped.log}") from None

    console.print(insights_table(insights.compute(events), tally, len(events)))
    elapsed = time.monotonic() - started
    console.print(f"Done in {elapsed:.1f} s. `otel-bedrock report` reads {store}")
    if len(events) < request_count:
        raise click.ClickException(
            f"PostHog received {len(events)} events for {request_count} requests; "
            f"the recipe app's last lines:\n{app_log}"
        )
    if forward_to is not None:
        _report_forward(console, events, forward_to)


def _drive(
    console: Console, app_path: Path, store: Path, planned: Sequence[PlannedRequest]
) -> tuple[list[CapturedEvent], Tally, str]:
    """Run the emulators and the app, send ``planned``, and collect the events PostHog got.

    Returns:
        The Bedrock events received, what the app answered, and the app's last output lines.
    """
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    progress = Progress(*columns, TimeElapsedColumn(), console=console)
    with (
        BedrockEmulator() as bedrock,
        CaptureEmulator(accepted_keys={DEMO_KEY}, store_path=store) as capture,
        progress,
    ):
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        starting = progress.add_task("Starting the recipe app", total=1)
        with recipe_app(app_path, app_environment(bedrock, capture, port), base_url) as running:
            progress.advance(starting)
            try:
                tally = run_requests(progress, bedrock, base_url, planned)
            except OSError as error:
                raise AppStopped(f"the recipe app stopped answering ({error})", running) from error
            delivery = progress.add_task("Waiting for PostHog events", total=len(planned))
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while not capture.wait_for(len(planned), 0.1) and time.monotonic() < deadline:
                progress.update(delivery, completed=len(capture.events))
        # The app has exited normally, delivering at exit whatever it still held.
        capture.wait_for(len(planned), 1.0)
        events = [e for e in capture.events if e["event"] in EVENT_NAMES]
        progress.update(delivery, completed=len(events))

    return events, tally, running.log


class AppStopped(Exception):
    """The recipe app stopped answering in the middle of the run."""

    def __init__(self, message: str, running: RunningApp) -> None:
        super().__init__(message)
        self.running = running

    @property
    def log(self) -> str:
        """The app's last output lines (known once it was stopped)."""
        return self.running.log


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Let SIGTERM unwind like Ctrl-C, so the recipe app and emulators are stopped too."""

    def leave(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, leave)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report_forward(console: Console, events: Sequence[CapturedEvent], settings: Settings) -> None:
    """Copy the events to the user's PostHog project and say where to find them."""
    console.print(
        f"Sending the {len(events)} events to your PostHog project at {settings.posthog_host} "
        f"(POSTHOG_API_KEY is set; up to {FORWARD_SECONDS:.0f} s)..."
    )
    failed = forward(events, settings)
    if failed:
        raise click.ClickException(
            f"{failed} of {len(events)} events did not reach {settings.posthog_host}: check "
            "POSTHOG_HOST, POSTHOG_API_KEY and the network (the insights above come from the "
            "local emulator and are complete)"
        )
    console.print(
        f"Sent {len(events)} events to your PostHog project at {settings.posthog_host}: "
        "look for bedrock_completion and bedrock_error in Activity (or Data management, "
        "Events). `otel-bedrock dashboard` builds the tutorial's insights over them."
    )
