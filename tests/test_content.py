"""Content capture: which text of a request is kept, with its roles, and how it is cut."""

from __future__ import annotations

import json

from otel_bedrock.content import clip_messages, prompt_messages


def test_converse_keeps_system_and_each_turn_with_its_role() -> None:
    """Converse's system prompt and turns keep their roles; images are left out."""
    params = {
        "system": [{"text": "You are a chef."}],
        "messages": [
            {"role": "user", "content": [{"text": "Eggs?"}, {"image": {"format": "png"}}]},
            {"role": "assistant", "content": [{"text": "Omelette."}]},
            {"role": "user", "content": [{"text": "Without butter?"}]},
        ],
    }

    assert prompt_messages("Converse", params) == [
        {"role": "system", "content": "You are a chef."},
        {"role": "user", "content": "Eggs?"},
        {"role": "assistant", "content": "Omelette."},
        {"role": "user", "content": "Without butter?"},
    ]


def test_invoke_model_messages_body_gives_text_not_parameters() -> None:
    """A Claude messages body gives its system and message text, not max_tokens and the like."""
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Eggs?"}]}],
    }

    messages = prompt_messages("InvokeModel", {"body": json.dumps(body).encode()})

    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Eggs?"},
    ]


def test_invoke_model_prompt_body_is_one_user_message() -> None:
    """A Llama or Titan style body gives its prompt as one user message."""
    assert prompt_messages("InvokeModel", {"body": '{"prompt": "Eggs?", "max_gen_len": 9}'}) == [
        {"role": "user", "content": "Eggs?"}
    ]
    assert prompt_messages("InvokeModel", {"body": '{"inputText": "Spinach?"}'}) == [
        {"role": "user", "content": "Spinach?"}
    ]


def test_body_that_is_not_json_is_kept_as_text() -> None:
    """A body that is not JSON is kept whole as the user's text."""
    assert prompt_messages("InvokeModel", {"body": b"plain words"}) == [
        {"role": "user", "content": "plain words"}
    ]


def test_clip_cuts_across_messages_and_says_so() -> None:
    """The cap counts every message's text; the message that crosses it is cut, later ones go."""
    messages = [
        {"role": "system", "content": "abcdef"},
        {"role": "user", "content": "ghijkl"},
        {"role": "user", "content": "mnop"},
    ]

    assert clip_messages(messages, 8) == (
        [{"role": "system", "content": "abcdef"}, {"role": "user", "content": "gh"}],
        True,
    )
    assert clip_messages(messages, 100) == (messages, False)


def test_converse_guard_content_is_prompt_text() -> None:
    """Text given to a guardrail as guardContent blocks is part of the captured prompt."""
    params = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"guardContent": {"text": {"text": "Tokyo is the capital of Japan."}}},
                    {"guardContent": {"text": {"text": "What is the capital of Japan?"}}},
                    {"guardContent": {"image": {"format": "png"}}},
                ],
            }
        ]
    }

    assert prompt_messages("Converse", params) == [
        {
            "role": "user",
            "content": "Tokyo is the capital of Japan.\nWhat is the capital of Japan?",
        }
    ]
