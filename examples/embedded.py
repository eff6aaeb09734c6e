"""A service that already sets up OpenTelemetry, adding otel-bedrock with one call.

``otel_bedrock.configure`` adds our processor and the PostHog exporter to the service's tracer
provider and instruments botocore. ``POSTHOG_API_KEY`` (and ``POSTHOG_HOST``) come from the
environment; ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` may point boto3 at the Bedrock emulator.
"""

import json
import os

import boto3
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import otel_bedrock

provider = TracerProvider(resource=Resource.create({"service.name": "recipe-service"}))
trace.set_tracer_provider(provider)
pipeline = otel_bedrock.configure(provider)

client = boto3.client("bedrock-runtime", region_name=os.environ.get("AWS_REGION", "us-east-1"))
body = {"prompt": "Suggest a recipe with eggs and spinach.", "max_gen_len": 128}

with otel_bedrock.identify("cook@example.com"):
    response = client.invoke_model(modelId="meta.llama3-1-8b-instruct-v1:0", body=json.dumps(body))
print(json.loads(response["body"].read())["generation"])

# A long-running service flushes on exit by itself; a serverless handler calls this before
# returning.
pipeline.flush()
