"""The ``otel-bedrock`` command."""

from __future__ import annotations

import logging
import sys

import click

from otel_bedrock import __version__


@click.group()
@click.version_option(__version__, prog_name="otel-bedrock")
@click.option(
    "-v", "--verbose", is_flag=True, help="Log what otel-bedrock does, on stderr (never text)."
)
def main(verbose: bool) -> None:
    """Turn AWS Bedrock calls into PostHog events, through OpenTelemetry."""
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    if verbose:
        # Ours only: botocore's DEBUG lines would print request and response bodies.
        logging.getLogger("otel_bedrock").setLevel(logging.DEBUG)


@main.command()
@click.option(
    "--capture-content",
    is_flag=True,
    help="Put prompt and generation text in the events.",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def replay(capture_content: bool, paths: tuple[str, ...]) -> None:
    """Replay recorded Bedrock exchanges and print the PostHog events they produce.

    PATHS are exchange files, or folders of *.json exchange files. Each event is printed as one
    JSON line with the keys source, event, distinct_id and properties.
    """
    from otel_bedrock.replay import replay as run_replay

    try:
        events = run_replay(paths, capture_content=capture_content)
    except (OSError, ValueError, KeyError) as error:
        raise click.ClickException(f"cannot replay: {error}") from error
    for event in events:
        click.echo(event.to_json())


def _add_commands() -> None:
    # Imports click and the settings only: the collector's servers load when it runs.
    from collector.cli import collector_command
    from otel_bedrock.dashboard import dashboard_command
    from otel_bedrock.delivery_cli import spool_command
    from otel_bedrock.demo import demo_command
    from otel_bedrock.report import report_command
    from otel_bedrock.testing.cli import emulators_command

    for command in (
        demo_command,
        report_command,
        dashboard_command,
        spool_command,
        collector_command,
        emulators_command,
    ):
        main.add_command(command)


_add_commands()


if __name__ == "__main__":
    main()
