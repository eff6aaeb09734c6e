"""Parse any identifier an application can pass as a Bedrock ``modelId``.

Bedrock accepts a bare foundation model id (``meta.llama3-1-8b-instruct-v1:0``), a system
inference profile that prefixes a geography (``us.``, ``eu.``, ``global.``...), and ARNs of
foundation models, inference profiles, application inference profiles, provisioned, imported
and custom models, and SageMaker endpoints for Marketplace models. :func:`parse_model_id`
turns each of these into a :class:`ModelRef`; it never raises and is cached, because it runs
on the request path of every call.

Application inference profile ARNs are opaque: nothing in them names the model behind them.
:func:`resolve_model` applies a user-supplied map from such ARNs to model ids.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import unquote


class ModelKind(StrEnum):
    """What kind of Bedrock resource a model identifier names."""

    FOUNDATION_MODEL = "foundation_model"
    INFERENCE_PROFILE = "inference_profile"
    APPLICATION_INFERENCE_PROFILE = "application_inference_profile"
    PROVISIONED = "provisioned"
    IMPORTED = "imported"
    CUSTOM = "custom"
    MARKETPLACE = "marketplace"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed Bedrock model identifier.

    Attributes:
        raw: The identifier exactly as the application passed it.
        base_id: The foundation model id without geography or ARN, e.g.
            ``anthropic.claude-sonnet-4-6``; None when the identifier does not name one
            (an unmapped application inference profile, a provisioned model...).
        provider: The first dot-separated segment of ``base_id`` (``anthropic``, ``meta``...),
            or None when ``base_id`` has no such segment.
        geo: The geography of a system inference profile (``us``, ``eu``, ``global``...), or
            None for a model called in one region.
        kind: The kind of resource the identifier names.
        region: The AWS region written in an ARN, else None.
        account: The AWS account written in an ARN, else None.
    """

    raw: str
    base_id: str | None
    provider: str | None
    geo: str | None
    kind: ModelKind
    region: str | None = None
    account: str | None = None

    @property
    def profile_id(self) -> str | None:
        """The model id with its geography prefix, e.g. ``us.anthropic.claude-sonnet-4-6``."""
        if self.base_id is None or self.geo is None:
            return self.base_id

        return f"{self.geo}.{self.base_id}"


KNOWN_GEOS: Final = frozenset({"us", "eu", "apac", "jp", "au", "ca", "us-gov", "global", "in"})
"""Geography prefixes of Bedrock system inference profiles known when this was written."""

KNOWN_PROVIDERS: Final = frozenset(
    {
        "ai21",
        "amazon",
        "anthropic",
        "cohere",
        "deepseek",
        "google",
        "luma",
        "meta",
        "minimax",
        "mistral",
        "moonshot",
        "moonshotai",
        "nvidia",
        "openai",
        "qwen",
        "stability",
        "twelvelabs",
        "writer",
        "zai",
    }
)
"""Provider segments of Bedrock foundation model ids, used to recognise new geography prefixes."""

# A model id: a provider segment, a dot, then letters, digits and ``.-:_`` (``v1:0``, ``k2.5``).
_MODEL_ID: Final = re.compile(r"[a-z0-9][a-z0-9-]*\.[a-z0-9][a-z0-9._:-]*", re.IGNORECASE)
_SEGMENT: Final = re.compile(r"[a-z0-9][a-z0-9-]*", re.IGNORECASE)
# A geography not in KNOWN_GEOS: two to six letters, optionally with one ``-suffix``.
_NEW_GEO: Final = re.compile(r"[a-z]{2,6}(?:-[a-z]{2,6})?")
_ARN: Final = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):"
    r"(?P<account>[0-9]*):(?P<type>[a-z-]+)/(?P<resource>.+)",
    re.IGNORECASE,
)
_ARN_KINDS: Final = {
    ("bedrock", "foundation-model"): ModelKind.FOUNDATION_MODEL,
    ("bedrock", "inference-profile"): ModelKind.INFERENCE_PROFILE,
    ("bedrock", "application-inference-profile"): ModelKind.APPLICATION_INFERENCE_PROFILE,
    ("bedrock", "provisioned-model"): ModelKind.PROVISIONED,
    ("bedrock", "imported-model"): ModelKind.IMPORTED,
    ("bedrock", "custom-model"): ModelKind.CUSTOM,
    ("bedrock", "custom-model-deployment"): ModelKind.CUSTOM,
    ("sagemaker", "endpoint"): ModelKind.MARKETPLACE,
}
# ARN resource types whose resource id is a model id (or holds one, for custom models).
_NAMED_KINDS: Final = frozenset(
    {ModelKind.FOUNDATION_MODEL, ModelKind.INFERENCE_PROFILE, ModelKind.CUSTOM}
)


MAX_MODEL_ID_CHARS: Final = 2048
"""Bedrock takes no longer ``modelId``; a longer string (from a span, say) is cut to this and
read as an unknown model."""


