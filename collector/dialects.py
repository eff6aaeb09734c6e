"""Bedrock spans from other instrumentations, in our attribute names.

Services send the collector whatever their instrumentation made. :func:`canonical` recognises
the instrumentation by its scope name (the ``_DIALECTS`` table), decides whether the span traced
a Bedrock Runtime model call and which operation, and returns the span's attributes with ours
(:mod:`otel_bedrock.attributes`) added, so that :func:`otel_bedrock.calls.describe` reads the
span as it reads one made in-process. :func:`content_from_log` reads the message content that
some instrumentations send as log records instead (:func:`messages_from_log` gives each
message of a record with its role).

Token counts that came from Bedrock's reply go under ``bedrock.usage.*`` (measured). Where an
instrumentation may estimate counts from text length (upstream botocore and the Node AWS SDK
instrumentation, for Cohere and Mistral InvokeModel), its ``gen_ai.usage.*`` counts are kept
under those names, and ``describe`` sets the estimates aside as it does in-process.

What each instrumentation records, and misses, is listed in ``tests/data/otlp/README.md``.
Known limits that cost or counts depend on:

- genai-bedrock and OpenLLMetry do not record which API was called. A reply id means
  InvokeModel (Converse replies carry none) and ``text_completion`` means InvokeModel (Converse
  takes only messages); other calls read as Converse. OpenLLMetry does not mark streams.
- OpenLLMetry drops the provider and geography of the model id, OpenInference replaces an
  Anthropic model id with the model name of the reply: the provider is restored, the geography
  cannot be, so a ``global.`` profile is priced as the in-region model.
- The Node instrumentation reports 1 output token for every Claude InvokeModel stream (the
  count of ``message_start``); the count is dropped, so the call has no cost. OpenLLMetry 0.47
  does the same but does not mark streams, so its count is kept.

All functions are pure and may be called from any thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from collector.spans import ReceivedLog, ReceivedSpan
from otel_bedrock import attributes as attr
from otel_bedrock.calls import MODEL_OPERATIONS
from otel_bedrock.model_ids import KNOWN_PROVIDERS, parse_model_id
from otel_bedrock.span_facts import usage_attributes
from otel_bedrock.usage import Usage, count

_STREAMING: Final = {
    "InvokeModel": "InvokeModelWithResponseStream",
    "Converse": "ConverseStream",
}


@dataclass(frozen=True, slots=True)
class LogContent:
    """One message a content log record carries, joined to its span by the ids.

    Attributes:
        trace_id: The trace of the span the record belongs to.
        span_id: That span's id.
        role: ``system``, ``user``, ``assistant`` or ``tool``.
        text: The message's text parts, one per line; images and tool calls are left out.
        is_output: True for the model's reply, False for a message of the prompt.
    """

    trace_id: int
    span_id: int
    role: str
    text: str
    is_output: bool


# ---------------------------------------------------------------------------------------------
# Which Bedrock operation a span traced; None when it traced anything else.

Operation = Callable[[ReceivedSpan], str | None]


def _rpc_operation(span: ReceivedSpan) -> str | None:
    """AWS SDK instrumentations: ``rpc.service`` names Bedrock Runtime, ``rpc.method`` the call.

    Botocore writes ``Bedrock Runtime``, the JavaScript SDK ``BedrockRuntime``. The control
    plane (``Bedrock``) and the agent runtime (``Bedrock Agent Runtime``) are other services.
    """
    if not _is_bedrock_runtime(span.attributes.get(attr.RPC_SERVICE)):
        return None
    method = span.attributes.get(attr.RPC_METHOD)

    return method if isinstance(method, str) and method in MODEL_OPERATIONS else None


# gen_ai.operation.name -> the API family it implies before looking at the reply.
_GEN_AI_OPERATIONS: Final = {
    "chat": "Converse",
    "generate_content": "Converse",
    "text_completion": "InvokeModel",
    "embeddings": "InvokeModel",
}


def _gen_ai_operation(span: ReceivedSpan) -> str | None:
    """GenAI conventions, which name no AWS API: inferred from the operation and the reply.

    A reply id or reply model means InvokeModel, since Converse replies carry neither;
    ``gen_ai.request.stream`` marks streams. Agent runtime calls (RetrieveAndGenerate is a
    ``chat`` too) are recognised by their knowledge base or their endpoint and left out.
    """
    values = span.attributes
    if _is_agent_runtime(values):
        return None
    operation = _GEN_AI_OPERATIONS.get(str(values.get("gen_ai.operation.name")))
    if operation == "Converse" and (
        values.get("gen_ai.response.id") is not None
        or values.get("gen_ai.response.model") is not None
    ):
        operation = "InvokeModel"
    if operation is not None and values.get("gen_ai.request.stream") is True:
        return _STREAMING[operation]

    return operation


# OpenLLMetry before the GenAI conventions (0.47 and older) named spans by boto3 method group.
_OPENLLMETRY_SPAN_NAMES: Final = {
    "bedrock.completion": "InvokeModel",
    "bedrock.converse": "Converse",
}


def _openllmetry_operation(span: ReceivedSpan) -> str | None:
    """OpenLLMetry: the old span names, else as the GenAI conventions say (it wraps only
    bedrock-runtime model calls)."""
    return _OPENLLMETRY_SPAN_NAMES.get(span.name) or _gen_ai_operation(span)


# OpenInference names each span after the boto3 method; other names are agent runtime calls.
_OPENINFERENCE_SPAN_NAMES: Final = {
    "bedrock.invoke_model": "InvokeModel",
    "bedrock.invoke_model_with_response_stream": "InvokeModelWithResponseStream",
    "bedrock.converse": "Converse",
    "bedrock.converse_stream": "ConverseStream",
}


def _openinference_operation(span: ReceivedSpan) -> str | None:
    return _OPENINFERENCE_SPAN_NAMES.get(span.name)


# ---------------------------------------------------------------------------------------------
# Each dialect's attributes in our names. A translation returns only what it adds or replaces;
# a None value removes the attribute.

Translate = Callable[[ReceivedSpan, str], dict[str, Any]]
# The prompt and generation a span's attributes carry, as our content attributes.
Content = Callable[[Mapping[str, Any]], dict[str, Any]]

# Cache counts under the GenAI conventions' newer names -> the names ``describe`` reads.
_CACHE_NAMES: Final = (
    ("gen_ai.usage.cache_read.input_tokens", attr.GEN_AI_CACHE_READ_TOKENS),
    ("gen_ai.usage.cache_creation.input_tokens", attr.GEN_AI_CACHE_WRITE_TOKENS),
    ("gen_ai.usage.cache_write.input_tokens", attr.GEN_AI_CACHE_WRITE_TOKENS),
)


def _from_aws_sdk(span: ReceivedSpan, operation: str) -> dict[str, Any]:
    """Upstream botocore and the other AWS SDK instrumentations: near our names already."""
    values = span.attributes
    added: dict[str, Any] = {}
    for theirs, ours in _CACHE_NAMES:
        if values.get(theirs) is not None and values.get(ours) is None:
            added.setdefault(ours, values[theirs])
    if values.get(attr.AWS_REQUEST_ID) is None and values.get("aws.request.id") is not None:
        added[attr.AWS_REQUEST_ID] = values["aws.request.id"]

    return added


def _from_node(span: ReceivedSpan, operation: str) -> dict[str, Any]:
    """The JavaScript SDK instrumentation; its output count of Claude streams is dropped.

    It reads ``message_start``'s placeholder count and never the final one (version 0.78.0).
    """
    added = _from_aws_sdk(span, operation)
    model = parse_model_id(str(span.attributes.get(attr.GEN_AI_REQUEST_MODEL) or ""))
    if operation == "InvokeModelWithResponseStream" and model.provider == "anthropic":
        added[attr.GEN_AI_OUTPUT_TOKENS] = None

    return added


def _from_genai_bedrock(span: ReceivedSpan, operation: str) -> dict[str, Any]:
    """opentelemetry-instrumentation-genai-bedrock: GenAI conventions, counts from the reply."""
    values = span.attributes
    added = _measured(
        input_tokens=values.get(attr.GEN_AI_INPUT_TOKENS),
        output_tokens=values.get(attr.GEN_AI_OUTPUT_TOKENS),
        cache_read=_first(values, "gen_ai.usage.cache_read.input_tokens"),
        cache_write=_first(
            values,
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_write.input_tokens",
        ),
        source="genai-bedrock",
    )
    region = _region_of_endpoint(values.get("server.address"))
    if region is not None and values.get(attr.CLOUD_REGION) is None:
        added[attr.CLOUD_REGION] = region

    return added


def _from_openllmetry(span: ReceivedSpan, operation: str) -> dict[str, Any]:
    """OpenLLMetry (traceloop): GenAI conventions since 0.5x, its own names before.

    Counts come from the reply body, headers or stream metrics. The model id lost its provider
    and geography; the user is a traceloop association property.
    """
    values = span.attributes
    added = _measured(
        input_tokens=_first(values, attr.GEN_AI_INPUT_TOKENS, "gen_ai.usage.prompt_tokens"),
        output_tokens=_first(values, attr.GEN_AI_OUTPUT_TOKENS, "gen_ai.usage.completion_tokens"),
        cache_read=_first(values, "gen_ai.usage.cache_read.input_tokens"),
        cache_write=_first(values, "gen_ai.usage.cache_creation.input_tokens"),
        source="openllmetry",
    )
    added[attr.GEN_AI_REQUEST_MODEL] = _bedrock_model_id(values.get(attr.GEN_AI_REQUEST_MODEL))
    user = values.get("traceloop.association.properties.user_id")
    if user is not None and values.get(attr.USER_ID) is None:
        added[attr.USER_ID] = user

    return added


def _from_openinference(span: ReceivedSpan, operation: str) -> dict[str, Any]:
    """OpenInference: ``llm.*`` names, prompt counts that include the cache.

    Its prompt count adds cache reads and writes to Bedrock's input count, except for Nova
    InvokeModel calls, where it is Bedrock's count as is. ``user.id`` is already ours.
    """
    values = span.attributes
    model = _bedrock_model_id(values.get("llm.model_name"), values.get("llm.system"))
    cache_read = count(values.get("llm.token_count.prompt_details.cache_read"))
    cache_write = count(values.get("llm.token_count.prompt_details.cache_write"))
    prompt = count(values.get("llm.token_count.prompt"))
    if prompt is not None and not _is_nova_invoke(model, operation):
        prompt -= (cache_read or 0) + (cache_write or 0)
    added = _measured(
        input_tokens=prompt if prompt is None or prompt >= 0 else None,
        output_tokens=values.get("llm.token_count.completion"),
        cache_read=cache_read,
        cache_write=cache_write,
        source="openinference",
    )
    added[attr.GEN_AI_REQUEST_MODEL] = model
    reason = values.get("llm.finish_reason")
    if isinstance(reason, str) and reason:
        added[attr.GEN_AI_FINISH_REASONS] = (reason,)

    return added


# ---------------------------------------------------------------------------------------------
# The prompt and generation a span's attributes carry, as our content attributes.


def _no_content(values: Mapping[str, Any]) -> dict[str, Any]:
    return {}


def _gen_ai_content(values: Mapping[str, Any]) -> dict[str, Any]:
    """Content under the GenAI conventions' span attributes."""
    prompt = _system_message(values) + _semconv_messages(values.get("gen_ai.input.messages"))

    return _content(prompt, _semconv_messages(values.get("gen_ai.output.messages")))


