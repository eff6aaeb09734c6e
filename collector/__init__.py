"""The otel-bedrock collector: OTLP in from any service, PostHog events out.

Services in any language export spans (and, with content capture, log records) over OTLP; the
collector turns the spans of Bedrock model calls into the same PostHog events as the
in-process exporter, with the same code. Its parts, in the order data flows:

- :mod:`collector.otlp`: OTLP/HTTP bodies (protobuf or JSON, compressed or not) to export
  requests, and the responses back;
- :mod:`collector.spans`: spans and log records of a request as immutable values;
- :mod:`collector.dialects`: the attributes of each instrumentation in our canonical names;
- :mod:`collector.pipeline`: :class:`~collector.pipeline.Intake`, which de-duplicates nested
  spans, joins content, and hands spans to the exporter and delivery;
- :mod:`collector.settings`: the service's settings and the PostHog settings it shares with
  the in-process exporter;
- :mod:`collector.server`, :mod:`collector.metrics`, :mod:`collector.cli`: the OTLP/HTTP and
  OTLP/gRPC servers, their counters, and the ``otel-bedrock collector`` command.
"""