def parse_model_id(raw: str) -> ModelRef:
    """Parse a Bedrock model identifier; never raises.

    Args:
        raw: The ``modelId`` as the application passed it; percent-encoded forms (as found in
            request paths) are decoded first.

    Returns:
        The parsed reference. A string that is no known form of identifier gives kind
        ``unknown`` with ``base_id`` set to the stripped string, or None when it is empty.
    """
    if isinstance(raw, str) and len(raw) > MAX_MODEL_ID_CHARS:
        clipped = raw[:MAX_MODEL_ID_CHARS]
        return _unknown(clipped, clipped)  # not cached: the cache would keep the long id

    return _parse_cached(raw)


@functools.lru_cache(maxsize=1024)
def _parse_cached(raw: str) -> ModelRef:
    try:
        return _parse(raw)
    except Exception:  # noqa: BLE001 - a parser on the request path must never raise
        return _unknown(raw, (raw.strip() or None) if isinstance(raw, str) else None)


def resolve_model(raw: str, profile_map: Mapping[str, str] | None = None) -> ModelRef:
    """Parse ``raw`` and apply a user map from ARNs to the model ids behind them.

    The map is meant for application inference profile ARNs, which do not name their model,
    but any ARN may be mapped (a provisioned model, for instance, to show its base model).

    Args:
        raw: The ``modelId`` as the application passed it.
        profile_map: Full ARN -> model id or system profile id (``us.anthropic...``).

    Returns:
        The parsed reference; when the map names a model for ``raw``, its ``base_id``,
        ``provider`` and ``geo`` come from that model while ``raw``, ``kind``, ``region`` and
        ``account`` stay those of ``raw``.
    """
    ref = parse_model_id(raw)
    if not profile_map:
        return ref

    key = ref.raw.strip()
    target = profile_map.get(key)
    if target is None and "%" in key:
        target = profile_map.get(unquote(key))
    if target is None:
        return ref

    return _mapped(raw, target)


@functools.lru_cache(maxsize=256)
def _mapped(raw: str, target: str) -> ModelRef:
    ref = parse_model_id(raw)
    model = parse_model_id(target)
    if model.base_id is None:
        return ref

    return dataclasses.replace(ref, base_id=model.base_id, provider=model.provider, geo=model.geo)


def _parse(raw: str) -> ModelRef:
    text = raw.strip()
    if "%" in text:
        text = unquote(text)
    if not text:
        return _unknown(raw, None)
    if text[:4].lower() == "arn:":
        return _parse_arn(raw, text)

    return _parse_plain(raw, text)


def _parse_plain(raw: str, text: str) -> ModelRef:
    """Parse a bare model id or a system inference profile id."""
    if _MODEL_ID.fullmatch(text) is None:
        return _unknown(raw, text)

    head, rest = text.split(".", 1)
    if _is_geo(head.lower(), rest):
        return _ref(raw, rest, ModelKind.INFERENCE_PROFILE, geo=head.lower())

    return _ref(raw, text, ModelKind.FOUNDATION_MODEL)


def _parse_arn(raw: str, text: str) -> ModelRef:
    match = _ARN.fullmatch(text)
    if match is None:
        return _unknown(raw, None)

    kind = _ARN_KINDS.get((match["service"].lower(), match["type"].lower()), ModelKind.UNKNOWN)
    resource = match["resource"]
    if kind == ModelKind.CUSTOM:
        # ``custom-model/<base model id>/<suffix>`` names the base model; a deployment does not.
        resource = resource.split("/", 1)[0] if "/" in resource else ""
    inner = _parse_plain(raw, resource) if kind in _NAMED_KINDS else None
    if inner is not None and inner.kind == ModelKind.UNKNOWN:
        inner = None
        if kind != ModelKind.CUSTOM:
            kind = ModelKind.UNKNOWN

    return _ref(
        raw,
        inner.base_id if inner else None,
        kind,
        geo=inner.geo if inner else None,
        region=match["region"] or None,
        account=match["account"] or None,
    )


def _ref(
    raw: str,
    base_id: str | None,
    kind: ModelKind,
    *,
    geo: str | None = None,
    region: str | None = None,
    account: str | None = None,
) -> ModelRef:
    provider = _provider_of(base_id) if base_id else None
    return ModelRef(raw, base_id, provider, geo, kind, region, account)


def _is_geo(head: str, rest: str) -> bool:
    """True when ``head`` is the geography prefix of a system inference profile."""
    if head in KNOWN_PROVIDERS:
        return False
    if head in KNOWN_GEOS:
        return True

    return _NEW_GEO.fullmatch(head) is not None and _provider_of(rest) in KNOWN_PROVIDERS


def _provider_of(base_id: str) -> str | None:
    head, dot, _ = base_id.partition(".")
    if not dot or _SEGMENT.fullmatch(head) is None:
        return None

    return head.lower()


def _unknown(raw: str, base_id: str | None) -> ModelRef:
    return ModelRef(str(raw), base_id, None, None, ModelKind.UNKNOWN)
