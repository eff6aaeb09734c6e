"""``otel-bedrock spool``: look at the delivery spool and drain it.

Each PostHog host has its own spool file in the data folder (see
:attr:`otel_bedrock.config.Settings.spool_path`); both commands find it from the same
settings as the exporter (``POSTHOG_HOST``, ``OTEL_BEDROCK_SPOOL_PATH``), or take ``--path``.
``drain --path`` needs the host too (``--host`` or ``POSTHOG_HOST``): a spool file does not
record it. ``drain`` also applies the exporter's spool bounds (``OTEL_BEDROCK_SPOOL_MAX_MB``,
``OTEL_BEDROCK_SPOOL_MAX_AGE_HOURS``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from otel_bedrock.config import Settings, load_settings
from otel_bedrock.delivery import PostHogDelivery
from otel_bedrock.delivery._counters import format_counters
from otel_bedrock.delivery.spool import Spool
from otel_bedrock.errors import ConfigError

_PATH = click.option(
    "--path", type=click.Path(dir_okay=False, path_type=Path), help="The spool file."
)
_KEY = click.option("--api-key", help="PostHog project API key (default: POSTHOG_API_KEY).")
_HOST = click.option("--host", help="PostHog host (default: POSTHOG_HOST).")


def _settings(api_key: str | None, host: str | None) -> Settings:
    try:
        return load_settings(api_key=api_key, host=host)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


def _spool_file(path: Path | None, settings: Settings) -> Path:
    if path is not None:
        return path
    if settings.spool_path is None:
        raise click.ClickException("the spool is switched off (OTEL_BEDROCK_SPOOL_PATH=off)")

    return settings.spool_path


@click.group(name="spool")
def spool_command() -> None:
    """Inspect or drain the spool of events waiting for PostHog."""


@spool_command.command()
@_PATH
@_KEY
@_HOST
def status(path: Path | None, api_key: str | None, host: str | None) -> None:
    """Print how many events the spool holds, their size, the oldest age and the claims."""
    file = _spool_file(path, _settings(api_key, host))
    if not file.exists():
        click.echo(f"path={file} rows=0 bytes=0 oldest_age_seconds=0 claimed=0 (no spool file)")
        return
    spool = Spool(file)
    try:
        state = spool.status()
    finally:
        spool.close()
    click.echo(
        f"path={file} rows={state.rows} bytes={state.bytes} "
        f"oldest_age_seconds={state.oldest_age_seconds:.0f} claimed={state.claimed}"
    )


@spool_command.command()
@_PATH
@_KEY
@_HOST
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to try.")
def drain(path: Path | None, api_key: str | None, host: str | None, timeout: float) -> None:
    """Send what the spool holds to PostHog and print the counters.

    Exits 1 when something is left, or was evicted or dropped.
    """
    if path is not None and host is None and not os.environ.get("POSTHOG_HOST"):
        raise click.ClickException(
            "a spool file does not say which PostHog host its events are for: give --host "
            "(or POSTHOG_HOST) with --path"
        )
    settings = _settings(api_key, host)
    file = _spool_file(path, settings)
    if not file.exists():
        click.echo(f"path={file} nothing to drain (no spool file)")
        return
    click.echo(f"draining {file} to {settings.posthog_host} for up to {timeout:.0f} s")
    if settings.posthog_api_key is None:
        raise click.ClickException("POSTHOG_API_KEY is not set; give --api-key or set it")
    delivery = PostHogDelivery(
        settings.posthog_api_key,
        settings.posthog_host,
        spool_path=file,
        shutdown_timeout=0,
        spool_max_bytes=max(1, int(settings.spool_max_mb * 1024 * 1024)),
        spool_max_age_seconds=settings.spool_max_age_hours * 3600,
    )
    delivered = delivery.flush(timeout)
    delivery.shutdown()
    values = delivery.counters.snapshot()
    left = Spool(file)
    try:
        rows = left.status().rows
    finally:
        left.close()
    click.echo(f"path={file} {format_counters(values)} left={rows}")
    if not delivered or rows or values["evicted"] or values["dropped"]:
        sys.exit(1)
