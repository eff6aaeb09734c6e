"""``otel-bedrock collector`` and ``python -m collector``: run the collector service.

Settings come from the flags, else the ``OTEL_BEDROCK_COLLECTOR_*`` environment variables
(see :mod:`collector.settings`); the PostHog side from the ``posthog`` exporter block of the
configuration file given by ``--config`` (or ``OTEL_CONFIG_FILE``), else from the same
environment variables as the in-process exporter (``POSTHOG_API_KEY``, ...).

A bad setting prints one line naming it and exits with status 2. The service logs JSON lines
on stderr (``--log-format console`` for people) and exits 0 after a graceful shutdown on
SIGTERM or SIGINT.

Only click and the settings are imported before the command runs, so that ``otel-bedrock
--help`` works without the ``collector`` extra installed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import NoReturn

import click

from collector.runtime import configure_logging, tune_gc
from collector.settings import env_name

EXTRA_MISSING = (
    "otel-bedrock collector needs the collector extra: pip install 'otel-bedrock[collector]' "
    "(missing: {name})"
)


def _fail(message: str, status: int) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(status)


def _read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as error:
        _fail(f"otel-bedrock collector configuration: --token-file {path}: {error.strerror}", 2)
    if not token:
        _fail(f"otel-bedrock collector configuration: --token-file {path} is empty", 2)

    return token


def _env(text: str, field: str) -> str:
    """A flag's help, naming the environment variable that sets it when the flag is not given."""
    return f"{text}. Env: {env_name(field)}."


@click.command(name="collector")
@click.option("--host", help=_env("Interface to listen on (default 127.0.0.1)", "host"))
@click.option(
    "--http-port", type=int, help=_env("OTLP/HTTP port (default 4318; 0 turns it off)", "http_port")
)
@click.option(
    "--grpc-port", type=int, help=_env("OTLP/gRPC port (default 4317; 0 turns it off)", "grpc_port")
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the bearer token clients must send; none by default. Env: "
    f"{env_name('token')} (the token itself).",
)
@click.option(
    "--max-request-bytes",
    type=int,
    help=_env("Largest request body, also decompressed (8 MiB)", "max_request_bytes"),
)
@click.option(
    "--rate-limit",
    type=float,
    help=_env("Requests per second accepted (default: no limit)", "rate_limit"),
)
@click.option(
    "--burst",
    type=int,
    help=_env("Requests accepted at once above the rate (with --rate-limit)", "burst"),
)
@click.option(
    "--content-wait",
    type=float,
    help=_env(
        "Seconds a span waits for its content log records when capture is on (default 2)",
        "content_wait",
    ),
)
@click.option(
    "--merge-wait",
    type=float,
    help=_env(
        "Seconds a span waits for a nested or enclosing span of the same call from another "
        "instrumentation (default 1)",
        "merge_wait",
    ),
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="otel-config.yaml with a posthog exporter block (env: OTEL_CONFIG_FILE).",
)
@click.option(
    "--delivery",
    type=click.Choice(["process", "thread"]),
    help=_env(
        "Send to PostHog from a child process (default; a core each for receiving and "
        "delivering) or from a thread of this one",
        "delivery",
    ),
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    default="json",
    show_default=True,
    help="Log lines on stderr.",
)
def collector_command(
    host: str | None,
    http_port: int | None,
    grpc_port: int | None,
    token_file: Path | None,
    max_request_bytes: int | None,
    rate_limit: float | None,
    burst: int | None,
    content_wait: float | None,
    merge_wait: float | None,
    config_file: Path | None,
    delivery: str | None,
    log_format: str,
) -> None:
    """Receive OTLP from any service and send its Bedrock calls to PostHog as events.

    OTLP/HTTP on /v1/traces and /v1/logs, OTLP/gRPC, /healthz, /readyz and /metrics. Stops
    gracefully on SIGTERM or SIGINT, delivering what it holds first.
    """
    try:
        from collector.delivery import DeliveryProcess
        from collector.pipeline import BATCH_SIZE, Intake
        from collector.server import Collector, serve
        from collector.settings import load_collector_settings, posthog_settings, spool_reserve
        from otel_bedrock.errors import ConfigError
    except ImportError as error:
        _fail(EXTRA_MISSING.format(name=error.name or error), 1)

    flags = {
        "host": host,
        "http_port": http_port,
        "grpc_port": grpc_port,
        "token": _read_token(token_file),
        "max_request_bytes": max_request_bytes,
        "rate_limit": rate_limit,
        "burst": burst,
        "content_wait": content_wait,
        "merge_wait": merge_wait,
        "config_file": config_file,
        "delivery": delivery,
    }
    try:
        settings = load_collector_settings(**flags)
        posthog = posthog_settings(settings)
        # Also where a spool path that cannot be written is found (its property raises).
        reserve = spool_reserve(settings, posthog)
        if posthog.posthog_api_key is None:
            raise ConfigError(
                "otel-bedrock collector configuration: POSTHOG_API_KEY is not set; give the "
                "PostHog project API key (phc_...) in the environment, or as api_key in the "
                "posthog block of the --config file"
            )
    except ConfigError as error:
        _fail(str(error), 2)

    configure_logging(log_format)
    process = None
    try:
        if settings.delivery == "process":
            process = DeliveryProcess(
                posthog,
                batch_size=BATCH_SIZE,
                log_format=log_format,
                max_buffer=posthog.max_queue,
                spool_reserve_bytes=reserve,
            )
        intake = Intake(
            posthog,
            content_wait=settings.content_wait,
            merge_wait=settings.merge_wait,
            delivery=process,
            spool_reserve_bytes=reserve,
        )
    except ConfigError as error:
        if process is not None:
            process.shutdown(0.0)
        _fail(str(error), 2)
    except RuntimeError as error:  # the delivery process did not start
        _fail(str(error), 1)
    intake.exporter.preload_prices()  # before the first request, not during it
    tune_gc()
    collector = Collector(intake, settings, shutdown_timeout=posthog.shutdown_timeout)
    spool = posthog.spool_path
    try:
        asyncio.run(
            serve(
                collector,
                posthog_host=posthog.posthog_host,
                spool=str(spool) if spool is not None else "off",
                content_capture=posthog.content_capture,
                content_wait=settings.content_wait,
                merge_wait=settings.merge_wait,
                event_schema=posthog.event_schema,
            )
        )
    except OSError as error:
        intake.shutdown(0.0)
        _fail(f"otel-bedrock collector: {error}", 1)
