"""The otel-bedrock collector: OTLP in from any service, PostHog events out."""
