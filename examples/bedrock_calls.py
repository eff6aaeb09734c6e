"""A plain boto3 program with no tracing code: one call of each Bedrock Runtime operation.

Run it under ``opentelemetry-instrument`` with otel-bedrock installed and ``POSTHOG_API_KEY``
set, and each call becomes a PostHog event. ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (read by
boto3 itself) points it at the Bedrock emulator instead of AWS.

``BEDROCK_MODEL_ID`` picks the model (Meta Llama 3.1 8B by default). Converse and
ConverseStream take the same request for every model; InvokeModel takes a body in the format
of the model's family, so the two InvokeModel calls know Anthropic Claude, Meta Llama, Amazon
Nova and Amazon Titan models, by model id, inference profile id (``us.``...) or ARN.
"""

import json
import os
import re
import sys
from typing import Any

import boto3

MODEL = os.environ.get("BEDROCK_MODEL_ID", "meta.llama3-1-8b-instruct-v1:0")
PROMPT = "Suggest a recipe with eggs and spinach."
MESSAGES = [{"role": "user", "content": [{"text": PROMPT}]}]

# InvokeModel request bodies by model family.
BODIES: dict[str, dict[str, Any]] = {
    "anthropic": {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 128,
        "messages": [{"role": "user", "content": PROMPT}],
    },
    "meta": {"prompt": PROMPT, "max_gen_len": 128},
    "amazon.nova": {"messages": MESSAGES, "inferenceConfig": {"maxTokens": 128}},
    "amazon.titan": {"inputText": PROMPT, "textGenerationConfig": {"maxTokenCount": 128}},
}
# The family: the provider segment of the id (after a geo prefix such as "us." or an ARN's
# path), and for Amazon the model's name.
FAMILY = re.compile(r"(?:^|[./])(anthropic|meta|amazon\.nova|amazon\.titan)[.-]")


def reply_text(family: str, body: dict[str, Any]) -> str:
    """The generated text of an InvokeModel response body of that family."""
    if family == "anthropic":
        return str(body["content"][0]["text"])
    if family == "amazon.nova":
        return str(body["output"]["message"]["content"][0]["text"])
    if family == "amazon.titan":
        return str(body["results"][0]["outputText"])

    return str(body["generation"])


def main() -> None:
    found = FAMILY.search(MODEL)
    if found is None:
        families = ", ".join(BODIES)
        sys.exit(f"BEDROCK_MODEL_ID={MODEL!r}: InvokeModel bodies are known for {families} only")
    family = found[1]
    body = json.dumps(BODIES[family])
    client = boto3.client("bedrock-runtime", region_name=os.environ.get("AWS_REGION", "us-east-1"))

    response = client.invoke_model(modelId=MODEL, body=body)
    print("InvokeModel:", reply_text(family, json.loads(response["body"].read())))

    streamed = client.invoke_model_with_response_stream(modelId=MODEL, body=body)
    chunks = [event["chunk"]["bytes"] for event in streamed["body"] if "chunk" in event]
    print("InvokeModelWithResponseStream:", len(chunks), "chunks")

    reply = client.converse(modelId=MODEL, messages=MESSAGES)
    print("Converse:", reply["output"]["message"]["content"][0]["text"])

    events = client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]
    text = "".join(
        event["contentBlockDelta"]["delta"].get("text", "")
        for event in events
        if "contentBlockDelta" in event
    )
    print("ConverseStream:", text)


if __name__ == "__main__":
    main()
