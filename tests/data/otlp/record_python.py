"""Record the spans and log records that Python Bedrock instrumentations export, as OTLP JSON.

Three commands (see README.md beside this file):

``plan``
    Build ``calls.json``: the six Bedrock calls every dialect makes, each with the request it
    sends and the reply the emulator serves (real replies from
    ``tests/data/bedrock/recordings``, one written by hand). Standard library only.
``serve``
    Run ``otel_bedrock.testing.BedrockEmulator`` (needs the project's own environment). Prints
    the endpoint URL, then for every call name read on standard input queues that call's reply
    and answers ``ok``. The Node recorder uses it too.
``record DIALECT``
    Run in a throwaway environment that holds the dialect's instrumentation: make the six calls
    with real boto3 against the emulator and write ``DIALECT/<call>.traces.json`` (an
    ExportTraceServiceRequest) and ``DIALECT/<call>.logs.json`` (an ExportLogsServiceRequest,
    only when the instrumentation emitted log records).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CALLS_FILE = HERE / "calls.json"
RECORDINGS = REPO / "tests" / "data" / "bedrock" / "recordings"
REGION = "us-east-1"
USER = "user-42"
SESSION = "session-7"

# name -> (operation, recording file) for the calls that replay a real Bedrock exchange.
_RECORDED = {
    "invoke_claude": ("InvokeModel", "openllmetry__test_anthropic__test_prompt_cache__0.json"),
    "invoke_stream": (
        "InvokeModelWithResponseStream",
        "openllmetry__test_anthropic__test_anthropic_3_completion_streaming__0.json",
    ),
    "converse": (
        "Converse",
        "pydantic-ai__test_bedrock__test_bedrock_cache_usage_includes_cache_tokens__0.json",
    ),
    "converse_stream": (
        "ConverseStream",
        "openllmetry__test_meta__test_meta_converse_stream__0.json",
    ),
}
_KEPT_HEADERS = frozenset(
    {
        "content-type",
        "x-amzn-requestid",
        "x-amzn-bedrock-content-type",
        "x-amzn-bedrock-input-token-count",
        "x-amzn-bedrock-output-token-count",
        "x-amzn-bedrock-cache-read-input-token-count",
        "x-amzn-bedrock-cache-write-input-token-count",
        "x-amzn-bedrock-invocation-latency",
    }
)
_LLAMA_PROMPT = (
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    "Name three spices for a curry.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)
_ERROR_MESSAGE = (
    "A conversation must start with a user message. "
    "Try again with a conversation that starts with a user message."
)


# ---------------------------------------------------------------------------------------------
# plan


def _recorded_call(name: str, operation: str, file_name: str) -> dict[str, Any]:
    exchange = json.loads((RECORDINGS / file_name).read_text())
    response = exchange["response"]
    reply = {
        "status": response["status"],
        "headers": {k: v for k, v in response["headers"].items() if k in _KEPT_HEADERS},
    }
    reply.update({k: response[k] for k in ("body", "body_base64") if k in response})

    return {
        "name": name,
        "operation": operation,
        "model_id": exchange["model_id"],
        "request": json.loads(exchange["request"]["body"]),
        "reply": reply,
        "source": exchange["id"],
    }


def _llama_call() -> dict[str, Any]:
    """A Llama 3.1 8B InvokeModel reply in Bedrock's format, written by hand."""
    body = {
        "generation": "Cumin, coriander and turmeric.",
        "prompt_token_count": 21,
        "generation_token_count": 9,
        "stop_reason": "stop",
    }
    headers = {
        "content-type": "application/json",
        "x-amzn-requestid": "5f0c1c55-0f5e-4a4c-9a55-6d4b0e5f2a11",
        "x-amzn-bedrock-input-token-count": "21",
        "x-amzn-bedrock-output-token-count": "9",
        "x-amzn-bedrock-invocation-latency": "312",
    }

    return {
        "name": "invoke_llama",
        "operation": "InvokeModel",
        "model_id": "meta.llama3-1-8b-instruct-v1:0",
        "request": {"prompt": _LLAMA_PROMPT, "max_gen_len": 128, "temperature": 0.5},
        "reply": {"status": 200, "headers": headers, "body": json.dumps(body)},
        "source": "written by hand in Bedrock's Llama format",
    }


