"""Tests for otel_bedrock.model_ids."""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import quote

import pytest

from otel_bedrock.model_ids import ModelKind, ModelRef, parse_model_id, resolve_model
from tests.conftest import BUNDLED

APP_PROFILE = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
CUSTOM = "arn:aws-cn:bedrock:cn-north-1:789:custom-model/amazon.titan-text-express-v1:0:8k/q1w2"
SAGEMAKER = "arn:aws:sagemaker:us-east-1:767398002385:endpoint/endpoint-quick-start-idr7y"

FM = ModelKind.FOUNDATION_MODEL
IP = ModelKind.INFERENCE_PROFILE

# Every model id in the shared recordings and cases: (kind, base_id, provider, geo).
RECORDED: dict[str, tuple[ModelKind, str | None, str | None, str | None]] = {
    "ai21.j2-mid-v1": (FM, "ai21.j2-mid-v1", "ai21", None),
    "amazon.nova-lite-v1:0": (FM, "amazon.nova-lite-v1:0", "amazon", None),
    "amazon.nova-pro-v1:0": (FM, "amazon.nova-pro-v1:0", "amazon", None),
    "amazon.titan-text-express-v1": (FM, "amazon.titan-text-express-v1", "amazon", None),
    "anthropic.claude-3-5-haiku-20241022-v1:0": (
        FM,
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "anthropic",
        None,
    ),
    "anthropic.claude-3-sonnet-20240229-v1:0": (
        FM,
        "anthropic.claude-3-sonnet-20240229-v1:0",
        "anthropic",
        None,
    ),
    "anthropic.claude-sonnet-4-20250514-v1:0": (
        FM,
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "anthropic",
        None,
    ),
    "anthropic.claude-v2": (FM, "anthropic.claude-v2", "anthropic", None),
    "anthropic.claude-v2:1": (FM, "anthropic.claude-v2:1", "anthropic", None),
    APP_PROFILE: (ModelKind.APPLICATION_INFERENCE_PROFILE, None, None, None),
    SAGEMAKER: (ModelKind.MARKETPLACE, None, None, None),
    "cohere.command-text-v14": (FM, "cohere.command-text-v14", "cohere", None),
    "meta.llama3-1-8b-instruct-v1:0": (FM, "meta.llama3-1-8b-instruct-v1:0", "meta", None),
    "meta.llama3-2-1b-instruct-v1:0": (FM, "meta.llama3-2-1b-instruct-v1:0", "meta", None),
    "mistral.mistral-large-2407-v1:0": (FM, "mistral.mistral-large-2407-v1:0", "mistral", None),
    "openai.gpt-oss-120b-1:0": (FM, "openai.gpt-oss-120b-1:0", "openai", None),
    "qwen.qwen3-32b-v1:0": (FM, "qwen.qwen3-32b-v1:0", "qwen", None),
    "us.amazon.nova-2-lite-v1:0": (IP, "amazon.nova-2-lite-v1:0", "amazon", "us"),
    "us.amazon.nova-lite-v1:0": (IP, "amazon.nova-lite-v1:0", "amazon", "us"),
    "us.amazon.nova-micro-v1:0": (IP, "amazon.nova-micro-v1:0", "amazon", "us"),
    "us.amazon.nova-pro-v1:0": (IP, "amazon.nova-pro-v1:0", "amazon", "us"),
    "us.anthropic.claude-3-5-haiku-20241022-v1:0": (
        IP,
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "anthropic",
        "us",
    ),
    "us.anthropic.claude-3-7-sonnet-20250219-v1:0": (
        IP,
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "anthropic",
        "us",
    ),
    "us.anthropic.claude-sonnet-4-20250514-v1:0": (
        IP,
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "anthropic",
        "us",
    ),
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0": (
        IP,
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic",
        "us",
    ),
    "us.anthropic.claude-sonnet-4-6": (IP, "anthropic.claude-sonnet-4-6", "anthropic", "us"),
    "us.deepseek.r1-v1:0": (IP, "deepseek.r1-v1:0", "deepseek", "us"),
    "us.does-not-exist-model-v1:0": (IP, "does-not-exist-model-v1:0", None, "us"),
    "us.meta.llama4-maverick-17b-instruct-v1:0": (
        IP,
        "meta.llama4-maverick-17b-instruct-v1:0",
        "meta",
        "us",
    ),
    "us.mistral.pixtral-large-2502-v1:0": (IP, "mistral.pixtral-large-2502-v1:0", "mistral", "us"),
    "us.writer.palmyra-x4-v1:0": (IP, "writer.palmyra-x4-v1:0", "writer", "us"),
}


