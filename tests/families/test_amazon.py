"""Titan and Nova bodies and streams, chosen by model id or, failing that, by shape."""

from __future__ import annotations

import pytest

from otel_bedrock.families import ResponseFacts, family_for
from otel_bedrock.families.amazon import model_kind
from otel_bedrock.usage import Usage

TITAN_BODY = {
    "inputTextTokenCount": 5,
    "results": [{"tokenCount": 2, "outputText": "Omelette.", "completionReason": "LENGTH"}],
}
NOVA_BODY = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Frittata."}]}},
    "stopReason": "end_turn",
    "usage": {
        "inputTokens": 50,
        "outputTokens": 20,
        "totalTokens": 2070,
        "cacheReadInputTokenCount": 2000,
        "cacheWriteInputTokenCount": 0,
    },
}


@pytest.mark.parametrize(
    ("base_id", "kind"),
    [
        ("amazon.titan-text-express-v1", "titan"),
        ("amazon.titan-embed-text-v2:0", "titan"),
        ("amazon.nova-lite-v1:0", "nova"),
        ("amazon.nova-2-lite-v1:0", "nova"),
        ("amazon.rerank-v1:0", None),
        (None, None),
    ],
)
def test_model_kind(base_id: str | None, kind: str | None) -> None:
    """The model segment after ``amazon.`` names the kind of Amazon model."""
    assert model_kind(base_id) == kind


def test_titan_body() -> None:
    """A Titan body gives its input and result counts, completion reason and text."""
    facts = family_for("amazon").parse_body(TITAN_BODY, "amazon.titan-text-lite-v1")

    assert facts == ResponseFacts(Usage(5, 2), "LENGTH", "Omelette.")


def test_titan_embedding_body() -> None:
    """A Titan embeddings body gives its input count only."""
    body = {"embedding": [0.1, 0.2], "inputTextTokenCount": 7}

    assert family_for("amazon").parse_body(body, "amazon.titan-embed-text-v2:0") == ResponseFacts(
        Usage(input_tokens=7)
    )


def test_nova_body_with_cache_counts() -> None:
    """A Nova body gives cache reads and writes apart from its cache-exclusive input."""
    facts = family_for("amazon").parse_body(NOVA_BODY, "amazon.nova-pro-v1:0")

    assert facts == ResponseFacts(Usage(50, 20, 2000, 0), "end_turn", "Frittata.")


@pytest.mark.parametrize("body", [TITAN_BODY, NOVA_BODY])
def test_unknown_amazon_model_is_read_by_shape(body: dict[str, object]) -> None:
    """Without a base id, an Amazon body is read as Titan or Nova by its keys."""
    family = family_for("amazon")

    assert family.parse_body(body, None) == family.parse_body(
        body, "amazon.nova-pro-v1:0" if "output" in body else "amazon.titan-text-express-v1"
    )


def test_nova_stream_without_metrics_uses_metadata() -> None:
    """A Nova stream's metadata chunk gives usage when no invocation metrics come."""
    state = family_for("amazon").new_stream_state("amazon.nova-micro-v1:0", collect_text=True)
    state.observe_chunk({"messageStart": {"role": "assistant"}})
    state.observe_chunk({"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}})
    state.observe_chunk({"messageStop": {"stopReason": "max_tokens"}})
    state.observe_chunk({"metadata": {"usage": {"inputTokens": 3, "outputTokens": 1}}})

    assert state.facts() == ResponseFacts(Usage(3, 1), "max_tokens", "Hi")


def test_unknown_amazon_stream_reads_titan_chunks() -> None:
    """A stream of an Amazon model of unknown kind still reads Titan chunks."""
    state = family_for("amazon").new_stream_state(None, collect_text=True)
    state.observe_chunk({"outputText": "Hel", "index": 0, "inputTextTokenCount": 4})
    state.observe_chunk(
        {
            "outputText": "lo",
            "index": 0,
            "totalOutputTextTokenCount": 2,
            "completionReason": "FINISH",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 4, "outputTokenCount": 2},
        }
    )

    assert state.facts() == ResponseFacts(Usage(4, 2), "FINISH", "Hello")


def test_unknown_amazon_stream_reads_nova_chunks() -> None:
    """A stream of an Amazon model of unknown kind still reads Nova chunks."""
    state = family_for("amazon").new_stream_state(None, collect_text=True)
    state.observe_chunk({"contentBlockDelta": {"delta": {"text": "Yes"}, "contentBlockIndex": 0}})
    state.observe_chunk({"messageStop": {"stopReason": "end_turn"}})
    state.observe_chunk(
        {
            "metadata": {"usage": {"inputTokens": 6, "outputTokens": 1}},
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 6, "outputTokenCount": 1},
        }
    )

    assert state.facts() == ResponseFacts(Usage(6, 1), "end_turn", "Yes")
