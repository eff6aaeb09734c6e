"""``otel-bedrock collector`` and ``python -m collector``: help, one-line configuration errors
with exit status 2, and a clear line when the collector extra is not installed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.cli import collector_command
from otel_bedrock.cli import main

ROOT = Path(__file__).resolve().parents[2]
# Settings that would otherwise come from the environment the tests run in.
CLEAN_ENV: dict[str, str | None] = {
    "POSTHOG_API_KEY": "phc_test",
    "POSTHOG_PROJECT_API_KEY": None,
    "OTEL_CONFIG_FILE": None,
    "OTEL_BEDROCK_SPOOL_PATH": "off",
}


def python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run Python in a separate process from the repository root."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_python_m_collector_help() -> None:
    """``python -m collector --help`` lists the flags."""
    done = python("-m", "collector", "--help")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: python -m collector [OPTIONS]")
    for flag in ("--host", "--http-port", "--grpc-port", "--token-file", "--config"):
        assert flag in done.stdout


def test_otel_bedrock_collector_help() -> None:
    """``otel-bedrock collector --help`` is the same command, listed by ``otel-bedrock``."""
    runner = CliRunner()

    listed = runner.invoke(main, ["--help"])
    helped = runner.invoke(main, ["collector", "--help"])

    assert listed.exit_code == 0
    assert "collector  Receive OTLP from any service" in listed.output
    assert helped.exit_code == 0
    assert "--content-wait" in helped.output


def test_without_the_collector_extra_one_clear_line() -> None:
    """Without aiohttp, ``otel-bedrock --help`` still works and the collector command says
    which extra to install, in one line."""
    block = "import sys; sys.modules['aiohttp'] = None; from otel_bedrock.cli import main; "

    helped = python("-c", block + "main(['--help'])")
    run = python("-c", block + "main(['collector'])", env={"POSTHOG_API_KEY": "phc_test"})

    assert helped.returncode == 0, helped.stderr
    assert "collector" in helped.stdout
    assert run.returncode == 1
    assert run.stderr == (
        "otel-bedrock collector needs the collector extra: "
        "pip install 'otel-bedrock[collector]' (missing: aiohttp)\n"
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--http-port", "70000"],
            {},
            "otel-bedrock collector configuration: http_port=70000: "
            "Input should be less than or equal to 65535",
        ),
        (
            [],
            {"OTEL_BEDROCK_COLLECTOR_RATE_LIMIT": "-1"},
            "otel-bedrock collector configuration: OTEL_BEDROCK_COLLECTOR_RATE_LIMIT='-1': "
            "Input should be greater than or equal to 0",
        ),
        (
            ["--burst", "5"],
            {},
            "otel-bedrock collector configuration: --burst / OTEL_BEDROCK_COLLECTOR_BURST=5 "
            "needs a rate: set --rate-limit / OTEL_BEDROCK_COLLECTOR_RATE_LIMIT too, or leave "
            "the burst out (there is no rate limit by default)",
        ),
        (
            ["--http-port", "4400"],
            {"OTEL_BEDROCK_COLLECTOR_GRPC_PORT": "4400"},
            "otel-bedrock collector configuration: --http-port / "
            "OTEL_BEDROCK_COLLECTOR_HTTP_PORT and --grpc-port / OTEL_BEDROCK_COLLECTOR_GRPC_PORT "
            "are both 4400: give each server its own port",
        ),
        (
            [],
            {"OTEL_BEDROCK_COLLECTOR_TOKEN": ""},
            "otel-bedrock collector configuration: OTEL_BEDROCK_COLLECTOR_TOKEN is set but "
            "empty; give the token, or unset the variable to accept requests without one",
        ),
        (
            ["--config", "/nonexistent/otel-config.yaml"],
            {},
            "otel-bedrock collector configuration: --config / OTEL_CONFIG_FILE: "
            "/nonexistent/otel-config.yaml: no such file",
        ),
        (
            [],
            {"OTEL_BEDROCK_SPOOL_PATH": "/proc/nonexistent/spool.sqlite3"},
            "OTEL_BEDROCK_SPOOL_PATH='/proc/nonexistent/spool.sqlite3': cannot create or write "
            "the spool file there; give a writable path, or off to keep events in memory only",
        ),
        (
            [],
            {"POSTHOG_API_KEY": None},
            "otel-bedrock collector configuration: POSTHOG_API_KEY is not set; give the PostHog "
            "project API key (phc_...) in the environment, or as api_key in the posthog block of "
            "the --config file",
        ),
    ],
)
def test_configuration_mistakes_are_one_line_and_exit_2(
    args: list[str], env: dict[str, str | None], message: str
) -> None:
    """A bad setting prints one line naming it, and the exit status is 2."""
    result = CliRunner().invoke(collector_command, args, env={**CLEAN_ENV, **env})

    assert result.exit_code == 2
    assert result.stderr == message + "\n"


def test_a_spool_without_room_for_two_requests_is_a_configuration_mistake(
    tmp_path: Path,
) -> None:
    """The collector keeps two requests' worth of the spool free; a spool smaller than twice
    that is refused at start, naming both settings and the least size that works."""
    env = {**CLEAN_ENV, "OTEL_BEDROCK_SPOOL_PATH": str(tmp_path / "spool.sqlite3")}

    small = CliRunner().invoke(
        collector_command, [], env={**env, "OTEL_BEDROCK_SPOOL_MAX_MB": "20"}
    )

    assert small.exit_code == 2
    assert small.stderr == (
        "otel-bedrock collector configuration: OTEL_BEDROCK_SPOOL_MAX_MB (spool_max_mb in a "
        "--config file) = 20 is too small for "
        "requests of up to 8388608 bytes (--max-request-bytes / "
        "OTEL_BEDROCK_COLLECTOR_MAX_REQUEST_BYTES): the collector keeps room in the spool for "
        "two whole requests, so that nothing it accepted is pushed out; give at least 32, or a "
        "smaller request limit\n"
    )


def test_a_configuration_file_that_is_not_yaml_is_one_line(tmp_path: Path) -> None:
    """A YAML syntax error is named in one line with the file, without the loader's
    traceback."""
    config = tmp_path / "otel-config.yaml"
    config.write_text('file_format: "1.0"\ntracer_provider: [\n  oops')

    env = {key: value for key, value in CLEAN_ENV.items() if value is not None}

    done = python("-m", "collector", "--config", str(config), env=env)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        f"otel-bedrock collector configuration file {config}: Failed to parse YAML: "
    )


def test_unreadable_token_file_is_a_configuration_mistake(tmp_path: Path) -> None:
    """A token file that is missing or empty is named, with exit status 2."""
    empty = tmp_path / "token"
    empty.write_text("\n")
    runner = CliRunner()

    missing = runner.invoke(
        collector_command, ["--token-file", str(tmp_path / "nope")], env=CLEAN_ENV
    )
    blank = runner.invoke(collector_command, ["--token-file", str(empty)], env=CLEAN_ENV)

    assert (missing.exit_code, blank.exit_code) == (2, 2)
    assert missing.stderr == (
        f"otel-bedrock collector configuration: --token-file {tmp_path / 'nope'}: "
        "No such file or directory\n"
    )
    assert blank.stderr == f"otel-bedrock collector configuration: --token-file {empty} is empty\n"


@pytest.mark.parametrize(("protocol", "other"), [("HTTP", "grpc"), ("gRPC", "http")])
def test_a_port_in_use_is_one_line(protocol: str, other: str) -> None:
    """When the port is taken the collector says so in one line (after its JSON log lines),
    naming the setting, and exits 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {key: value for key, value in CLEAN_ENV.items() if value is not None}
        flag = f"--{protocol.lower()}-port"

        done = python("-m", "collector", flag, str(port), f"--{other}-port", "0", env=env)

    assert done.returncode == 1
    *logs, line = done.stderr.splitlines()
    assert all(json.loads(log)["level"] in ("info", "warning") for log in logs)
    assert line == (
        f"otel-bedrock collector: cannot listen for OTLP/{protocol} on 127.0.0.1:{port} "
        f"({flag}, OTEL_BEDROCK_COLLECTOR_{protocol.upper()}_PORT): Address already in use"
    )


def test_a_host_that_does_not_resolve_names_the_host_setting() -> None:
    """A host name that does not resolve is blamed on --host, not on the port."""
    env = {key: value for key, value in CLEAN_ENV.items() if value is not None}

    done = python("-m", "collector", "--host", "no-such-host.invalid", env=env)

    assert done.returncode == 1
    line = done.stderr.splitlines()[-1]
    assert line.startswith(
        "otel-bedrock collector: cannot listen for OTLP/HTTP on no-such-host.invalid:4318 "
        "(--host, OTEL_BEDROCK_COLLECTOR_HOST): no such host ("
    )
