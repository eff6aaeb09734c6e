"""Read the shared recordings and cases the way boto3 would see them.

Stream bodies go through botocore's own event stream decoder and the ``bedrock-runtime``
service model, so the tests see exactly the events and chunks an application sees.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import urllib3
from botocore.eventstream import EventStream
from botocore.model import OperationModel, ServiceModel
from botocore.parsers import EventStreamJSONParser, RestJSONParser

from tests.conftest import shared_path


@cache
def _service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("bedrock-runtime")


def _operation(name: str) -> OperationModel:
    return _service_model().operation_model(name)


def load(path: Path) -> dict[str, Any]:
    """Return one recording or case as a dict."""
    data: dict[str, Any] = json.loads(path.read_text())

    return data


def recording(name: str) -> dict[str, Any]:
    """Return the recording with file name ``name``."""
    return load(shared_path("recordings", name))


def case(name: str) -> dict[str, Any]:
    """Return the case with file name ``name``."""
    return load(shared_path("cases", name))


def final_response(record: dict[str, Any]) -> dict[str, Any]:
    """Return the (last) HTTP response of a recording or case."""
    if "responses" in record:
        last: dict[str, Any] = record["responses"][-1]
        return last
    response: dict[str, Any] = record["response"]

    return response


def invoke_body(record: dict[str, Any]) -> Any:
    """Return the decoded JSON body of an InvokeModel response."""
    return json.loads(final_response(record)["body"])


def converse_response(record: dict[str, Any]) -> dict[str, Any]:
    """Return the dict boto3's ``converse()`` would return for a recorded response."""
    response = final_response(record)
    http = {
        "status_code": response["status"],
        "headers": response["headers"],
        "body": response["body"].encode(),
    }
    parsed: dict[str, Any] = RestJSONParser().parse(http, _operation("Converse").output_shape)

    return parsed


def stream_events(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the events boto3 would yield for a recorded event stream body.

    A stream error event raises ``botocore.exceptions.EventStreamError`` as in boto3.
    """
    raw = base64.b64decode(final_response(record)["body_base64"])
    name = record["operation"]
    output = _operation(name).output_shape
    shape = next(
        member for member in output.members.values() if member.serialization.get("eventstream")
    )
    body = urllib3.HTTPResponse(body=io.BytesIO(raw), preload_content=False)
    yield from EventStream(body, shape, EventStreamJSONParser(), name)


def chunk_payloads(record: dict[str, Any]) -> Iterator[bytes]:
    """Yield the raw ``chunk.bytes`` of each InvokeModelWithResponseStream event."""
    for event in stream_events(record):
        payload: bytes = event["chunk"]["bytes"]
        yield payload