def _openllmetry_content(values: Mapping[str, Any]) -> dict[str, Any]:
    """GenAI conventions' attributes, or the older ``gen_ai.prompt.N.*`` ones."""
    return _gen_ai_content(values) or _content(
        _indexed_messages(values, "gen_ai.prompt."), _indexed_messages(values, "gen_ai.completion.")
    )


def _openinference_content(values: Mapping[str, Any]) -> dict[str, Any]:
    """OpenInference messages, else its raw ``input.value`` / ``output.value`` when plain text."""
    prompt = _openinference_messages(values, "llm.input_messages.")
    output = _openinference_messages(values, "llm.output_messages.")
    if not prompt and _is_plain_text(values, "input"):
        prompt = [("user", values["input.value"])]
    if not output and _is_plain_text(values, "output"):
        output = [("assistant", values["output.value"])]

    return _content(prompt, output)


@dataclass(frozen=True, slots=True)
class _Dialect:
    """One instrumentation: its scope name, how it names the operation, how it names the rest,
    and where it puts message content."""

    name: str
    scope: str
    operation: Operation
    translate: Translate
    content: Content

    def made(self, span: ReceivedSpan) -> bool:
        """True when the span's scope is this instrumentation's (or a sub-scope of it)."""
        return span.scope == self.scope or span.scope.startswith(self.scope + ".")


