"""The collector's Prometheus metrics, served as text on ``/metrics``.

Everything lives in a private :class:`~prometheus_client.CollectorRegistry`, so that a process
running two collectors (tests) or importing ``prometheus_client`` for its own reasons never
mixes their numbers. Names:

- ``otel_bedrock_collector_requests_total{transport,path,status}``: requests answered, by
  transport (``http``, ``grpc``), path (``/v1/traces``, ``TraceService/Export``...) and status
  (HTTP status number, or gRPC status name).
- ``otel_bedrock_collector_request_duration_seconds{transport,path}``: time to answer.
- ``otel_bedrock_collector_requests_in_flight``: requests being handled now.
- ``otel_bedrock_collector_ready``: 1 while ``/readyz`` answers 200.
- The intake's counts, read when scraped: ``otel_bedrock_collector_spans_received_total``,
  ``..._spans_converted_total``, ``..._spans_skipped_total``, ``..._spans_duplicate_total``,
  ``..._spans_rejected_total``, ``..._spans_failed_total``,
  ``..._log_records_received_total``, ``..._log_records_joined_total``,
  ``..._log_records_late_total``, the gauge ``..._spans_pending``, and the delivery's
  ``otel_bedrock_collector_events_total{outcome}`` (``sent``, ``retried``, ``spooled``,
  ``evicted``, ``dropped``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "otel_bedrock_collector"

# Intake counts with a name and help text of their own; other keys get a generic metric.
_INTAKE_METRICS = {
    "received": ("spans_received", "Spans received over OTLP, rejected ones included."),
    "converted": ("spans_converted", "Bedrock calls turned into PostHog events."),
    "skipped": ("spans_skipped", "Spans that traced no Bedrock model call."),
    "duplicates": (
        "spans_duplicate",
        "Spans of a Bedrock call already counted from another span (nested or re-sent).",
    ),
    "rejected": ("spans_rejected", "Spans refused for an invalid trace or span id."),
    "failed": ("spans_failed", "Spans that could not be read or turned into events."),
    "logs_received": ("log_records_received", "Log records received over OTLP."),
    "logs_joined": ("log_records_joined", "Content log records joined to their span."),
    "logs_late": ("log_records_late", "Content log records that came after their span left."),
}
_INTAKE_GAUGES = {
    "pending": ("spans_pending", "Bedrock spans waiting for their content log records."),
}
DELIVERY_OUTCOMES = ("sent", "retried", "spooled", "evicted", "dropped")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class IntakeCounts(Collector):
    """Reports the intake's counts as Prometheus counters each time ``/metrics`` is scraped.

    Called on the event loop's thread (through ``generate_latest``); ``counts`` must be cheap
    and thread-safe.
    """

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        """One counter per intake count, plus one labelled counter for delivery outcomes."""
        counts = dict(self._counts())
        events = CounterMetricFamily(
            f"{PREFIX}_events",
            "PostHog events by delivery outcome.",
            labels=["outcome"],
        )
        for outcome in DELIVERY_OUTCOMES:
            events.add_metric([outcome], counts.pop(outcome, 0))
        for key, value in sorted(counts.items()):
            if key in _INTAKE_GAUGES:
                name, documentation = _INTAKE_GAUGES[key]
                yield GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)
                continue
            name, documentation = _INTAKE_METRICS.get(key, (key, f"Intake count {key!r}."))
            yield CounterMetricFamily(f"{PREFIX}_{name}", documentation, value=value)
        yield events


class CollectorMetrics:
    """The request metrics of one collector and the registry that serves them.

    Updated from the event loop's thread; ``render`` runs there too.

    Args:
        counts: The intake's ``counts`` method, read at each scrape.
    """

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            f"{PREFIX}_requests",
            "OTLP and service requests answered, by transport, path and status.",
            ["transport", "path", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Seconds from a request's arrival to its answer.",
            ["transport", "path"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            f"{PREFIX}_requests_in_flight",
            "OTLP requests being handled now.",
            registry=self.registry,
        )
        self.ready = Gauge(
            f"{PREFIX}_ready",
            "1 while the collector takes new data (readyz answers 200), else 0.",
            registry=self.registry,
        )
        self.registry.register(IntakeCounts(counts))

    def observe(self, transport: str, path: str, status: int | str, seconds: float) -> None:
        """Count one answered request and its duration."""
        self.requests.labels(transport, path, str(status)).inc()
        self.duration.labels(transport, path).observe(seconds)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition body and its content type, in the format ``accept`` prefers."""
        encoder, content_type = choose_encoder(accept or "")

        return encoder(self.registry), content_type