def _model_ids(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["model_id"]] if isinstance(node.get("model_id"), str) else []
        return found + [m for value in node.values() for m in _model_ids(value)]
    if isinstance(node, list):
        return [m for value in node for m in _model_ids(value)]

    return []


def _bundled_model_ids() -> list[str]:
    files = sorted(BUNDLED.glob("*/*.json"))
    ids = {m for path in files for m in _model_ids(json.loads(path.read_text("utf-8")))}

    return sorted(ids)


def test_bundled_files_hold_model_ids() -> None:
    """The bundled recordings and cases hold exactly the model ids listed in this module."""
    assert _bundled_model_ids() == sorted(RECORDED)


@pytest.mark.parametrize("raw", _bundled_model_ids())
def test_recorded_model_ids_parse(raw: str) -> None:
    """Every model id from the bundled recordings parses to its expected kind and base id."""
    ref = parse_model_id(raw)

    assert (ref.kind, ref.base_id, ref.provider, ref.geo) == RECORDED[raw]
    assert ref.raw == raw


@pytest.mark.parametrize(
    ("geo", "base_id"),
    [
        ("eu", "anthropic.claude-sonnet-4-6"),
        ("apac", "amazon.nova-pro-v1:0"),
        ("jp", "anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("au", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("ca", "meta.llama3-3-70b-instruct-v1:0"),
        ("us-gov", "anthropic.claude-3-5-haiku-20241022-v1:0"),
        ("global", "anthropic.claude-sonnet-4-6"),
        ("mx", "anthropic.claude-sonnet-4-6"),
        ("latam", "zai.glm-5.3"),
        ("eu-sov", "amazon.nova-lite-v1:0"),
    ],
)
def test_geo_profiles(geo: str, base_id: str) -> None:
    """A system inference profile id, known geography or new, gives its geo and bare model id."""
    raw = f"{geo}.{base_id}"
    ref = parse_model_id(raw)

    assert (ref.kind, ref.geo, ref.base_id) == (IP, geo, base_id)
    assert ref.profile_id == raw


def test_unknown_prefix_before_unknown_provider_is_not_a_geo() -> None:
    """A short first segment followed by no known provider is read as a provider, not a geo."""
    ref = parse_model_id("xx.foo.bar-v1:0")

    assert (ref.kind, ref.geo, ref.base_id, ref.provider) == (FM, None, "xx.foo.bar-v1:0", "xx")


def test_unknown_provider_segment_is_kept() -> None:
    """A bare id from a provider not known here still gives its provider segment."""
    ref = parse_model_id("minimax.minimax-m2")

    assert (ref.kind, ref.provider, ref.geo) == (FM, "minimax", None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-1-8b-instruct-v1:0",
            ModelRef(
                "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-1-8b-instruct-v1:0",
                "meta.llama3-1-8b-instruct-v1:0",
                "meta",
                None,
                FM,
                "us-east-1",
                None,
            ),
        ),
        (
            "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-sonnet-4-6",
            ModelRef(
                "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-sonnet-4-6",
                "anthropic.claude-sonnet-4-6",
                "anthropic",
                "us",
                IP,
                "us-east-1",
                "123",
            ),
        ),
        (
            APP_PROFILE,
            ModelRef(
                APP_PROFILE,
                None,
                None,
                None,
                ModelKind.APPLICATION_INFERENCE_PROFILE,
                "eu-west-1",
                "123456789012",
            ),
        ),
        (
            "arn:aws:bedrock:us-west-2:123:provisioned-model/a1b2c3",
            ModelRef(
                "arn:aws:bedrock:us-west-2:123:provisioned-model/a1b2c3",
                None,
                None,
                None,
                ModelKind.PROVISIONED,
                "us-west-2",
                "123",
            ),
        ),
        (
            "arn:aws-us-gov:bedrock:us-gov-west-1:456:imported-model/x9y8",
            ModelRef(
                "arn:aws-us-gov:bedrock:us-gov-west-1:456:imported-model/x9y8",
                None,
                None,
                None,
                ModelKind.IMPORTED,
                "us-gov-west-1",
                "456",
            ),
        ),
        (
            CUSTOM,
            ModelRef(
                CUSTOM,
                "amazon.titan-text-express-v1:0:8k",
                "amazon",
                None,
                ModelKind.CUSTOM,
                "cn-north-1",
                "789",
            ),
        ),
        (
            "arn:aws:bedrock:us-east-1:123:custom-model-deployment/d4e5",
            ModelRef(
                "arn:aws:bedrock:us-east-1:123:custom-model-deployment/d4e5",
                None,
                None,
                None,
                ModelKind.CUSTOM,
                "us-east-1",
                "123",
            ),
        ),
        (
            SAGEMAKER,
            ModelRef(
                SAGEMAKER, None, None, None, ModelKind.MARKETPLACE, "us-east-1", "767398002385"
            ),
        ),
        (
            "arn:aws:bedrock:us-east-1:123:prompt/PROMPT12:1",
            ModelRef(
                "arn:aws:bedrock:us-east-1:123:prompt/PROMPT12:1",
                None,
                None,
                None,
                ModelKind.UNKNOWN,
                "us-east-1",
                "123",
            ),
        ),
    ],
)
def test_arns(raw: str, expected: ModelRef) -> None:
    """Each kind of ARN gives its kind, base model (when named), region and account."""
    assert parse_model_id(raw) == expected


