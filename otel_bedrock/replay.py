"""Replay recorded Bedrock exchanges through the whole pipeline.

Each file (the format of recorded exchanges: ``operation``, ``model_id``, ``request``,
``response`` or ``responses``, optional ``client``) is served by the Bedrock emulator, called
with real boto3 under the real botocore instrumentation and our hooks, consumed as its
``client`` block says, and exported through the real ``posthog`` client to the capture
emulator. The result is every event PostHog received, tagged with the file it came from.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from opentelemetry import context, trace
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_bedrock.config import load_settings
from otel_bedrock.exporter import PostHogSpanExporter
from otel_bedrock.processor import BedrockSpanProcessor
from otel_bedrock.setup import instrument_botocore
from otel_bedrock.testing import BedrockEmulator, CaptureEmulator
from otel_bedrock.testing._server import free_port

logger = logging.getLogger(__name__)

REPLAY_KEY = "phc_replay"
_METHODS = {
    "InvokeModel": "invoke_model",
    "InvokeModelWithResponseStream": "invoke_model_with_response_stream",
    "Converse": "converse",
    "ConverseStream": "converse_stream",
    "CountTokens": "count_tokens",
}


@dataclass(frozen=True)
class ReplayedEvent:
    """One event the capture emulator received, and the file whose call produced it."""

    source: str
    event: str
    distinct_id: str
    properties: dict[str, Any]

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(
            {
                "source": self.source,
                "event": self.event,
                "distinct_id": self.distinct_id,
                "properties": self.properties,
            },
            sort_keys=True,
            default=str,
        )


def exchange_files(paths: Iterable[str]) -> list[tuple[str, Path]]:
    """Each path as given, with folders expanded to the ``*.json`` files they hold."""
    found: list[tuple[str, Path]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found.extend((str(child), child) for child in sorted(path.glob("*.json")))
        else:
            found.append((given, path))

    return found


def replay(paths: Iterable[str], *, capture_content: bool = False) -> list[ReplayedEvent]:
    """Replay every exchange file and return the events PostHog received for them.

    Raises:
        FileNotFoundError, ValueError: for a missing or unreadable exchange file.
    """
    files = exchange_files(paths)
    exchanges = [(source, json.loads(path.read_text())) for source, path in files]
    with BedrockEmulator() as bedrock, CaptureEmulator() as capture:
        settings = load_settings(
            api_key=REPLAY_KEY, host=capture.url, capture_content=capture_content, spool="off"
        )
        provider = TracerProvider()
        exporter = PostHogSpanExporter(settings=settings)
        provider.add_span_processor(BedrockSpanProcessor())
        provider.add_span_processor(BatchSpanProcessor(exporter))
        instrument_botocore(settings, tracer_provider=provider)
        sources: dict[str, str] = {}
        try:
            for index, (source, exchange) in enumerate(exchanges, start=1):
                sources[index.to_bytes(16, "big").hex()] = source
                with _trace(index):
                    try:
                        _call(bedrock, exchange)
                    except Exception:
                        logger.exception("replay_file_failed source=%s", source)
        finally:
            provider.shutdown()
            BotocoreInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
        received = list(capture.events)

    return [
        ReplayedEvent(
            source=sources.get(str(item["properties"].get("trace_id", "")), "?"),
            event=item["event"],
            distinct_id=str(item["distinct_id"]),
            properties=dict(item["properties"]),
        )
        for item in received
    ]


@contextmanager
def _trace(index: int) -> Iterator[None]:
    """Run the block inside a trace whose id identifies the replayed file."""
    parent = SpanContext(
        trace_id=index,
        span_id=index,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        yield
    finally:
        context.detach(token)


def _call(bedrock: BedrockEmulator, exchange: Mapping[str, Any]) -> None:
    """Make the boto3 call an exchange describes and consume it as its client block says."""
    behaviour = exchange.get("client") or {}
    bedrock.reset()
    # The file's own retry setting, else exactly one attempt per recorded response.
    retries: dict[str, Any] = {"mode": "standard"}
    if "max_attempts" in behaviour:
        retries["max_attempts"] = behaviour["max_attempts"]
    else:
        retries["total_max_attempts"] = len(exchange.get("responses") or [0])
    endpoint = bedrock.endpoint_url
    if behaviour.get("transport") == "refused":
        endpoint = f"http://127.0.0.1:{free_port()}"
    else:
        _load_responses(bedrock, exchange, retries.get("max_attempts"))
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="replay",
        aws_secret_access_key="replay",
        config=Config(
            retries=retries,
            connect_timeout=2,
            read_timeout=10,
        ),
    )
    operation = exchange["operation"]
    try:
        response = getattr(client, _METHODS[operation])(**call_arguments(exchange))
        _consume(operation, response, behaviour.get("break_after_events"))
    except (ClientError, BotoCoreError) as error:
        logger.debug("replay_call_failed operation=%s error=%s", operation, error)


def _load_responses(
    bedrock: BedrockEmulator, exchange: Mapping[str, Any], max_retries: Any
) -> None:
    """Queue the recorded responses; retries beyond them get the last one again.

    botocore makes up to ``max_attempts + 1`` attempts; without this, a retry that the file did
    not record would get the emulator's made-up success.
    """
    recorded = bedrock.load_exchange(exchange)
    attempts = max_retries + 1 if isinstance(max_retries, int) else recorded
    if recorded and attempts > recorded:
        responses = exchange.get("responses") or [exchange.get("response")]
        last = [response for response in responses if response][-1]
        bedrock.load_exchange({"responses": [last] * (attempts - recorded)})


def _consume(operation: str, response: dict[str, Any], break_after: int | None) -> None:
    key = {"ConverseStream": "stream", "InvokeModelWithResponseStream": "body"}.get(operation)
    if key is None:
        body = response.get("body")
        if body is not None:
            body.read()
        return
    stream = response.pop(key)
    for seen, _event in enumerate(stream, start=1):
        if break_after is not None and seen >= break_after:
            break
    # Dropping the last reference is what an application that stops early does.
    del stream


def call_arguments(exchange: Mapping[str, Any]) -> dict[str, Any]:
    """The boto3 keyword arguments for an exchange's request."""
    operation = exchange["operation"]
    model_id = exchange["model_id"]
    body = exchange.get("request", {}).get("body") or ""
    headers = {k.lower(): v for k, v in (exchange.get("request", {}).get("headers") or {}).items()}
    if operation in ("InvokeModel", "InvokeModelWithResponseStream"):
        arguments: dict[str, Any] = {"modelId": model_id, "body": body.encode("utf-8")}
        if "content-type" in headers:
            arguments["contentType"] = headers["content-type"]
        if "accept" in headers:
            arguments["accept"] = headers["accept"]
        return arguments
    try:
        decoded = json.loads(body) if body else {}
    except ValueError:
        # Some recorders kept a damaged request body; the response is what is replayed.
        logger.warning("replay_request_unreadable model_id=%s; sending a stand-in", model_id)
        decoded = {"messages": [{"role": "user", "content": [{"text": "(unreadable)"}]}]}
    decoded.pop("modelId", None)

    return {"modelId": model_id, **_binary_fields(decoded)}


def _binary_fields(value: Any, parent: str | None = None) -> Any:
    """Turn the base64 text of ``bytes`` fields back into bytes, as boto3 takes them."""
    if isinstance(value, dict):
        return {key: _binary_fields(item, key) for key, item in value.items()}
    if isinstance(value, list):
        return [_binary_fields(item, parent) for item in value]
    if parent == "bytes" and isinstance(value, str):
        return base64.b64decode(value)

    return value