_DIALECTS: Final = (
    # Message content goes to log records (content_from_log), not to the span.
    _Dialect(
        "botocore",
        "opentelemetry.instrumentation.botocore",
        _rpc_operation,
        _from_aws_sdk,
        _no_content,
    ),
    _Dialect(
        "genai-bedrock",
        "opentelemetry.instrumentation.genai.bedrock",
        _gen_ai_operation,
        _from_genai_bedrock,
        _gen_ai_content,
    ),
    _Dialect(
        "openllmetry",
        "opentelemetry.instrumentation.bedrock",
        _openllmetry_operation,
        _from_openllmetry,
        _openllmetry_content,
    ),
    _Dialect(
        "openinference",
        "openinference.instrumentation.bedrock",
        _openinference_operation,
        _from_openinference,
        _openinference_content,
    ),
    # Records no message content.
    _Dialect(
        "node",
        "@opentelemetry/instrumentation-aws-sdk",
        _rpc_operation,
        _from_node,
        _no_content,
    ),
)
# Any other instrumentation that follows the AWS SDK conventions (Java, Go, .NET agents...).
_AWS_SDK: Final = _Dialect("aws-sdk", "", _rpc_operation, _from_aws_sdk, _no_content)

DIALECTS: Final = (*(dialect.name for dialect in _DIALECTS), _AWS_SDK.name)
"""The dialect names :func:`dialect_of` returns, for counters and logs."""


