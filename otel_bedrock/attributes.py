"""Span attribute names that the hooks write and the exporter reads.

The upstream botocore instrumentation writes the ``gen_ai.*`` and ``rpc.*`` names; the names
below are ours. They carry what upstream misses or gets wrong, so that a span exported over
OTLP holds everything needed to build the PostHog event without re-reading the response.
Usage counts under ``bedrock.usage.*`` are always measured by Bedrock, never estimated.
"""

from __future__ import annotations

from typing import Final

# Upstream (semantic conventions and the botocore instrumentation).
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_CACHE_READ_TOKENS: Final = "gen_ai.usage.cache_read_input_tokens"
GEN_AI_CACHE_WRITE_TOKENS: Final = "gen_ai.usage.cache_creation_input_tokens"
GEN_AI_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
RPC_SERVICE: Final = "rpc.service"
RPC_METHOD: Final = "rpc.method"
CLOUD_REGION: Final = "cloud.region"
AWS_REQUEST_ID: Final = "aws.request_id"
RETRY_ATTEMPTS: Final = "retry_attempts"
HTTP_STATUS_CODE: Final = "http.status_code"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
ERROR_TYPE: Final = "error.type"

# Identity: the first of these found on a span names the PostHog person.
POSTHOG_DISTINCT_ID: Final = "posthog.distinct_id"
USER_ID: Final = "user.id"
ENDUSER_ID: Final = "enduser.id"
IDENTITY_KEYS: Final = (POSTHOG_DISTINCT_ID, USER_ID, ENDUSER_ID)
# Ours: the identity the caller's context named when the call started (baggage, identify(),
# PostHog's context, the enclosing span); the keys above, set on the span itself, win over it.
CONTEXT_DISTINCT_ID: Final = "bedrock.context.distinct_id"

# Ours: measured usage and facts upstream does not record.
USAGE_INPUT_TOKENS: Final = "bedrock.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "bedrock.usage.output_tokens"
USAGE_CACHE_READ_TOKENS: Final = "bedrock.usage.cache_read_input_tokens"
USAGE_CACHE_WRITE_TOKENS: Final = "bedrock.usage.cache_write_input_tokens"
USAGE_CACHE_WRITE_1H_TOKENS: Final = "bedrock.usage.cache_write_1h_input_tokens"
USAGE_SOURCE: Final = "bedrock.usage.source"
STOP_REASON: Final = "bedrock.stop_reason"
STREAM_COMPLETED: Final = "bedrock.stream.completed"
ATTEMPTS: Final = "bedrock.attempts"
SERVICE_TIER: Final = "bedrock.service_tier"
PERFORMANCE_LATENCY: Final = "bedrock.performance_latency"
INVOKED_MODEL: Final = "bedrock.invoked_model"
ERROR_CODE: Final = "bedrock.error.type"
ERROR_MESSAGE: Final = "bedrock.error.message"
ERROR_HTTP_STATUS: Final = "bedrock.error.http_status"
PROMPT: Final = "bedrock.prompt"
PROMPT_MESSAGES: Final = "bedrock.prompt.messages"
GENERATION: Final = "bedrock.generation"
CONTENT_TRUNCATED: Final = "bedrock.content_truncated"

BEDROCK_RUNTIME_SERVICE: Final = "Bedrock Runtime"
