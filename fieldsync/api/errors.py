"""Render every error as ``application/problem+json`` (RFC 9457) with a stable ``code``."""

from __future__ import annotations

import logging

from flask import Flask, Response, json
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from fieldsync.errors import FieldsyncError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "malformed_request",
    401: "authentication_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem(body: dict, status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def init_app(app: Flask) -> None:
    @app.errorhandler(FieldsyncError)
    def _fieldsync_error(exc: FieldsyncError) -> Response:
        return problem(exc.to_problem(), exc.status)

    @app.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError) -> Response:
        body = {
            "type": "urn:fieldsync:error:invalid_input",
            "title": "The request is not valid",
            "status": 422,
            "code": "invalid_input",
            "detail": "some fields are missing or have the wrong type",
            "errors": exc.messages,
        }
        return problem(body, 422)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = HTTP_CODES.get(status, "http_error")
        body = {
            "type": f"urn:fieldsync:error:{code}",
            "title": exc.name,
            "status": status,
            "code": code,
            "detail": exc.description or exc.name,
        }
        return problem(body, status)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        body = {
            "type": "urn:fieldsync:error:internal_error",
            "title": "Internal server error",
            "status": 500,
            "code": "internal_error",
            "detail": "the server failed; nothing was acknowledged, so retrying is safe",
        }
        return problem(body, 500)