def _dialect(span: ReceivedSpan) -> _Dialect | None:
    for dialect in _DIALECTS:
        if dialect.made(span):
            return dialect
    rpc_system = span.attributes.get("rpc.system")
    if rpc_system == "aws-api" and _is_bedrock_runtime(span.attributes.get(attr.RPC_SERVICE)):
        return _AWS_SDK

    return None


def dialect_of(span: ReceivedSpan) -> str | None:
    """The name of the instrumentation dialect a span is written in, or None if unknown."""
    dialect = _dialect(span)

    return dialect.name if dialect is not None else None


def canonical(span: ReceivedSpan, *, content: bool = True) -> dict[str, Any] | None:
    """The span's attributes with ours added, or None when it traced no Bedrock model call.

    The result keeps every attribute of the span (identity keys among them) and adds ours:
    ``rpc.service`` and ``rpc.method``, the Bedrock model id, usage, cache counts, finish
    reasons, request id and region, as far as the dialect records them; and, unless
    ``content`` is False, the prompt and generation the span carries.
    """
    dialect = _dialect(span)
    if dialect is None:
        return None
    operation = dialect.operation(span)
    if operation is None:
        return None
    values = {**span.attributes, **dialect.translate(span, operation)}
    if content:
        values.update(dialect.content(span.attributes))
    values[attr.RPC_SERVICE] = attr.BEDROCK_RUNTIME_SERVICE
    values[attr.RPC_METHOD] = operation

    return {key: value for key, value in values.items() if value is not None}


# ---------------------------------------------------------------------------------------------
# Content log records.

# Event name -> (role, is_output) for the GenAI events with one message each.
_MESSAGE_EVENTS: Final = {
    "gen_ai.system.message": ("system", False),
    "gen_ai.user.message": ("user", False),
    "gen_ai.assistant.message": ("assistant", False),
    "gen_ai.tool.message": ("tool", False),
    "gen_ai.choice": ("assistant", True),
}
# The event that carries a whole call's messages as attributes (opentelemetry-util-genai).
_DETAILS_EVENT: Final = "gen_ai.client.inference.operation.details"


