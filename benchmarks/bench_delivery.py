"""Delivery throughput and the cost of an export call under a burst.

Builds real Bedrock spans once (real boto3 against the Bedrock emulator, with our hooks), then:

1. throughput: hands N copies (fresh span ids) to ``PostHogSpanExporter.export`` in batches of
   512, as the batch span processor does, and times until the capture emulator has received
   every event: events per second end to end;
2. burst cost: the time one ``export`` call of 512 spans takes on the exporter's thread while
   delivery is busy, per span.

The spool lives in a temporary folder. Run: ``.venv/bin/python benchmarks/bench_delivery.py``
(``--events N``, default 20,000). Always exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

import boto3
from botocore.config import Config
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from otel_bedrock.config import load_settings
from otel_bedrock.exporter import PostHogSpanExporter
from otel_bedrock.setup import instrument_botocore
from otel_bedrock.testing import BedrockEmulator, CaptureEmulator

BATCH = 512
KEY = "phc_bench"


def recorded_span(bedrock: BedrockEmulator) -> ReadableSpan:
    """One finished InvokeModel span, made by the real instrumentation and our hooks."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrument_botocore(load_settings(api_key=KEY), tracer_provider=provider)
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=bedrock.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"total_max_attempts": 1}),
    )
    body = b'{"prompt": "Eggs and spinach?", "max_gen_len": 64}'
    client.invoke_model(modelId="meta.llama3-1-8b-instruct-v1:0", body=body)
    BotocoreInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    [span] = spans.get_finished_spans()

    return span


def copies(span: ReadableSpan, count: int) -> list[ReadableSpan]:
    """``count`` copies of ``span``, each with its own span id (so its own event uuid)."""
    made = []
    for index in range(1, count + 1):
        context = SpanContext(
            trace_id=span.context.trace_id,
            span_id=index,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        made.append(
            ReadableSpan(
                name=span.name,
                context=context,
                attributes=span.attributes,
                events=span.events,
                start_time=span.start_time,
                end_time=span.end_time,
                status=span.status,
                kind=span.kind,
                resource=span.resource,
            )
        )

    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["OTEL_BEDROCK_DATA_DIR"] = folder
        with BedrockEmulator() as bedrock, CaptureEmulator(accepted_keys={KEY}) as capture:
            spans = copies(recorded_span(bedrock), options.events)
            exporter = PostHogSpanExporter(api_key=KEY, host=capture.url)
            export_times: list[float] = []
            started = time.perf_counter()
            for offset in range(0, len(spans), BATCH):
                chunk = spans[offset : offset + BATCH]
                before = time.perf_counter()
                exporter.export(chunk)
                export_times.append((time.perf_counter() - before) / len(chunk))
            handed = time.perf_counter() - started
            arrived = capture.wait_for(options.events, timeout=300)
            total = time.perf_counter() - started
            exporter.shutdown()
            counters: Any = exporter.delivery.counters
            counters = counters.snapshot() if hasattr(counters, "snapshot") else vars(counters)
    print("otel-bedrock delivery benchmark")
    print(f"  events: {options.events}, exported in batches of {BATCH}")
    print(f"  all received by the capture emulator: {'yes' if arrived else 'NO'}")
    print(f"  handed to the exporter in {handed:.2f} s; delivered in {total:.2f} s")
    print(f"  throughput, end to end: {options.events / total:,.0f} events/s")
    per_span = [value * 1e6 for value in export_times]
    print(
        "  export() cost per span on the exporter's thread: "
        f"median {statistics.median(per_span):.1f} µs, max {max(per_span):.1f} µs"
    )
    if counters:
        print(f"  delivery counters: {counters}")


if __name__ == "__main__":
    main()
