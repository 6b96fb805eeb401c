"""Reading request bodies: JSON only, malformed input answered with a specific problem."""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import Schema

from fieldsync.core.canonical import LONE_SURROGATE, has_lone_surrogate
from fieldsync.errors import MalformedRequest


def read_json() -> Any:
    if not request.is_json:
        raise MalformedRequest("send the body as JSON with 'Content-Type: application/json'")
    body = request.get_json(silent=True)
    if body is None:
        raise MalformedRequest("the body is not valid JSON")
    if has_lone_surrogate(request.get_data(as_text=True), body):
        raise MalformedRequest(f"the body is not valid JSON: {LONE_SURROGATE}")
    return body


def load_json(schema: Schema) -> dict[str, Any]:
    """Parse and validate the JSON body; marshmallow errors become a 422 problem."""
    body = read_json()
    if not isinstance(body, dict):
        raise MalformedRequest("the body must be a JSON object")
    return dict(schema.load(body))