def messages_from_log(record: ReceivedLog) -> tuple[LogContent, ...]:
    """The messages a content log record carries; empty for any other record.

    Reads the GenAI message events (``gen_ai.user.message``, ``gen_ai.choice``...; upstream
    botocore, OpenLLMetry with events) whose body holds one message, and the
    ``gen_ai.client.inference.operation.details`` event whose attributes hold all of a call's
    messages. A record that names no span gives nothing: it cannot be joined.
    """
    if record.trace_id is None or record.span_id is None:
        return ()
    trace_id, span_id = record.trace_id, record.span_id
    if record.event_name in _MESSAGE_EVENTS:
        role, is_output = _MESSAGE_EVENTS[record.event_name]
        body = record.body if isinstance(record.body, Mapping) else {"content": record.body}
        message = body.get("message") if is_output else None
        if isinstance(message, Mapping):
            role = str(message.get("role") or role)
            body = message
        text = _joined(_texts(body.get("content")))
        return (LogContent(trace_id, span_id, role, text, is_output),) if text else ()
    if record.event_name == _DETAILS_EVENT:
        values = record.attributes
        prompt = _system_message(values) + _semconv_messages(values.get("gen_ai.input.messages"))
        output = _semconv_messages(values.get("gen_ai.output.messages"))
        return tuple(
            LogContent(trace_id, span_id, role, text, is_output)
            for messages, is_output in ((prompt, False), (output, True))
            for role, text in messages
        )

    return ()


def content_from_log(record: ReceivedLog) -> dict[str, Any] | None:
    """What a log record says about a call's content, as our attributes; None if nothing.

    The attributes are those of :func:`content_attributes` for the record's messages
    (:func:`messages_from_log`): ``bedrock.prompt.messages`` and ``bedrock.prompt`` for the
    messages of the prompt, ``bedrock.generation`` for the reply.
    """
    return content_attributes(messages_from_log(record)) or None


def content_attributes(pieces: Iterable[LogContent]) -> dict[str, Any]:
    """Our content attributes (prompt, prompt messages, generation) from log record messages.

    Give the messages of one span in the order their records arrived.
    """
    prompt: list[tuple[str, str]] = []
    output: list[tuple[str, str]] = []
    for piece in pieces:
        (output if piece.is_output else prompt).append((piece.role, piece.text))

    return _content(prompt, output)


# ---------------------------------------------------------------------------------------------
# Helpers.

_ENDPOINT: Final = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com")
# The provider segment of a model name that an instrumentation stripped (``claude-...``), keyed
# by the name's leading letters.
_PROVIDER_OF_NAME: Final = {
    "claude": "anthropic",
    "llama": "meta",
    "nova": "amazon",
    "titan": "amazon",
    "command": "cohere",
    "embed": "cohere",
    "rerank": "cohere",
    "mistral": "mistral",
    "mixtral": "mistral",
    "pixtral": "mistral",
    "magistral": "mistral",
    "ministral": "mistral",
    "voxtral": "mistral",
    "jamba": "ai21",
    "j": "ai21",  # j2-ultra-v1
    "r": "deepseek",  # r1-v1:0
    "gpt": "openai",
    "qwen": "qwen",
    "palmyra": "writer",
    "kimi": "moonshot",
    "gemma": "google",
    "nemotron": "nvidia",
}
_LEADING_LETTERS: Final = re.compile(r"[a-z]+")


def _is_bedrock_runtime(service: Any) -> bool:
    return isinstance(service, str) and re.sub(r"[\s_-]", "", service.lower()) == "bedrockruntime"


def _is_agent_runtime(values: Mapping[str, Any]) -> bool:
    address = values.get("server.address")
    return values.get("aws.bedrock.knowledge_base.id") is not None or (
        isinstance(address, str) and address.startswith("bedrock-agent-runtime")
    )


def _region_of_endpoint(address: Any) -> str | None:
    match = _ENDPOINT.fullmatch(address) if isinstance(address, str) else None

    return match[1] if match else None


def _is_nova_invoke(model: str | None, operation: str) -> bool:
    base = parse_model_id(model or "").base_id or ""

    return operation.startswith("InvokeModel") and base.startswith("amazon.nova")


def _bedrock_model_id(name: Any, provider: Any = None) -> str | None:
    """A Bedrock model id from a name that may have lost its provider segment."""
    if not isinstance(name, str) or not name:
        return None
    if name[:4].lower() == "arn:" or parse_model_id(name).provider in KNOWN_PROVIDERS:
        return name
    letters = _LEADING_LETTERS.match(name.lower())
    vendor = provider if provider in KNOWN_PROVIDERS else None
    vendor = vendor or _PROVIDER_OF_NAME.get(letters[0] if letters else "")

    return f"{vendor}.{name}" if vendor else name


def _first(values: Mapping[str, Any], *keys: str) -> Any:
    return next((values[key] for key in keys if values.get(key) is not None), None)


