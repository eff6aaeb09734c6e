"""Model families: what each Bedrock model family says in its response bodies.

InvokeModel returns a body whose shape belongs to the model's family (Claude messages, Llama
generations, Titan results, OpenAI-style choices, ...). This package reads the facts that
matter to an analytics event from those bodies and from the chunks of
InvokeModelWithResponseStream: token usage, the stop reason and, on request, the generated text.

Families are looked up by the provider segment of the base model id (``anthropic`` in
``anthropic.claude-3-5-haiku-20241022-v1:0``) through :func:`family_for`; each family lives in
its own module and is imported on first use. Providers with no module of their own get the
generic family, which tries the common shapes, and one warning per process.

All parsing runs on the application's thread, inside the boto3 call, so every function here is
cheap and never raises: a body it cannot read gives empty :class:`ResponseFacts`.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from otel_bedrock.usage import Usage

logger = logging.getLogger(__name__)

__all__ = [
    "Family",
    "ResponseFacts",
    "StreamState",
    "family_for",
    "known_providers",
]


@dataclass(frozen=True, slots=True)
class ResponseFacts:
    """What one response says about itself.

    ``usage`` holds only counts the response measured; ``stop_reason`` is the model's own
    word for why it stopped (``end_turn``, ``FINISH``, ``stop``...); ``text`` is the generated
    text, or None when there was none or it was not collected.
    """

    usage: Usage = Usage()
    stop_reason: str | None = None
    text: str | None = None

    @property
    def is_empty(self) -> bool:
        """True when the response told nothing at all."""
        return self.usage.is_empty and self.stop_reason is None and self.text is None


class StreamState(Protocol):
    """Facts gathered from the chunks of one InvokeModelWithResponseStream response.

    Called on the application's thread, once per chunk, as the application reads the stream.
    """

    collect_text: bool
    """Whether the generated text is kept; when it is, every chunk must be decoded."""

    markers: tuple[bytes, ...]
    """Byte strings of which a raw chunk must hold one to carry usage or a stop reason.

    When text is not collected, a chunk holding none of them need not be decoded at all.
    """

    def observe_chunk(self, chunk: Mapping[str, Any]) -> None:
        """Take in one decoded JSON chunk (the object inside ``event["chunk"]["bytes"]``)."""
        ...

    def facts(self) -> ResponseFacts:
        """Return what the chunks seen so far say."""
        ...


class Family(Protocol):
    """How one model family reports usage, stop reason and text."""

    name: str

    def parse_body(self, body: Mapping[str, Any], base_id: str | None) -> ResponseFacts:
        """Read an InvokeModel JSON response body; never raises."""
        ...

    def new_stream_state(self, base_id: str | None, collect_text: bool = False) -> StreamState:
        """Return a fresh state for one InvokeModelWithResponseStream response."""
        ...


# Provider segment -> "module:Class" inside this package. Several providers serve
# OpenAI-compatible chat completions on Bedrock and share one reader.
_REGISTRY: dict[str, str] = {
    "anthropic": "anthropic:AnthropicFamily",
    "meta": "meta:MetaFamily",
    "amazon": "amazon:AmazonFamily",
    "cohere": "cohere:CohereFamily",
    "mistral": "mistral:MistralFamily",
    "ai21": "ai21:AI21Family",
    "deepseek": "openai:OpenAIStyleFamily",
    "openai": "openai:OpenAIStyleFamily",
    "qwen": "openai:OpenAIStyleFamily",
    "writer": "openai:OpenAIStyleFamily",
    "moonshot": "openai:OpenAIStyleFamily",
    "moonshotai": "openai:OpenAIStyleFamily",
    "zai": "openai:OpenAIStyleFamily",
    "google": "openai:OpenAIStyleFamily",
    "minimax": "openai:OpenAIStyleFamily",
    "nvidia": "openai:OpenAIStyleFamily",
}
_GENERIC = "generic:GenericFamily"
_MAX_REMEMBERED = 256

_by_provider: dict[str | None, Family] = {}
_by_spec: dict[str, Family] = {}
_warned: set[str] = set()
_lock = threading.Lock()


def known_providers() -> frozenset[str]:
    """Return the provider segments that have a family of their own."""
    return frozenset(_REGISTRY)


def family_for(provider: str | None) -> Family:
    """Return the family for a provider segment such as ``anthropic`` or ``meta``.

    Unknown providers, and ``None`` (an imported or provisioned model whose base id is not
    known), get the generic family. Never raises. Called on the application's thread.

    Args:
        provider: the provider segment of the base model id, as ``ModelRef.provider`` gives it.
    """
    family = _by_provider.get(provider)
    if family is not None:
        return family

    spec = _REGISTRY.get(provider.lower()) if provider is not None else None
    if spec is None:
        _note_unknown(provider)
        spec = _GENERIC
    family = _load(spec)
    if len(_by_provider) < _MAX_REMEMBERED:
        _by_provider[provider] = family

    return family


def _load(spec: str) -> Family:
    with _lock:
        family = _by_spec.get(spec)
        if family is None:
            module_name, class_name = spec.split(":")
            module = importlib.import_module(f"{__name__}.{module_name}")
            family = getattr(module, class_name)()
            _by_spec[spec] = family

    return family


def _note_unknown(provider: str | None) -> None:
    if provider is None:
        logger.debug("bedrock_family_unknown provider=%s using=%s", None, "generic")
        return
    with _lock:
        if provider in _warned or len(_warned) >= _MAX_REMEMBERED:
            return
        _warned.add(provider)
    logger.warning(
        "bedrock_family_unknown provider=%s using=generic: only headers and common body "
        "shapes give usage for this provider",
        provider,
    )