def _error_call() -> dict[str, Any]:
    """A Converse request that Bedrock refuses with a 400 ValidationException."""
    headers = {
        "content-type": "application/json",
        "x-amzn-requestid": "9d6e4f0a-3b1c-4e55-8f5e-2c7a1d0b6e33",
        "x-amzn-errortype": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
    }

    return {
        "name": "converse_error",
        "operation": "Converse",
        "model_id": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "request": {"messages": [{"role": "assistant", "content": [{"text": "Hello"}]}]},
        "reply": {
            "status": 400,
            "headers": headers,
            "body": json.dumps({"message": _ERROR_MESSAGE}),
        },
        "source": "written by hand: Bedrock's answer to a conversation opened by the assistant",
    }


def plan() -> None:
    recorded = {name: _recorded_call(name, *spec) for name, spec in _RECORDED.items()}
    calls = [
        recorded["invoke_claude"],
        _llama_call(),
        recorded["invoke_stream"],
        recorded["converse"],
        recorded["converse_stream"],
        _error_call(),
    ]
    CALLS_FILE.write_text(json.dumps(calls, indent=1) + "\n")


def load_calls() -> list[dict[str, Any]]:
    return list(json.loads(CALLS_FILE.read_text()))


# ---------------------------------------------------------------------------------------------
# serve


def serve() -> None:
    from otel_bedrock.testing import BedrockEmulator

    calls = {call["name"]: call for call in load_calls()}
    with BedrockEmulator() as emulator:
        print(emulator.endpoint_url, flush=True)
        for line in sys.stdin:
            emulator.load_exchange({"response": calls[line.strip()]["reply"]})
            print("ok", flush=True)


