"""Collector load: sustained Bedrock spans per second with zero loss, p99 latency, peak memory.

Everything runs in separate processes on this machine, as in a deployment:

- a PostHog capture emulator (:class:`otel_bedrock.testing.CaptureEmulator`), the collector's
  PostHog;
- the collector itself, ``python -m collector``, with its defaults (OTLP/HTTP, a spool on disk,
  delivery from a child process; ``--delivery thread`` for one process);
- ``--senders`` processes posting OTLP/HTTP protobuf requests, each of ``--batch`` Bedrock
  calls, back to back, as the stock exporters do. Each call is a recorded span (or nest of
  spans) from ``tests/data/otlp``, every dialect, with fresh trace and span ids.

Two runs of the same senders and the same bodies, in one process tree:

1. baseline: a sink that answers every OTLP request with an empty success at once and keeps
   nothing (aiohttp, as the collector's server). It shows what the senders and loopback carry
   on this machine, so the collector's figure can be read as a share of it.
2. the collector, timed from the first request until the capture emulator holds one event for
   every call (zero loss is checked, not assumed: the count must match exactly, and the
   collector's own counters must show nothing dropped).

It prints, for each run, the calls per second, request latency (p50, p99), and for the
collector the events received, its counters, the peak resident memory of its processes, the
CPU each process used (per call) and that of the capture emulator and the senders, then the
ratio of the collector's throughput to the baseline's. The per-call CPU of the receiving
process is the machine's speed during the run as much as the collector's: on a shared machine
it can nearly double from one run to the next, and the throughput moves with it. Target: at least
5,000 Bedrock spans per second.
Run: ``.venv/bin/python benchmarks/bench_collector.py`` (``--calls N``, default 60,000;
``--quick`` for a smoke run). Always exits 0.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.otlp import PROTOBUF, decode_traces
from otel_bedrock.testing import CaptureEmulator
from otel_bedrock.testing._server import free_port

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "tests" / "data" / "otlp"
KEY = "phc_bench"
TARGET = 5_000
TIMEOUT = 180.0
"""Seconds the collector is given to deliver every call's event."""


def recorded_calls() -> list[ExportTraceServiceRequest]:
    """Every recorded call of every dialect, one export request each."""
    calls = []
    for path in sorted(RECORDED.glob("*/*.traces.json")):
        calls.append(decode_traces(path.read_bytes(), "application/json"))

    return calls


def _fresh_ids(call: ExportTraceServiceRequest, rng: random.Random) -> ExportTraceServiceRequest:
    """A copy of ``call`` with a new trace id and new span ids, parent links kept."""
    copy = ExportTraceServiceRequest()
    copy.CopyFrom(call)
    trace_id = rng.randbytes(16)
    renamed: dict[bytes, bytes] = {}
    spans = [s for rs in copy.resource_spans for ss in rs.scope_spans for s in ss.spans]
    for span in spans:
        renamed[span.span_id] = rng.randbytes(8)
    for span in spans:
        span.trace_id = trace_id
        span.span_id = renamed[span.span_id]
        if span.parent_span_id in renamed:
            span.parent_span_id = renamed[span.parent_span_id]

    return copy


def build_bodies(calls: Sequence[ExportTraceServiceRequest], count: int, batch: int) -> list[bytes]:
    """Protobuf request bodies holding ``count`` calls, ``batch`` to a request."""
    rng = random.Random(7)
    bodies = []
    for first in range(0, count, batch):
        request = ExportTraceServiceRequest()
        for index in range(first, min(first + batch, count)):
            call = _fresh_ids(calls[index % len(calls)], rng)
            request.resource_spans.extend(call.resource_spans)
        bodies.append(request.SerializeToString())

    return bodies


RETRYABLE = frozenset({429, 502, 503, 504})
"""Statuses the stock OTLP exporters retry, after the server's ``Retry-After``."""


def send_all(url: str, bodies: list[bytes], conn: Connection) -> None:
    """Post every body to ``url`` over one keep-alive connection, retrying refusals after
    their ``Retry-After`` as the stock exporters do; report latencies (ms), refusals and
    failures."""
    import urllib3

    pool = urllib3.connection_from_url(url, maxsize=1)
    headers = {"Content-Type": PROTOBUF}
    conn.recv()  # the start signal
    cpu = time.process_time()
    latencies, refusals, failures = [], 0, 0
    for body in bodies:
        while True:
            started = time.perf_counter()
            answer = pool.urlopen("POST", "/v1/traces", body=body, headers=headers, retries=False)
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status not in RETRYABLE:
                failures += answer.status != 200
                break
            refusals += 1
            time.sleep(float(answer.headers.get("Retry-After", "1")))
    conn.send((latencies, refusals, failures, time.process_time() - cpu))


