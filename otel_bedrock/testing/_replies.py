"""The Bedrock emulator's default replies, in each operation's and model family's format.

When no scripted response is queued, the emulator answers with a deterministic success: the
input token count is the number of whitespace-separated words in the request's prompt text (at
least 1), the reply is always ``REPLY_TEXT`` and its output token count ``REPLY_TOKENS``.
"""

from __future__ import annotations

import json
from typing import Any

from otel_bedrock.testing import eventstream

REPLY_TEXT = "This is a reply from the Bedrock emulator."
REPLY_TOKENS = len(REPLY_TEXT.split())
LATENCY_MS = 120
FIRST_BYTE_LATENCY_MS = 40

_GEO_PREFIXES = frozenset({"us", "eu", "apac", "global", "jp", "au", "ca", "us-gov", "apne"})
_TEXT_KEYS = frozenset({"text", "prompt", "inputText", "content", "system"})
ERROR_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"

Reply = tuple[int, dict[str, str], bytes]


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    """A JSON reply."""
    body = json.dumps(payload).encode("utf-8")

    return status, {"Content-Type": "application/json", **(headers or {})}, body


def _stream(events: list[bytes], invoke: bool) -> Reply:
    """An event-stream reply."""
    headers = {"Content-Type": eventstream.CONTENT_TYPE}
    if invoke:
        headers["x-amzn-bedrock-content-type"] = "application/json"

    return 200, headers, b"".join(events)


def model_family(model_id: str) -> str:
    """Return ``meta``, ``anthropic``, ``titan``, ``nova`` or ``other`` for a model id.

    ARNs are reduced to their last path segment and a geo prefix (``us.``, ``global.``...) is
    dropped before the provider segment is read.
    """
    base = model_id.rsplit("/", 1)[-1]
    parts = base.split(".")
    if len(parts) > 2 and parts[0] in _GEO_PREFIXES:
        parts = parts[1:]
    provider, name = parts[0], parts[1] if len(parts) > 1 else ""
    if provider == "amazon":
        provider = next((n for n in ("titan", "nova") if name.startswith(n)), "other")

    return provider if provider in ("meta", "anthropic", "titan", "nova") else "other"


def _collect_text(value: Any, out: list[str], is_text: bool = False) -> None:
    """Append the strings held directly (or in lists) under prompt-like keys to ``out``."""
    if isinstance(value, str):
        if is_text:
            out.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect_text(item, out, is_text)
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect_text(item, out, key in _TEXT_KEYS)


def prompt_tokens(body: bytes) -> int:
    """The emulator's input token count for a request body: words of prompt text, at least 1."""
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        return max(1, len(body.decode("utf-8", "replace").split()))
    texts: list[str] = []
    _collect_text(document, texts)

    return max(1, sum(len(text.split()) for text in texts))


def _pieces() -> list[str]:
    """The reply split into stream deltas: one word each, spaces kept."""
    words = REPLY_TEXT.split(" ")

    return [words[0]] + [" " + word for word in words[1:]]


def _usage(n_in: int) -> dict[str, int]:
    """Converse-style usage for ``n_in`` input tokens and the fixed reply."""
    return {"inputTokens": n_in, "outputTokens": REPLY_TOKENS, "totalTokens": n_in + REPLY_TOKENS}


def _metrics(n_in: int) -> dict[str, Any]:
    """The ``amazon-bedrock-invocationMetrics`` field of a stream's last chunk."""
    metrics = {
        "inputTokenCount": n_in,
        "outputTokenCount": REPLY_TOKENS,
        "invocationLatency": LATENCY_MS,
        "firstByteLatency": FIRST_BYTE_LATENCY_MS,
    }

    return {"amazon-bedrock-invocationMetrics": metrics}


def _invoke_body(family: str, n_in: int) -> dict[str, Any]:
    """An InvokeModel response body in the family's format."""
    if family == "anthropic":
        return {
            "id": "msg_bdrk_emulator",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": REPLY_TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": n_in, "output_tokens": REPLY_TOKENS},
        }
    if family == "titan":
        result = {"tokenCount": REPLY_TOKENS, "outputText": REPLY_TEXT}
        return {"inputTextTokenCount": n_in, "results": [{**result, "completionReason": "FINISH"}]}
    if family == "nova":
        cache = {"cacheReadInputTokenCount": 0, "cacheWriteInputTokenCount": 0}
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": REPLY_TEXT}]}},
            "stopReason": "end_turn",
            "usage": {**_usage(n_in), **cache},
        }

    return {
        "generation": REPLY_TEXT,
        "prompt_token_count": n_in,
        "generation_token_count": REPLY_TOKENS,
        "stop_reason": "stop",
    }