def test_percent_encoded_arn_is_decoded() -> None:
    """An ARN as it appears percent-encoded in a request path parses like the plain ARN."""
    plain = "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-1-8b-instruct-v1:0"
    encoded = quote(plain, safe="")

    assert dataclasses.replace(parse_model_id(encoded), raw=plain) == parse_model_id(plain)


@pytest.mark.parametrize(
    ("raw", "base_id"),
    [
        ("", None),
        ("   ", None),
        ("gpt-4o", "gpt-4o"),
        ("  hello world  ", "hello world"),
        ("arn:", None),
        ("arn:aws:bedrock", None),
        ("arn:aws:bedrock:us-east-1::foundation-model/not a model", None),
        ("arn:aws:bedrock:us-east-1:1:inference-profile/", None),
        ("....", "...."),
        (":", ":"),
        ("%zz%", "%zz%"),
        ("模型.名字", "模型.名字"),
        ("a" * 2048, "a" * 2048),
    ],
)
def test_garbage_gives_unknown(raw: str, base_id: str | None) -> None:
    """A string that is no model identifier gives kind unknown and never raises."""
    ref = parse_model_id(raw)

    assert (ref.kind, ref.base_id, ref.provider, ref.geo, ref.raw) == (
        ModelKind.UNKNOWN,
        base_id,
        None,
        None,
        raw,
    )


def test_an_id_longer_than_bedrock_takes_is_cut_and_unknown() -> None:
    """Bedrock refuses a modelId over 2,048 characters; a longer one (from a span) is cut to
    that length, so that it cannot make an event too large to send."""
    ref = parse_model_id("anthropic.claude-3-haiku-20240307-v1:0" + "x" * 5000)

    assert (ref.kind, len(ref.raw), ref.base_id) == (ModelKind.UNKNOWN, 2048, ref.raw)
    assert ref.raw.startswith("anthropic.claude-3-haiku-20240307-v1:0xxx")


def test_parse_is_cached() -> None:
    """Parsing the same id twice returns the same object."""
    raw = "us.amazon.nova-micro-v1:0"

    assert parse_model_id(raw) is parse_model_id(raw)


def test_model_ref_is_frozen() -> None:
    """A ModelRef cannot be changed after it is made."""
    ref = parse_model_id("amazon.nova-pro-v1:0")

    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.base_id = "other"  # type: ignore[misc]


def test_kind_compares_as_string() -> None:
    """ModelKind values equal their string names, so they serialise as plain strings."""
    assert parse_model_id(SAGEMAKER).kind == "marketplace"


def test_resolve_model_applies_map() -> None:
    """A mapped application profile takes model and geo from the map; raw, kind and ARN stay."""
    ref = resolve_model(APP_PROFILE, {APP_PROFILE: "eu.anthropic.claude-sonnet-4-6"})

    assert ref == ModelRef(
        APP_PROFILE,
        "anthropic.claude-sonnet-4-6",
        "anthropic",
        "eu",
        ModelKind.APPLICATION_INFERENCE_PROFILE,
        "eu-west-1",
        "123456789012",
    )


def test_resolve_model_without_entry_is_parse() -> None:
    """An ARN missing from the map, or no map at all, resolves to the plain parse."""
    other = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/zzz"

    assert resolve_model(APP_PROFILE, {other: "meta.llama3-1-8b-instruct-v1:0"}) == parse_model_id(
        APP_PROFILE
    )
    assert resolve_model(APP_PROFILE) is parse_model_id(APP_PROFILE)


def test_resolve_model_ignores_unusable_target() -> None:
    """A map entry that names no model leaves the reference unmapped."""
    assert resolve_model(APP_PROFILE, {APP_PROFILE: "  "}) == parse_model_id(APP_PROFILE)
