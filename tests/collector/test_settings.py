"""Collector settings, and the PostHog settings read from the declarative configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.settings import (
    load_collector_settings,
    load_posthog_block,
    posthog_settings,
)
from otel_bedrock.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_VARIABLES = (
    "HOST",
    "HTTP_PORT",
    "GRPC_PORT",
    "TOKEN",
    "MAX_REQUEST_BYTES",
    "RATE_LIMIT",
    "BURST",
    "CONTENT_WAIT",
    "MERGE_WAIT",
    "CONFIG_FILE",
    "DELIVERY",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No collector or PostHog setting from the surrounding environment."""
    for name in COLLECTOR_VARIABLES:
        monkeypatch.delenv(f"OTEL_BEDROCK_COLLECTOR_{name}", raising=False)
    for name in (
        "OTEL_CONFIG_FILE",
        "POSTHOG_API_KEY",
        "POSTHOG_HOST",
        "OTEL_BEDROCK_EVENT_SCHEMA",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_listen_on_loopback() -> None:
    """By default: loopback, the OTLP ports, no token, 8 MiB, no rate limit, 2 s content wait."""
    settings = load_collector_settings()

    assert settings.host == "127.0.0.1"
    assert (settings.http_port, settings.grpc_port) == (4318, 4317)
    assert settings.token is None
    assert settings.max_request_bytes == 8 * 1024 * 1024
    assert settings.rate_limit == 0
    assert settings.content_wait == 2.0
    assert settings.config_file is None
    assert settings.delivery == "process"


def test_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each setting has its variable; a keyword (a command-line flag) wins over it."""
    monkeypatch.setenv("OTEL_BEDROCK_COLLECTOR_HOST", "0.0.0.0")
    monkeypatch.setenv("OTEL_BEDROCK_COLLECTOR_GRPC_PORT", "0")
    monkeypatch.setenv("OTEL_BEDROCK_COLLECTOR_TOKEN", "s3cret")
    monkeypatch.setenv("OTEL_BEDROCK_COLLECTOR_RATE_LIMIT", "250")
    monkeypatch.setenv("OTEL_BEDROCK_COLLECTOR_CONTENT_WAIT", "0.5")
    monkeypatch.setenv("OTEL_BEDROCK_COLLECTOR_DELIVERY", "thread")

    settings = load_collector_settings(http_port=9000, host=None)

    assert settings.host == "0.0.0.0"
    assert (settings.http_port, settings.grpc_port) == (9000, 0)
    assert settings.token is not None and settings.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.rate_limit == 250
    assert settings.rate_burst == 250
    assert settings.content_wait == 0.5
    assert settings.delivery == "thread"


def test_burst_defaults_to_one_second_of_rate() -> None:
    """Burst is one second's worth of the rate, at least one; an explicit burst wins."""
    assert load_collector_settings(rate_limit=0.2).rate_burst == 1
    assert load_collector_settings(rate_limit=40, burst=5).rate_burst == 5


def test_config_file_from_otel_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_CONFIG_FILE names the configuration file unless the collector's own variable does."""
    monkeypatch.setenv("OTEL_CONFIG_FILE", str(ROOT / "otel-config.yaml"))

    assert load_collector_settings().config_file == ROOT / "otel-config.yaml"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"http_port": 70000}, "http_port=70000"),
        ({"http_port": 0, "grpc_port": 0}, "both 0: nothing would listen"),
        ({"max_request_bytes": 0}, "max_request_bytes=0"),
        ({"rate_limit": -1}, "rate_limit=-1"),
        ({"content_wait": 600}, "content_wait=600"),
        ({"config_file": "/no/such/otel-config.yaml"}, "no such file"),
        ({"hots": "0.0.0.0"}, "unknown setting 'hots'"),
        ({"delivery": "fork"}, "delivery='fork'"),
    ],
)
def test_bad_settings_fail_naming_them(overrides: dict[str, object], message: str) -> None:
    """A bad value raises ConfigError naming the setting as it was given."""
    with pytest.raises(ConfigError, match="otel-bedrock collector configuration") as raised:
        load_collector_settings(**overrides)

    assert message in str(raised.value)