def _anthropic_chunks(n_in: int) -> list[dict[str, Any]]:
    """Anthropic Messages API stream events, with Bedrock's metrics on ``message_stop``."""
    usage = {"input_tokens": n_in, "output_tokens": 1}
    message = {"id": "msg_bdrk_emulator", "type": "message", "role": "assistant", "usage": usage}
    deltas = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
        for p in _pieces()
    ]
    end = {"stop_reason": "end_turn", "stop_sequence": None}

    return [
        {"type": "message_start", "message": {**message, "content": []}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *deltas,
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": end, "usage": {"output_tokens": REPLY_TOKENS}},
        {"type": "message_stop", **_metrics(n_in)},
    ]


def _invoke_chunks(family: str, n_in: int) -> list[dict[str, Any]]:
    """InvokeModelWithResponseStream chunk payloads in the family's format."""
    pieces = _pieces()
    if family == "anthropic":
        return _anthropic_chunks(n_in)
    if family == "nova":
        counts = {"inputTokens": n_in, "outputTokens": REPLY_TOKENS}
        deltas = [
            {"contentBlockDelta": {"delta": {"text": p}, "contentBlockIndex": 0}} for p in pieces
        ]
        return [
            {"messageStart": {"role": "assistant"}},
            *deltas,
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
            {"metadata": {"usage": counts, "metrics": {}, "trace": {}}, **_metrics(n_in)},
        ]
    if family == "titan":
        chunks: list[dict[str, Any]] = [{"outputText": p, "index": 0} for p in pieces]
        chunks[0]["inputTextTokenCount"] = n_in
        chunks[-1].update(totalOutputTextTokenCount=REPLY_TOKENS, completionReason="FINISH")
    else:
        chunks = [
            {"generation": p, "prompt_token_count": None, "generation_token_count": i + 1}
            for i, p in enumerate(pieces)
        ]
        chunks[0]["prompt_token_count"] = n_in
        for item in chunks:
            item["stop_reason"] = None
        chunks[-1]["stop_reason"] = "stop"
    chunks[-1].update(_metrics(n_in))

    return chunks


def _converse_events(n_in: int) -> list[bytes]:
    """ConverseStream events for the fixed reply."""
    deltas = [
        eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}})
        for p in _pieces()
    ]

    return [
        eventstream.event("messageStart", {"role": "assistant"}),
        *deltas,
        eventstream.event("contentBlockStop", {"contentBlockIndex": 0}),
        eventstream.event("messageStop", {"stopReason": "end_turn"}),
        eventstream.event(
            "metadata", {"usage": _usage(n_in), "metrics": {"latencyMs": LATENCY_MS}}
        ),
    ]


def default_reply(operation: str | None, model_id: str | None, body: bytes) -> Reply:
    """The default success for an operation, model and request body as status, headers, body."""
    n_in = prompt_tokens(body)
    family = model_family(model_id or "")
    if operation == "Converse":
        message = {"role": "assistant", "content": [{"text": REPLY_TEXT}]}
        payload = {
            "output": {"message": message},
            "stopReason": "end_turn",
            "usage": _usage(n_in),
            "metrics": {"latencyMs": LATENCY_MS},
        }
        return _json(200, payload)
    if operation == "ConverseStream":
        return _stream(_converse_events(n_in), invoke=False)
    if operation == "InvokeModel":
        headers = {
            "x-amzn-bedrock-input-token-count": str(n_in),
            "x-amzn-bedrock-output-token-count": str(REPLY_TOKENS),
            "x-amzn-bedrock-invocation-latency": str(LATENCY_MS),
        }
        return _json(200, _invoke_body(family, n_in), headers)
    if operation == "InvokeModelWithResponseStream":
        chunks = [eventstream.chunk(c) for c in _invoke_chunks(family, n_in)]
        return _stream(chunks, invoke=True)
    if operation == "CountTokens":
        return _json(200, {"inputTokens": n_in})

    errortype = {"x-amzn-errortype": f"UnknownOperationException:{ERROR_NAMESPACE}"}

    return _json(404, {"message": "The requested operation is unknown."}, errortype)