@contextlib.contextmanager
def emulator_process() -> Iterator[Callable[[str], str]]:
    """Start ``serve`` in the project's environment; yield a function that queues a reply."""
    python = os.environ.get("PROJECT_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    process = subprocess.Popen(
        [python, __file__, "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stdin is not None and process.stdout is not None
    url = process.stdout.readline().strip()

    def queue(name: str) -> str:
        process.stdin.write(name + "\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "ok"
        return url

    try:
        yield queue
    finally:
        process.stdin.close()
        process.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
# record


def _to_otlp_json(message: Any) -> dict[str, Any]:
    """OTLP JSON as the specification writes it: lowerCamelCase, integer enums, hex ids."""
    from google.protobuf.json_format import MessageToDict

    document = MessageToDict(message, use_integers_for_enums=True)

    def hex_ids(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    hex_ids(value)
        elif isinstance(node, list):
            for item in node:
                hex_ids(item)

    hex_ids(document)

    return document


def _client(endpoint_url: str) -> Any:
    import boto3

    return boto3.client(
        "bedrock-runtime",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _make_call(client: Any, call: dict[str, Any]) -> None:
    """One boto3 call as an application makes it; streams are read to the end."""
    model_id, request = call["model_id"], call["request"]
    operation = call["operation"]
    try:
        if operation == "InvokeModel":
            response = client.invoke_model(modelId=model_id, body=json.dumps(request))
            response["body"].read()
        elif operation == "InvokeModelWithResponseStream":
            response = client.invoke_model_with_response_stream(
                modelId=model_id, body=json.dumps(request)
            )
            for _ in response["body"]:
                pass
        elif operation == "Converse":
            client.converse(modelId=model_id, **request)
        elif operation == "ConverseStream":
            response = client.converse_stream(modelId=model_id, **request)
            for _ in response["stream"]:
                pass
    except client.exceptions.ClientError as error:
        print(f"  {call['name']}: {error}", file=sys.stderr)


def _baggage_identity(key: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """Identity the OpenTelemetry way: baggage that a BaggageSpanProcessor copies onto spans."""

    @contextlib.contextmanager
    def identity() -> Iterator[None]:
        from opentelemetry import baggage, context

        token = context.attach(baggage.set_baggage(key, USER))
        try:
            yield
        finally:
            context.detach(token)

    return identity


def _providers(extra_span_processors: list[Any]) -> tuple[Any, Any, Any, Any]:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    resource = Resource.create({"service.name": "recipe-service"})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    for processor in extra_span_processors:
        tracer_provider.add_span_processor(processor)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))

    return tracer_provider, logger_provider, spans, logs


def _setup_botocore() -> tuple[Any, Any, Any]:
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor

    tracer_provider, logger_provider, spans, logs = _providers(
        [BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS)]
    )
    BotocoreInstrumentor().instrument(
        tracer_provider=tracer_provider, logger_provider=logger_provider
    )

    return spans, logs, _baggage_identity("user.id")


def _setup_genai_bedrock() -> tuple[Any, Any, Any]:
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_AND_EVENT"
    from opentelemetry.instrumentation.genai.bedrock import BedrockInstrumentor
    from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor

    tracer_provider, logger_provider, spans, logs = _providers(
        [BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS)]
    )
    BedrockInstrumentor().instrument(
        tracer_provider=tracer_provider, logger_provider=logger_provider
    )

    return spans, logs, _baggage_identity("enduser.id")


def _setup_openllmetry() -> tuple[Any, Any, Any]:
    os.environ["TRACELOOP_TELEMETRY"] = "false"
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from traceloop.sdk import Traceloop
    from traceloop.sdk.instruments import Instruments

    spans = InMemorySpanExporter()
    Traceloop.init(
        app_name="recipe-service",
        exporter=spans,
        # Its stream wrappers fail when metrics are off, so they go nowhere instead.
        metrics_exporter=ConsoleMetricExporter(out=open(os.devnull, "w")),
        disable_batch=True,
        telemetry_enabled=False,
        instruments={Instruments.BEDROCK},
    )

    @contextlib.contextmanager
    def identity() -> Iterator[None]:
        Traceloop.set_association_properties({"user_id": USER, "session_id": SESSION})
        yield

    return spans, None, identity


def _setup_openinference() -> tuple[Any, Any, Any]:
    from openinference.instrumentation import using_attributes
    from openinference.instrumentation.bedrock import BedrockInstrumentor

    tracer_provider, _, spans, _ = _providers([])
    BedrockInstrumentor().instrument(tracer_provider=tracer_provider)

    def identity() -> contextlib.AbstractContextManager[Any]:
        return using_attributes(user_id=USER, session_id=SESSION)  # type: ignore[no-any-return]

    return spans, None, identity


DIALECTS = {
    "botocore": _setup_botocore,
    "genai-bedrock": _setup_genai_bedrock,
    "openllmetry": _setup_openllmetry,
    # The same instrumentation before it moved to the GenAI conventions' names (0.47.5).
    "openllmetry-0.47": _setup_openllmetry,
    "openinference": _setup_openinference,
}


def _write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=1) + "\n")


def record(dialect: str) -> None:
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    spans, logs, identity = DIALECTS[dialect]()
    out = HERE / dialect
    out.mkdir(exist_ok=True)
    with emulator_process() as queue:
        for call in load_calls():
            url = queue(call["name"])
            with identity():
                _make_call(_client(url), call)
            finished = spans.get_finished_spans()
            document = _to_otlp_json(encode_spans(finished))
            _write(out / f"{call['name']}.traces.json", document)
            spans.clear()
            if logs is not None and (records := logs.get_finished_logs()):
                document = _to_otlp_json(encode_logs(records))
                (out / f"{call['name']}.logs.json").write_text(
                    json.dumps(document, indent=1) + "\n"
                )
                logs.clear()
            print(f"  {dialect}/{call['name']}: {len(finished)} spans", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plan")
    commands.add_parser("serve")
    record_command = commands.add_parser("record")
    record_command.add_argument("dialect", choices=sorted(DIALECTS))
    args = parser.parse_args()
    if args.command == "plan":
        plan()
    elif args.command == "serve":
        serve()
    else:
        record(args.dialect)


if __name__ == "__main__":
    main()