def serve_sink(port: int, conn: Connection) -> None:
    """An OTLP/HTTP endpoint that accepts everything and keeps nothing."""
    from aiohttp import web

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"", content_type=PROTOBUF)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", accept)
    conn.send("ready")
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def serve_capture(conn: Connection) -> None:
    """A capture emulator in this (child) process; answers event counts until told to stop."""
    with CaptureEmulator(accepted_keys={KEY}) as capture:
        conn.send(capture.url)
        while (message := conn.recv()) != "stop":
            count, timeout = message
            capture.wait_for(count, timeout)
            conn.send(len(capture.events))


@dataclass
class Sent:
    """What the senders saw: every request's latency (ms), refusals retried, failures, and
    when they started (``time.perf_counter``) and for how long they sent."""

    latencies: list[float] = field(default_factory=list)
    refusals: int = 0
    failures: int = 0
    started: float = 0.0
    seconds: float = 0.0
    cpu: float = 0.0


@dataclass
class Run:
    """What one run measured."""

    name: str
    calls: int
    seconds: float
    sent: Sent
    events: int | None = None
    counters: dict[str, float] | None = None
    peak_rss_mb: list[float] = field(default_factory=list)
    """Of the collector and of its delivery process."""
    cpu: list[float] = field(default_factory=list)
    """CPU seconds the collector, its delivery process and the capture emulator used during
    the run."""

    @property
    def rate(self) -> float:
        """Calls per second, end to end."""
        return self.calls / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        """A request latency percentile in ms."""
        ordered = sorted(self.sent.latencies)

        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def drive(url: str, bodies: list[bytes], senders: int) -> Sent:
    """Run ``senders`` processes over ``bodies``, timed from the start signal."""
    context = multiprocessing.get_context("spawn")
    shares = [bodies[index::senders] for index in range(senders)]
    links, processes = [], []
    for share in shares:
        parent, child = context.Pipe()
        process = context.Process(target=send_all, args=(url, share, child), daemon=True)
        process.start()
        links.append(parent)
        processes.append(process)
    time.sleep(1.0)  # let every sender import and connect before the clock starts
    started = time.perf_counter()
    for link in links:
        link.send("go")
    result = Sent(started=started)
    for link in links:
        latencies, refusals, failures, cpu = link.recv()
        result.cpu += cpu
        result.latencies.extend(latencies)
        result.refusals += refusals
        result.failures += failures
    result.seconds = time.perf_counter() - started
    for process in processes:
        process.join(timeout=10)

    return result


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
        time.sleep(0.1)


def run_sink(bodies: list[bytes], calls: int, senders: int) -> Run:
    """The baseline: the same senders against a sink."""
    context = multiprocessing.get_context("spawn")
    port = free_port()
    parent, child = context.Pipe()
    sink = context.Process(target=serve_sink, args=(port, child), daemon=True)
    sink.start()
    parent.recv()
    url = f"http://127.0.0.1:{port}"
    _wait_post(url)
    sent = drive(url, bodies, senders)
    sink.terminate()
    sink.join(timeout=5)

    return Run("baseline: sink", calls, sent.seconds, sent)


def _wait_post(url: str, timeout: float = 30.0) -> None:
    """Wait until an empty OTLP request to ``url`` is answered."""
    deadline = time.monotonic() + timeout
    empty = ExportTraceServiceRequest().SerializeToString()
    while True:
        request = urllib.request.Request(
            f"{url}/v1/traces", data=empty, headers={"Content-Type": PROTOBUF}
        )
        try:
            with urllib.request.urlopen(request, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
        time.sleep(0.1)


@contextmanager
def capture_process() -> Iterator[tuple[str, Connection, int]]:
    """A capture emulator in a child process.

    Yields its URL, the link that asks for its event count, and its process id.
    """
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve_capture, args=(child,), daemon=True)
    process.start()
    url: str = parent.recv()
    try:
        yield url, parent, process.pid or 0
    finally:
        parent.send("stop")
        process.join(timeout=5)


