"""The family registry maps provider segments to readers and falls back to the generic one."""

from __future__ import annotations

import logging

import pytest

from otel_bedrock.families import family_for, known_providers


@pytest.mark.parametrize(
    ("provider", "name"),
    [
        ("anthropic", "anthropic"),
        ("meta", "meta"),
        ("amazon", "amazon"),
        ("cohere", "cohere"),
        ("mistral", "mistral"),
        ("ai21", "ai21"),
        ("deepseek", "openai-style"),
        ("openai", "openai-style"),
        ("qwen", "openai-style"),
        ("writer", "openai-style"),
        ("moonshot", "openai-style"),
        ("zai", "openai-style"),
    ],
)
def test_known_provider_gets_its_family(provider: str, name: str) -> None:
    """Each known provider segment maps to the reader written for its family."""
    assert family_for(provider).name == name


def test_same_family_object_is_reused() -> None:
    """Two look-ups of one provider return the same shared reader."""
    assert family_for("qwen") is family_for("qwen")
    assert family_for("qwen") is family_for("writer")


def test_provider_case_does_not_matter() -> None:
    """A provider segment in capitals finds the same family."""
    assert family_for("Anthropic") is family_for("anthropic")


def test_unknown_provider_gets_generic_and_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """An unknown provider gets the generic reader and one warning, however often it is seen."""
    with caplog.at_level(logging.WARNING, logger="otel_bedrock.families"):
        first = family_for("acme-test-only")
        second = family_for("acme-test-only")

    assert first.name == "generic"
    assert second is first
    warnings = [r for r in caplog.records if "acme-test-only" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_missing_provider_gets_generic_without_warning(caplog: pytest.LogCaptureFixture) -> None:
    """No provider (an imported model's ARN) gets the generic reader and no warning."""
    with caplog.at_level(logging.WARNING, logger="otel_bedrock.families"):
        family = family_for(None)

    assert family.name == "generic"
    assert caplog.records == []


@pytest.mark.parametrize("provider", ["anthropic", "meta", "amazon", "qwen", "acme-test-only"])
@pytest.mark.parametrize("collect_text", [True, False])
def test_stream_state_tells_whether_it_keeps_text(provider: str, collect_text: bool) -> None:
    """A new stream state says whether it keeps text, as it was asked to."""
    state = family_for(provider).new_stream_state(None, collect_text)

    assert state.collect_text is collect_text


def test_known_providers_lists_the_registry() -> None:
    """The registry names the providers that have a reader of their own."""
    assert {"anthropic", "meta", "amazon", "cohere", "mistral", "ai21"} <= known_providers()
    assert "acme" not in known_providers()
