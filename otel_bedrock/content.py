"""Content capture: the messages an application sent to Bedrock, as text, size-capped.

Called on the application's thread by the request hook, only when content capture is on.
Only text is kept: images, documents and tool results are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

Message = dict[str, str]


def prompt_messages(operation: str, params: Mapping[str, Any]) -> list[Message]:
    """The system prompt and messages of a request, each as a role and its text."""
    if operation in ("Converse", "ConverseStream"):
        return _messages(params.get("system"), params.get("messages"))
    body = params.get("body")
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", "replace")
    if not isinstance(body, str):
        return []
    try:
        decoded = json.loads(body)
    except ValueError:
        return [{"role": "user", "content": body}]
    if not isinstance(decoded, dict):
        return []
    for key in ("prompt", "inputText", "message"):
        if isinstance(decoded.get(key), str):
            return [{"role": "user", "content": decoded[key]}]

    return _messages(decoded.get("system"), decoded.get("messages"))


def clip_messages(messages: list[Message], max_chars: int) -> tuple[list[Message], bool]:
    """Cut the messages' text to ``max_chars`` in all; True when something was cut."""
    kept: list[Message] = []
    left = max_chars
    for message in messages:
        content = message["content"]
        if len(content) > left:
            if left:
                kept.append({"role": message["role"], "content": content[:left]})
            return kept, True
        kept.append(message)
        left -= len(content)

    return kept, False


def _messages(system: Any, messages: Any) -> list[Message]:
    found = []
    system_text = _joined(_texts(system))
    if system_text:
        found.append({"role": "system", "content": system_text})
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, Mapping):
            continue
        text = _joined(_texts(message.get("content")))
        if text:
            found.append({"role": str(message.get("role") or "user"), "content": text})

    return found


def _texts(value: Any) -> Iterable[str]:
    """Every text in a system prompt or message content, in the shapes Bedrock models take."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, Mapping):
        if isinstance(value.get("text"), str):
            yield value["text"]
        elif "content" in value:
            yield from _texts(value["content"])
        elif isinstance(value.get("guardContent"), Mapping):
            # Converse text put before a guardrail: {"guardContent": {"text": {"text": ...}}}
            yield from _texts(value["guardContent"].get("text"))


def _joined(texts: Iterable[str]) -> str:
    return "\n".join(texts)