def scrape(url: str) -> dict[str, float]:
    """The collector's counters from ``/metrics``, by short name."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    counters = {}
    prefix = "otel_bedrock_collector_"
    for line in text.splitlines():
        if line.startswith(prefix + "events_total{"):  # the delivery's outcomes
            name, value = line.split()
            outcome = name.split('outcome="', 1)[1].split('"', 1)[0]
            counters[f"events_{outcome}"] = float(value)
        elif line.startswith(prefix) and "{" not in line:
            name, value = line.split()
            counters[name.removeprefix(prefix)] = float(value)

    return counters


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of a process, from ``/proc`` (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

    return float("nan")


def process_tree(pid: int) -> list[int]:
    """A process and its children, multiprocessing's resource tracker left out, from ``/proc``.

    For the collector: its receiving process and its delivery process.
    """
    children = [
        int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    ]

    return [pid] + [
        child
        for child in children
        if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far, from ``/proc`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")

    return (int(fields[11]) + int(fields[12])) / ticks


def run_collector(bodies: list[bytes], calls: int, senders: int, delivery: str) -> Run:
    """The same senders against the collector; timed until PostHog has every event."""
    port = free_port()
    with (
        capture_process() as (posthog_url, counts, capture_pid),
        tempfile.TemporaryDirectory() as folder,
    ):
        env = {
            **os.environ,
            "POSTHOG_API_KEY": KEY,
            "POSTHOG_HOST": posthog_url,
            "OTEL_BEDROCK_SPOOL_PATH": str(Path(folder) / "spool.db"),
        }
        command = [
            sys.executable,
            "-m",
            "collector",
            "--http-port",
            str(port),
            "--grpc-port",
            "0",
            "--delivery",
            delivery,
        ]
        log = open(Path(folder) / "collector.log", "wb")
        service = subprocess.Popen(command, env=env, stderr=log, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/readyz")
            pids = [*process_tree(service.pid), capture_pid]
            before = [cpu_seconds(pid) for pid in pids]
            sent = drive(url, bodies, senders)
            counts.send((calls, TIMEOUT))
            events = counts.recv()
            seconds = time.perf_counter() - sent.started
            cpu = [cpu_seconds(pid) - used for pid, used in zip(pids, before, strict=True)]
            time.sleep(0.5)  # the delivery's counters reach /metrics with its next answer
            counters = scrape(url)
            peak = [peak_rss_mb(pid) for pid in pids[:-1]]
        finally:
            service.terminate()
            service.wait(timeout=30)
            log.close()
        if events != calls:
            print(f"collector log tail:\n{(Path(folder) / 'collector.log').read_text()[-2000:]}")

    return Run("collector", calls, seconds, sent, events, counters, peak, cpu)


def report(runs: Sequence[Run], expected_events: int) -> None:
    """Print each run and the collector's ratio to the baseline."""
    print(
        f"{'run':<16} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} "
        f"{'refused':>8} {'failed':>7}"
    )
    for run in runs:
        print(
            f"{run.name:<16} {run.rate:>9,.0f} {run.percentile(0.5):>8.1f} "
            f"{run.percentile(0.99):>8.1f} {len(run.sent.latencies):>9,} "
            f"{run.sent.refusals:>8} {run.sent.failures:>7}"
        )
    baseline, ours = runs
    print()
    print(f"collector events received: {ours.events:,} of {expected_events:,} expected")
    lost = "none" if ours.events == expected_events and not ours.sent.failures else "SOME"
    split = len(ours.peak_rss_mb) > 1
    roles = "by process: receiving, delivering" if split else "one process"
    parts = " + ".join(f"{mb:.0f}" for mb in ours.peak_rss_mb)
    print(
        f"loss: {lost}; peak resident memory of the collector: {sum(ours.peak_rss_mb):.0f} MB "
        f"({parts} MB {roles})"
    )
    if ours.cpu:
        *collector, capture = ours.cpu
        per_call = " + ".join(f"{seconds / ours.calls * 1e6:.0f}" for seconds in collector)
        roles = "receiving, delivering" if split else "one process"
        print(
            f"CPU during the run, in cores: collector {sum(collector) / ours.seconds:.2f} "
            f"({per_call} us per call: {roles}), capture emulator "
            f"{capture / ours.seconds:.2f}, senders {ours.sent.cpu / ours.seconds:.2f}"
        )
    if ours.counters:
        shown = ", ".join(f"{name}={value:,.0f}" for name, value in sorted(ours.counters.items()))
        print(f"collector counters: {shown}")
    print(
        f"collector / baseline throughput: {ours.rate / baseline.rate:.2f}; "
        f"target {TARGET:,} calls/s: {'met' if ours.rate >= TARGET else 'NOT met'}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the baseline and the collector with the same senders and bodies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60_000, help="Bedrock calls sent per run")
    parser.add_argument("--batch", type=int, default=200, help="calls per OTLP request")
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument(
        "--delivery",
        choices=["process", "thread"],
        default="process",
        help="the collector's --delivery (default: its own default, process)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of 4,000 calls")
    args = parser.parse_args(argv)
    count = 4_000 if args.quick else args.calls

    calls = recorded_calls()
    print(f"{len(calls)} recorded calls from {RECORDED.relative_to(ROOT)}, {count:,} sent per run")
    bodies = build_bodies(calls, count, args.batch)
    size = statistics.mean(len(body) for body in bodies)
    print(f"{len(bodies):,} requests of {args.batch} calls, {size / 1024:.0f} KiB each", flush=True)
    baseline = run_sink(bodies, count, args.senders)
    ours = run_collector(bodies, count, args.senders, args.delivery)
    report([baseline, ours], count)


if __name__ == "__main__":
    main()
