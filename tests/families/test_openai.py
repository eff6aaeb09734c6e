"""OpenAI-compatible bodies (gpt-oss, DeepSeek, Qwen, Writer) and their streams."""

from __future__ import annotations

from otel_bedrock.families import ResponseFacts, family_for
from otel_bedrock.usage import Usage


def test_gpt_oss_body_leaves_reasoning_out() -> None:
    """A gpt-oss chat body gives usage, finish reason and the message text without reasoning."""
    body = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "ok",
                    "reasoning_content": "They want ok.",
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 74, "completion_tokens": 26, "total_tokens": 100},
    }

    facts = family_for("openai").parse_body(body, "openai.gpt-oss-120b-1:0")

    assert facts == ResponseFacts(Usage(74, 26), "stop", "ok")


def test_deepseek_text_completion_body() -> None:
    """A DeepSeek-R1 text completion body gives its text and ``stop_reason``."""
    body = {"choices": [{"text": "<think>x</think>42", "stop_reason": "stop"}]}

    facts = family_for("deepseek").parse_body(body, "deepseek.r1-v1:0")

    assert facts == ResponseFacts(Usage(), "stop", "<think>x</think>42")


def test_content_parts_are_joined() -> None:
    """Message content given as a list of parts joins the text parts only."""
    body = {
        "choices": [
            {
                "message": {
                    "content": [
                        {"type": "text", "text": "A"},
                        {"type": "image_url", "image_url": {"url": "x"}},
                        {"type": "text", "text": "B"},
                    ]
                },
                "finish_reason": "stop",
            }
        ]
    }

    assert family_for("writer").parse_body(body, "writer.palmyra-x5-v1:0").text == "AB"


def test_chat_stream_with_usage_chunk() -> None:
    """A chat stream joins delta contents and reads a closing usage chunk."""
    state = family_for("qwen").new_stream_state("qwen.qwen3-32b-v1:0", collect_text=True)
    state.observe_chunk({"choices": [{"delta": {"role": "assistant", "content": ""}}]})
    state.observe_chunk({"choices": [{"delta": {"content": "ok"}, "finish_reason": None}]})
    state.observe_chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    state.observe_chunk({"choices": [], "usage": {"prompt_tokens": 19, "completion_tokens": 2}})

    assert state.facts() == ResponseFacts(Usage(19, 2), "stop", "ok")


def test_deepseek_stream_with_metrics() -> None:
    """A DeepSeek text stream joins ``text`` pieces and takes usage from the metrics."""
    state = family_for("deepseek").new_stream_state("deepseek.r1-v1:0", collect_text=True)
    state.observe_chunk({"choices": [{"index": 0, "text": "4", "stop_reason": None}]})
    state.observe_chunk(
        {
            "choices": [{"index": 0, "text": "2", "stop_reason": "stop"}],
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 12, "outputTokenCount": 2},
        }
    )

    assert state.facts() == ResponseFacts(Usage(12, 2), "stop", "42")
