"""``otel-bedrock emulators``: both emulators in the foreground, for a program run beside them.

Prints the environment that points an unchanged boto3 program and the PostHog exporter at the
emulators, then writes each event the capture emulator accepts as one JSON line on stdout (and
to ``--events FILE`` when given) until interrupted.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import click

from otel_bedrock.testing.bedrock import BedrockEmulator
from otel_bedrock.testing.capture import CaptureEmulator

TEST_KEY = "phc_test"


def environment(
    bedrock: BedrockEmulator, capture: CaptureEmulator, api_key: str = TEST_KEY
) -> dict[str, str]:
    """The variables that send boto3 and the exporter to the emulators (dummy credentials)."""
    return {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.endpoint_url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POSTHOG_API_KEY": api_key,
        "POSTHOG_HOST": capture.url,
        "OTEL_BEDROCK_SPOOL_PATH": "off",
    }


@click.command(name="emulators")
@click.option("--bedrock-port", type=int, default=0, help="Port of the Bedrock emulator.")
@click.option("--posthog-port", type=int, default=0, help="Port of the capture emulator.")
@click.option(
    "--events",
    "events_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also append each accepted event to this file, one JSON line each.",
)
@click.option(
    "--api-key",
    help="Accept only this project key (others get 401, as from PostHog); by default any phc_ key.",
)
def emulators_command(
    bedrock_port: int, posthog_port: int, events_file: Path | None, api_key: str | None
) -> None:
    """Run the Bedrock and PostHog capture emulators until interrupted (Ctrl-C).

    Run your program in another terminal with the variables printed first; every event
    PostHog would have received is printed as a JSON line.
    """
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with (
        BedrockEmulator(port=bedrock_port) as bedrock,
        CaptureEmulator(
            store_path=events_file,
            port=posthog_port,
            accepted_keys=None if api_key is None else [api_key],
        ) as capture,
    ):
        click.echo("# In the shell that runs your program:", err=True)
        for name, value in environment(bedrock, capture, api_key or TEST_KEY).items():
            click.echo(f"export {name}={value}", err=True)
        click.echo("# Events PostHog received, one JSON line each (Ctrl-C stops):", err=True)
        shown = 0
        try:
            while not stop.is_set():
                capture.wait_for(shown + 1, timeout=0.2)
                for event in capture.events[shown:]:
                    click.echo(_line(event))
                    shown += 1
        except KeyboardInterrupt:
            pass


def _line(event: Any) -> str:
    return json.dumps(
        {
            "event": event.get("event"),
            "distinct_id": event.get("distinct_id"),
            "properties": event.get("properties", {}),
        },
        sort_keys=True,
        default=str,
    )