def _measured(
    *,
    input_tokens: Any,
    output_tokens: Any,
    cache_read: Any,
    cache_write: Any,
    source: str,
) -> dict[str, Any]:
    """Attributes for counts read from Bedrock's reply: ours and the GenAI ones, as hooks write."""
    counts = Usage(
        input_tokens=count(input_tokens),
        output_tokens=count(output_tokens),
        cache_read_tokens=count(cache_read),
        cache_write_tokens=count(cache_write),
    )

    return usage_attributes(counts, source)


def _texts(value: Any) -> Iterator[str]:
    """Every text in a message's content, whatever shape the instrumentation gave it.

    Strings; lists of parts; Bedrock blocks (``{"text": ...}``); GenAI parts
    (``{"type": "text", "content": ...}``) and messages (``{"parts": [...]}``). Parts of another
    type (images, tool calls, reasoning) are left out.
    """
    if isinstance(value, str):
        yield value
    elif isinstance(value, Sequence):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, Mapping) and value.get("type") in (None, "text"):
        if isinstance(value.get("text"), str):
            yield value["text"]
        elif "content" in value:
            yield from _texts(value["content"])
        elif "parts" in value:
            yield from _texts(value["parts"])


def _joined(texts: Iterable[str]) -> str:
    return "\n".join(text for text in texts if text)


def _decoded(value: Any) -> Any:
    """A JSON document held in a string attribute; the string itself when it holds none."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value

    return value


def _semconv_messages(value: Any) -> list[tuple[str, str]]:
    """(role, text) of GenAI ``gen_ai.input.messages`` / ``gen_ai.output.messages``."""
    messages = _decoded(value)
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        return []
    found = []
    for message in messages:
        if isinstance(message, Mapping):
            text = _joined(_texts(message.get("parts")))
            if text:
                found.append((str(message.get("role") or "user"), text))

    return found


def _system_message(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    text = _joined(_texts(_decoded(values.get("gen_ai.system_instructions"))))

    return [("system", text)] if text else []


_INDEXED: Final = re.compile(r"(\d+)\.(.+)")


def _indexed(values: Mapping[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """``prefix.N.rest`` attributes as {N: {rest: value}}."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in values.items():
        if key.startswith(prefix):
            match = _INDEXED.fullmatch(key[len(prefix) :])
            if match is not None:
                found.setdefault(int(match[1]), {})[match[2]] = value

    return found


def _indexed_messages(values: Mapping[str, Any], prefix: str) -> list[tuple[str, str]]:
    """(role, text) of OpenLLMetry's ``gen_ai.prompt.N.role`` / ``.content`` attributes."""
    found = []
    for _, fields in sorted(_indexed(values, prefix).items()):
        text = _joined(_texts(_decoded(fields.get("content"))))
        if text:
            role = str(fields.get("role") or ("assistant" if "completion" in prefix else "user"))
            found.append((role, text))

    return found


def _openinference_messages(values: Mapping[str, Any], prefix: str) -> list[tuple[str, str]]:
    """(role, text) of ``llm.input_messages.N.message.*`` attributes."""
    found = []
    for _, fields in sorted(_indexed(values, prefix).items()):
        parts = _indexed(fields, "message.contents.")
        texts = [fields.get("message.content")] + [
            part.get("message_content.text") for _, part in sorted(parts.items())
        ]
        text = _joined(text for text in texts if isinstance(text, str))
        if text:
            found.append((str(fields.get("message.role") or "user"), text))

    return found


def _is_plain_text(values: Mapping[str, Any], name: str) -> bool:
    value = values.get(f"{name}.value")
    mime_type = values.get(f"{name}.mime_type", "text/plain")

    return isinstance(value, str) and bool(value) and mime_type == "text/plain"


def _content(prompt: list[tuple[str, str]], output: list[tuple[str, str]]) -> dict[str, Any]:
    """Our content attributes, in the form the request and response hooks write them."""
    added: dict[str, Any] = {}
    if prompt:
        messages = [{"role": role, "content": text} for role, text in prompt]
        added[attr.PROMPT_MESSAGES] = json.dumps(messages)
        added[attr.PROMPT] = "\n".join(text for _, text in prompt)
    if output:
        added[attr.GENERATION] = "\n".join(text for _, text in output)

    return added