def test_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad environment value is reported by its variable's name."""
    monkeypatch.setenv("OTEL_BEDROCK_COLLECTOR_GRPC_PORT", "grpc")

    with pytest.raises(ConfigError, match="OTEL_BEDROCK_COLLECTOR_GRPC_PORT='grpc'"):
        load_collector_settings()


def test_blank_token_is_refused_without_showing_it() -> None:
    """A token of spaces is an error, and the message does not echo tokens."""
    with pytest.raises(ConfigError, match="TOKEN is blank"):
        load_collector_settings(token="   ")
    with pytest.raises(ConfigError) as raised:
        load_collector_settings(token="s3cret", http_port=-1)
    assert "s3cret" not in str(raised.value)


def test_posthog_block_of_the_shipped_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's otel-config.yaml gives its posthog keys, ${VAR:-default} resolved."""
    monkeypatch.setenv("POSTHOG_API_KEY", "phc_fromenv")

    block = load_posthog_block(ROOT / "otel-config.yaml")

    assert block == {
        "api_key": "phc_fromenv",
        "host": "https://us.i.posthog.com",
        "event_schema": "bedrock",
        "capture_content": False,
        "max_content_chars": 16000,
    }


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otel-config.yaml"
    path.write_text(text)
    return path


SIMPLE = """
file_format: "1.0"
tracer_provider:
  processors:
    - simple:
        exporter:
          console: {}
    - simple:
        exporter:
          posthog:
            api_key: ${TEST_POSTHOG_KEY}
            host: ${TEST_POSTHOG_HOST:-http://127.0.0.1:9}
            identity_keys: [tenant.user, app.account_id]
            event_schema: ai
"""


def test_posthog_block_under_a_simple_processor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A simple processor's posthog exporter is found; its keys give the Settings."""
    monkeypatch.setenv("TEST_POSTHOG_KEY", "phc_file")
    monkeypatch.delenv("TEST_POSTHOG_HOST", raising=False)
    path = write(tmp_path, SIMPLE)
    collector = load_collector_settings(config_file=str(path))

    settings = posthog_settings(collector)

    assert settings.posthog_api_key == "phc_file"
    assert settings.posthog_host == "http://127.0.0.1:9"
    assert settings.identity_keys == ("tenant.user", "app.account_id")
    assert settings.event_schema == "ai"


def test_without_a_file_posthog_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No configuration file: the PostHog settings are the environment's."""
    monkeypatch.setenv("POSTHOG_API_KEY", "phc_env")

    assert posthog_settings(load_collector_settings()).posthog_api_key == "phc_env"


def test_bad_value_in_the_file_names_setting_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value in the posthog block is reported with its key and the file."""
    monkeypatch.setenv("TEST_POSTHOG_KEY", "phc_file")
    path = write(tmp_path, SIMPLE.replace("event_schema: ai", "event_schema: json"))

    with pytest.raises(ConfigError, match="event_schema='json'") as raised:
        posthog_settings(load_collector_settings(config_file=path))

    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'file_format: "1.0"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n'
            "          console: {}\n",
            "no posthog exporter",
        ),
        ('file_format: "1.0"\n', "no posthog exporter"),
        ("file_format: [unclosed\n", "Failed to parse YAML"),
        ('file_format: "9.0"\n', "Unsupported file_format"),
        (
            'file_format: "1.0"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n'
            "          posthog: [1, 2]\n",
            "is not of type 'object'",
        ),
    ],
    ids=["other-exporter", "no-provider", "yaml", "version", "not-a-mapping"],
)
def test_unusable_file_is_named(tmp_path: Path, text: str, message: str) -> None:
    """A file without a usable posthog block raises ConfigError naming the file."""
    path = write(tmp_path, text)

    with pytest.raises(ConfigError, match=message) as raised:
        load_posthog_block(path)

    assert str(path) in str(raised.value)
