"""HTTP API: thin blueprints over the services, and one renderer for every error."""

from __future__ import annotations

from flask import Flask, current_app, request

from fieldsync.api import auth, errors, forms_admin, health, review, sync
from fieldsync.errors import PayloadTooLarge


def refuse_oversized_body() -> None:
    """Refuse a declared-too-large body before reading it (werkzeug checks only on read)."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit and request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"request body of {request.content_length} bytes exceeds the limit of {limit} bytes"
        )


def init_app(app: Flask) -> None:
    errors.init_app(app)
    app.before_request(refuse_oversized_body)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(auth.blueprint)
    app.register_blueprint(sync.blueprint)
    app.register_blueprint(review.blueprint)
    app.register_blueprint(forms_admin.blueprint)
