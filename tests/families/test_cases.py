"""The shared cases' InvokeModel bodies and streams give the values their expectations name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import EventStreamError

from otel_bedrock.families import ResponseFacts, family_for
from otel_bedrock.usage import Usage
from tests.families.recorded import case, chunk_payloads, invoke_body

# Case file -> (provider, base id), as the model id parser would give them.
CASE_MODELS: dict[str, tuple[str, str]] = {
    "mistral-invoke-headers-only.json": ("mistral", "mistral.mistral-large-2407-v1:0"),
    "titan-invoke-tokens.json": ("amazon", "amazon.titan-text-express-v1"),
    "claude-invoke-stream-cache.json": ("anthropic", "anthropic.claude-3-5-haiku-20241022-v1:0"),
    "llama-invoke-stream.json": ("meta", "meta.llama3-1-8b-instruct-v1:0"),
}


def _expected_facts(properties: dict[str, Any]) -> dict[str, Any]:
    names = {
        "prompt_token_count": "input_tokens",
        "generation_token_count": "output_tokens",
        "cache_read_token_count": "cache_read_tokens",
        "cache_write_token_count": "cache_write_tokens",
        "stop_reason": "stop_reason",
    }

    return {names[key]: value for key, value in properties.items() if key in names}


def _actual(facts: ResponseFacts, keys: set[str]) -> dict[str, Any]:
    values = {
        "input_tokens": facts.usage.input_tokens,
        "output_tokens": facts.usage.output_tokens,
        "cache_read_tokens": facts.usage.cache_read_tokens,
        "cache_write_tokens": facts.usage.cache_write_tokens,
        "stop_reason": facts.stop_reason,
    }

    return {key: values[key] for key in keys}


def test_titan_case_body() -> None:
    """The Titan case body gives the tokens and stop reason the case expects."""
    record = case("titan-invoke-tokens.json")
    provider, base_id = CASE_MODELS["titan-invoke-tokens.json"]
    facts = family_for(provider).parse_body(invoke_body(record), base_id)
    expected = _expected_facts(record["expected"]["properties"])

    assert _actual(facts, set(expected)) == expected
    assert facts.text == "Omelette."


def test_mistral_case_body_has_no_counts() -> None:
    """The Mistral case body gives its stop reason and text but no token counts at all."""
    record = case("mistral-invoke-headers-only.json")
    provider, base_id = CASE_MODELS["mistral-invoke-headers-only.json"]
    facts = family_for(provider).parse_body(invoke_body(record), base_id)

    assert facts == ResponseFacts(Usage(), "stop", "Spinach frittata.")
    assert facts.stop_reason == record["expected"]["properties"]["stop_reason"]


@pytest.mark.parametrize("name", ["claude-invoke-stream-cache.json", "llama-invoke-stream.json"])
def test_stream_case(name: str) -> None:
    """A case's InvokeModel stream gives the tokens and stop reason the case expects."""
    record = case(name)
    provider, base_id = CASE_MODELS[name]
    state = family_for(provider).new_stream_state(base_id)
    for payload in chunk_payloads(record):
        state.observe_chunk(json.loads(payload))
    expected = _expected_facts(record["expected"]["properties"])

    assert _actual(state.facts(), set(expected)) == expected


def test_claude_stream_case_keeps_metrics_cache_write() -> None:
    """The Claude stream case reports the zero cache write that its metrics hold."""
    provider, base_id = CASE_MODELS["claude-invoke-stream-cache.json"]
    state = family_for(provider).new_stream_state(base_id)
    for payload in chunk_payloads(case("claude-invoke-stream-cache.json")):
        state.observe_chunk(json.loads(payload))

    assert state.facts().usage == Usage(12, 40, 1000, 0)


def test_llama_stream_case_text() -> None:
    """The Llama stream case's generation pieces join into the whole answer."""
    state = family_for("meta").new_stream_state("meta.llama3-1-8b-instruct-v1:0", True)
    for payload in chunk_payloads(case("llama-invoke-stream.json")):
        state.observe_chunk(json.loads(payload))

    assert state.facts() == ResponseFacts(Usage(12, 3), "stop", "Hello there!")


def test_stream_cut_by_throttling_keeps_what_came() -> None:
    """A Claude stream cut by a throttling event keeps the input count of message_start only."""
    state = family_for("anthropic").new_stream_state(
        "anthropic.claude-3-5-haiku-20241022-v1:0", collect_text=True
    )
    with pytest.raises(EventStreamError):
        for payload in chunk_payloads(case("invoke-stream-midstream-throttle.json")):
            state.observe_chunk(json.loads(payload))

    assert state.facts() == ResponseFacts(Usage(input_tokens=16), None, "Spinach")
