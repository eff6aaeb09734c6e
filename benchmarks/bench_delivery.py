"""Delivery throughput and the cost of handing an event over, against posthog-python itself.

Builds real Bedrock spans once (real boto3 against the Bedrock emulator, with our hooks), then
runs three deliveries of the same burst, one after the other, against the same capture emulator:

1. ours at its defaults: hands N copies (fresh span ids) to ``PostHogSpanExporter.export`` in
   batches of 512, as the batch span processor does, and times until the emulator has received
   every event that delivery did not count as lost. Each ``export`` call is timed too: its cost
   per span on the exporter's thread while delivery is busy. The memory queue holds 10,000
   events; the rest of the burst goes through the spool.
2. ours with ``max_queue`` raised to N, as the baseline's queue is: the like-for-like run.
3. baseline: ``posthog.Client`` on the same host, sending gzip as our transport does, with
   ``max_queue_size`` raised to N (its default, 10,000, would drop the rest of the burst).
   ``capture()`` of the same N events (name, distinct id, uuid, timestamp, properties), in
   chunks of 512, then ``flush()``, timed until the emulator has every event it queued. Each
   chunk of ``capture()`` calls is timed per event: the cost on the calling thread.

It prints the three, then run 2 / run 3 for throughput and for the per-event cost on the thread
that hands events over. The spool lives in a temporary folder. Run:
``.venv/bin/python benchmarks/bench_delivery.py`` (``--events N``, default 20,000). Always
exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags
from posthog.client import Client
from posthog.version import VERSION as POSTHOG_VERSION

from otel_bedrock.config import load_settings
from otel_bedrock.events import CaptureEvent
from otel_bedrock.exporter import PostHogSpanExporter
from otel_bedrock.setup import instrument_botocore
from otel_bedrock.testing import BedrockEmulator, CaptureEmulator

BATCH = 512
KEY = "phc_bench"
TIMEOUT = 120.0
"""Seconds each client is given to deliver the burst."""


@dataclass
class Run:
    """What one client did with the burst.

    Attributes:
        name: The client.
        handed: Seconds to hand every event over.
        total: Seconds from the first event handed over until the emulator had every event the
            client did not count as lost (or until the timeout).
        complete: The emulator received every event that was not counted as lost.
        arrived: Events the emulator received.
        lost: Events the client counted as dropped.
        per_event: Microseconds per event on the handing thread, one value per chunk of 512.
        detail: Anything else the client reports (our delivery counters).
        property_names: The properties of one received event.
    """

    name: str
    handed: float = 0.0
    total: float = 0.0
    complete: bool = False
    arrived: int = 0
    lost: int = 0
    per_event: list[float] = field(default_factory=list)
    detail: str = ""
    property_names: frozenset[str] = frozenset()

    @property
    def throughput(self) -> float:
        """Events received per second, end to end."""
        return self.arrived / self.total if self.total else 0.0

    @property
    def median_cost(self) -> float:
        """The median per-event cost on the handing thread, in µs."""
        return statistics.median(self.per_event)


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


def wait_for_delivery(capture: CaptureEmulator, expected: Callable[[], int]) -> bool:
    """Wait until the emulator holds ``expected()`` events (read again as losses are counted)."""
    deadline = time.perf_counter() + TIMEOUT
    while time.perf_counter() < deadline:
        if capture.wait_for(expected(), timeout=0.05):
            return True

    return False


def received(run: Run, capture: CaptureEmulator) -> None:
    """Record what the emulator received for ``run``."""
    events = capture.events
    run.arrived = len(events)
    if events:
        run.property_names = frozenset(events[0]["properties"])


def run_ours(
    spans: Sequence[ReadableSpan], capture: CaptureEmulator, max_queue: int | None = None
) -> Run:
    """Export ``spans`` through ``PostHogSpanExporter`` in batches, as the span processor does.

    ``max_queue`` sets the memory queue; None keeps the default.
    """
    queue = "default max_queue" if max_queue is None else f"max_queue={max_queue:,}"
    run = Run(f"otel-bedrock PostHogSpanExporter, {queue}")
    exporter = PostHogSpanExporter(api_key=KEY, host=capture.url, max_queue=max_queue)
    counters = exporter.delivery.counters
    started = time.perf_counter()
    for offset in range(0, len(spans), BATCH):
        chunk = spans[offset : offset + BATCH]
        before = time.perf_counter()
        exporter.export(chunk)
        run.per_event.append((time.perf_counter() - before) / len(chunk) * 1e6)
    run.handed = time.perf_counter() - started
    run.complete = wait_for_delivery(
        capture, lambda: len(spans) - counters.dropped - counters.evicted
    )
    run.total = time.perf_counter() - started
    exporter.shutdown()
    values = counters.snapshot()
    run.lost = values["dropped"] + values["evicted"]
    run.detail = " ".join(f"{name}={value}" for name, value in values.items())
    received(run, capture)

    return run


def run_baseline(events: Sequence[CaptureEvent], capture: CaptureEmulator) -> Run:
    """Capture ``events`` with posthog-python's client, then flush it."""
    queue = max(len(events), 10_000)
    run = Run(f"posthog-python {POSTHOG_VERSION} Client, gzip=True, max_queue_size={queue:,}")
    failed: list[Any] = []
    client = Client(
        KEY,
        host=capture.url,
        gzip=True,
        max_queue_size=queue,
        on_error=lambda _error, batch: failed.extend(batch),
    )
    refused = 0
    started = time.perf_counter()
    for offset in range(0, len(events), BATCH):
        chunk = events[offset : offset + BATCH]
        before = time.perf_counter()
        for event in chunk:
            uuid = client.capture(
                event.event,
                distinct_id=event.distinct_id,
                properties=event.properties,
                uuid=event.uuid,
                timestamp=event.timestamp,
            )
            refused += uuid is None
        run.per_event.append((time.perf_counter() - before) / len(chunk) * 1e6)
    run.handed = time.perf_counter() - started
    client.flush(timeout_seconds=TIMEOUT)
    run.complete = wait_for_delivery(capture, lambda: len(events) - refused - len(failed))
    run.total = time.perf_counter() - started
    client.shutdown()
    run.lost = refused + len(failed)
    run.detail = f"refused by capture()={refused} failed batches' events={len(failed)}"
    received(run, capture)

    return run


