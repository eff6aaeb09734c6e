"""A plain boto3 program with no tracing code: one call of each Bedrock Runtime operation.

Run it under ``opentelemetry-instrument`` with otel-bedrock installed and ``POSTHOG_API_KEY``
set, and each call becomes a PostHog event. ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (read by
boto3 itself) points it at the Bedrock emulator instead of AWS.
"""

import json
import os

import boto3

MODEL = os.environ.get("BEDROCK_MODEL_ID", "meta.llama3-1-8b-instruct-v1:0")
MESSAGES = [{"role": "user", "content": [{"text": "Suggest a recipe with eggs and spinach."}]}]


def main() -> None:
    client = boto3.client("bedrock-runtime", region_name=os.environ.get("AWS_REGION", "us-east-1"))

    body = {"prompt": "Suggest a recipe with eggs and spinach.", "max_gen_len": 128}
    response = client.invoke_model(modelId=MODEL, body=json.dumps(body))
    print("InvokeModel:", json.loads(response["body"].read())["generation"])

    streamed = client.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(body))
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
