"""A recipe builder on AWS Bedrock: the web service of PostHog's Bedrock tutorial, in Flask.

``POST /api/generate-recipe`` with JSON ``{"ingredients": ..., "email": ...}`` asks Meta Llama
3.1 8B Instruct for a recipe and answers ``{"recipe": ...}``, or 500 with ``{"error": ...}``
when Bedrock fails. ``GET /`` serves a small page to try it.

There is no tracing code here. Run under ``opentelemetry-instrument`` with otel-bedrock
installed, each Bedrock call becomes a PostHog event, and the caller's email becomes its
``distinct_id``: the page sends it in a W3C ``baggage: user.id=...`` header, the Flask
instrumentation puts that baggage in the request's context, and otel-bedrock reads it there.

Settings: ``PORT`` (or the first argument; default 5000), ``RECIPE_APP_HOST`` (or the second
argument; default 127.0.0.1), the
region from ``AWS_REGION`` or ``AWS_DEFAULT_REGION`` (default us-east-1), and boto3's own
variables (credentials, ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, ``AWS_MAX_ATTEMPTS``...).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, jsonify, request, send_from_directory

logger = logging.getLogger(__name__)

MODEL_ID = "meta.llama3-1-8b-instruct-v1:0"
STATIC = Path(__file__).resolve().parent / "static"

app = Flask(__name__)
region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
bedrock = boto3.client("bedrock-runtime", region_name=region)


def build_prompt(ingredients: str) -> str:
    """The prompt the tutorial sends for a list of ingredients."""
    return f"Generate a recipe using these ingredients: {ingredients}"


def generate(prompt: str) -> str:
    """Ask Llama 3.1 8B Instruct for a completion of ``prompt``."""
    body = {"prompt": prompt, "max_gen_len": 512, "temperature": 0.5, "top_p": 0.9}
    response = bedrock.invoke_model(modelId=MODEL_ID, body=json.dumps(body))
    reply: dict[str, Any] = json.loads(response["body"].read())

    return str(reply["generation"])


@app.get("/")
def index() -> Any:
    """The page to type ingredients and an email."""
    return send_from_directory(STATIC, "index.html")


@app.post("/api/generate-recipe")
def generate_recipe() -> Any:
    """Generate a recipe from the posted ingredients."""
    payload = request.get_json(silent=True) or {}
    ingredients = payload.get("ingredients") or ""
    if isinstance(ingredients, list):
        ingredients = ", ".join(str(item) for item in ingredients)
    ingredients = str(ingredients).strip()
    if not ingredients:
        return jsonify(error="Send some ingredients."), 400
    try:
        recipe = generate(build_prompt(ingredients))
    except (ClientError, BotoCoreError) as error:
        logger.warning("recipe_failed error=%s", type(error).__name__)
        return jsonify(error=f"Could not generate a recipe: {error}"), 500

    return jsonify(recipe=recipe)


def main() -> None:
    """Serve the app on the port and address given as arguments or in the environment."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("PORT", "5000"))
    host = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("RECIPE_APP_HOST", "127.0.0.1")
    app.run(host=host, port=port)


if __name__ == "__main__":
    main()
