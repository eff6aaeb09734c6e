"""Settings: defaults, the environment, and errors that name the setting."""

from __future__ import annotations

import pytest

from otel_bedrock.config import load_settings
from otel_bedrock.errors import ConfigError
from otel_bedrock.exporter import PostHogSpanExporter


def test_defaults_need_only_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """With only POSTHOG_API_KEY set, the rest are the documented defaults."""
    monkeypatch.setenv("POSTHOG_API_KEY", "phc_abc")

    settings = load_settings()

    assert settings.posthog_api_key == "phc_abc"
    assert settings.posthog_host == "https://us.i.posthog.com"
    assert settings.content_capture is False
    assert settings.event_schema == "bedrock"
    assert settings.max_content_chars == 16_000


def test_genai_capture_variable_turns_content_capture_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenTelemetry's own content-capture variable is honoured."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")

    assert load_settings().content_capture is True


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A keyword argument (code or configuration file) wins over the environment."""
    monkeypatch.setenv("POSTHOG_HOST", "https://eu.i.posthog.com")

    assert load_settings(host="http://127.0.0.1:9/").posthog_host == "http://127.0.0.1:9"


def test_empty_keyword_counts_as_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset ${VAR} in a configuration file arrives as '' and is ignored."""
    monkeypatch.setenv("POSTHOG_API_KEY", "phc_env")

    assert load_settings(api_key="").posthog_api_key == "phc_env"


def test_inference_profile_map_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_BEDROCK_INFERENCE_PROFILES maps profile ARNs to base models."""
    arn = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc"
    monkeypatch.setenv("OTEL_BEDROCK_INFERENCE_PROFILES", f"{arn}=meta.llama3-1-8b-instruct-v1:0")

    assert load_settings().inference_profiles == {arn: "meta.llama3-1-8b-instruct-v1:0"}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("POSTHOG_API_KEY", "phx_personal", "personal API key"),
        ("POSTHOG_API_KEY", "sk-ant-api03-abcdef", "not a PostHog project API key"),
        ("POSTHOG_API_KEY", "phc_", "not a PostHog project API key"),
        ("POSTHOG_HOST", "eu.posthog.com", "must be a URL"),
        ("OTEL_BEDROCK_CAPTURE_CONTENT", "maybe", "OTEL_BEDROCK_CAPTURE_CONTENT='maybe'"),
        ("OTEL_BEDROCK_EVENT_SCHEMA", "json", "'bedrock', 'ai' or 'both'"),
        ("OTEL_BEDROCK_MAX_CONTENT_CHARS", "-5", "OTEL_BEDROCK_MAX_CONTENT_CHARS='-5'"),
        ("OTEL_BEDROCK_PRICES_FILE", "/no/such/prices.toml", "no such file"),
        ("OTEL_BEDROCK_INFERENCE_PROFILES", "just-an-arn", "ARN=model_id"),
    ],
)
def test_bad_value_fails_at_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """A bad environment value raises ConfigError whose message names the problem."""
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError, match="otel-bedrock configuration") as raised:
        load_settings()

    assert message in str(raised.value)


def test_exporter_without_a_key_says_which_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporter refuses to start without a project key and names POSTHOG_API_KEY."""
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    monkeypatch.delenv("POSTHOG_PROJECT_API_KEY", raising=False)

    with pytest.raises(ConfigError, match="POSTHOG_API_KEY is not set"):
        PostHogSpanExporter()


def test_key_in_an_error_message_is_masked() -> None:
    """A refused key is named by its first characters only, where it was given."""
    with pytest.raises(ConfigError) as raised:
        load_settings(api_key="phx_0123456789secret")

    assert "api_key='phx_...'" in str(raised.value)
    assert "secret" not in str(raised.value)


def test_unknown_keyword_is_an_error() -> None:
    """A misspelt setting in code or a configuration file is reported, not ignored."""
    with pytest.raises(ConfigError, match="unknown setting 'capture_contents'"):
        load_settings(capture_contents=True)


def test_a_services_own_short_variables_are_not_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOST, API_KEY or CAPTURE_CONTENT in a service's environment never reach our settings."""
    monkeypatch.setenv("HOST", "127.0.0.1")
    monkeypatch.setenv("API_KEY", "sk-not-posthog")
    monkeypatch.setenv("CAPTURE_CONTENT", "true")
    monkeypatch.setenv("posthog_host", "lowercase-is-not-ours")
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    monkeypatch.delenv("POSTHOG_HOST", raising=False)

    settings = load_settings()

    assert settings.posthog_api_key is None
    assert settings.posthog_host == "https://us.i.posthog.com"
    assert settings.content_capture is False


def test_identity_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_BEDROCK_IDENTITY_KEYS is a comma-separated list of attribute names."""
    monkeypatch.setenv("OTEL_BEDROCK_IDENTITY_KEYS", " tenant.user ,, app.account_id")

    assert load_settings().identity_keys == ("tenant.user", "app.account_id")


def test_identity_keys_as_a_list_in_a_configuration_file() -> None:
    """A YAML list of attribute names is read as given; none by default."""
    assert load_settings(identity_keys=["tenant.user"]).identity_keys == ("tenant.user",)
    assert load_settings().identity_keys == ()


def test_identity_keys_must_be_names() -> None:
    """A number among the identity keys is refused, naming the setting."""
    with pytest.raises(ConfigError, match="identity_keys=.*expected attribute names"):
        load_settings(identity_keys=["tenant.user", 7])