def show(run: Run, count: int) -> None:
    """Print one client's figures."""
    print(f"{run.name}:")
    print(
        f"  received {run.arrived:,} of {count:,}; lost (counted by the client) {run.lost:,}; "
        f"all others received: {'yes' if run.complete else 'NO'}"
    )
    print(f"  handed over in {run.handed:.2f} s; delivered in {run.total:.2f} s")
    print(f"  throughput, end to end: {run.throughput:,.0f} events/s")
    print(
        f"  cost per event on the handing thread: median {run.median_cost:.1f} µs, "
        f"max {max(run.per_event):.1f} µs"
    )
    print(f"  {run.detail}")


def interpret(ours: Run, baseline: Run, defaults: Run) -> list[str]:
    """Lines saying what the ratios mean, and what the run at our defaults lost."""
    speed = ours.throughput / baseline.throughput if baseline.throughput else 0.0
    pace = (
        f"otel-bedrock delivers {speed:.2f}x as fast as posthog-python"
        if speed >= 1
        else f"otel-bedrock delivers at {speed:.0%} of posthog-python's rate"
    )
    lines = [
        f"{pace}; export() costs {ours.median_cost / baseline.median_cost:.2f}x a capture() call "
        "per event while doing more (span to priced event), on the span processor's thread where "
        "capture() runs on the application's."
    ]
    for run in (ours, baseline):
        if run.lost or not run.complete:
            lines.append(f"Not like for like: {run.name} did not deliver the whole burst.")
    if defaults.lost or not defaults.complete:
        lines.append(
            f"At its defaults otel-bedrock lost {defaults.lost:,} events of the burst "
            f"({defaults.detail}); the ratios above use the run with the same queue size."
        )

    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["OTEL_BEDROCK_DATA_DIR"] = folder
        with BedrockEmulator() as bedrock, CaptureEmulator(accepted_keys={KEY}) as capture:
            spans = copies(recorded_span(bedrock), options.events)
            builder = PostHogSpanExporter(api_key=KEY, host=capture.url)
            events = [event for span in spans for event in builder.events_for(span)]
            builder.shutdown()
            defaults = run_ours(spans, capture)
            capture.reset()
            ours = run_ours(spans, capture, max_queue=max(len(events), 10_000))
            capture.reset()
            baseline = run_baseline(events, capture)
    print("otel-bedrock delivery benchmark, against posthog-python on the same capture emulator")
    print(
        f"  {len(events):,} events of {len(events[0].properties)} properties, handed over in "
        f"chunks of {BATCH}"
    )
    for run in (defaults, ours, baseline):
        show(run, len(events))
    extra = sorted(baseline.property_names - ours.property_names)
    missing = sorted(ours.property_names - baseline.property_names)
    print(
        f"properties on the wire: posthog-python adds {', '.join(extra) or 'none'}; "
        f"lacks {', '.join(missing) or 'none'}"
    )
    speed = ours.throughput / baseline.throughput if baseline.throughput else 0.0
    print("ours (same queue size) / baseline:")
    print(f"  throughput: {speed:.2f}")
    print(
        "  per-event cost on the handing thread (median): "
        f"{ours.median_cost / baseline.median_cost:.2f}"
    )
    for line in interpret(ours, baseline, defaults):
        print(line)


if __name__ == "__main__":
    main()
