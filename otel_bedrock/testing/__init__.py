"""Emulators for testing code that calls Bedrock and sends events to PostHog.

Both run a real HTTP server on loopback in a daemon thread, so real clients (boto3,
posthog-python) talk to them unchanged:

- ``BedrockEmulator``: Bedrock Runtime (InvokeModel, InvokeModelWithResponseStream, Converse,
  ConverseStream, CountTokens) with scripted responses, fault injection and recording replay.
- ``CaptureEmulator``: the PostHog capture API, recording the events it accepts.
- ``eventstream``: an encoder for the binary event-stream format of Bedrock's streams.
"""

from __future__ import annotations

from otel_bedrock.testing import eventstream
from otel_bedrock.testing.bedrock import (
    BedrockEmulator,
    RecordedRequest,
    ScriptedResponse,
    error_response,
    server_error,
    stream,
    stream_exception_after,
    throttle,
    validation_error,
)
from otel_bedrock.testing.capture import CapturedEvent, CaptureEmulator, CaptureRequest
from otel_bedrock.testing.posthog_api import PostHogApiEmulator

__all__ = [
    "BedrockEmulator",
    "CaptureEmulator",
    "CaptureRequest",
    "CapturedEvent",
    "PostHogApiEmulator",
    "RecordedRequest",
    "ScriptedResponse",
    "error_response",
    "eventstream",
    "server_error",
    "stream",
    "stream_exception_after",
    "throttle",
    "validation_error",
]
