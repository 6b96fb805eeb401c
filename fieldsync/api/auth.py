"""Staff login and the decorators that authenticate staff and devices."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields

from fieldsync.api.bodies import load_json
from fieldsync.database import read_only
from fieldsync.errors import AuthenticationRequired
from fieldsync.services import auth as auth_service

blueprint = Blueprint("auth", __name__, url_prefix="/api/v1/auth")

F = TypeVar("F", bound=Callable[..., Any])


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired("send 'Authorization: Bearer <token>'")
    return token.strip()


def staff_required(*roles: str) -> Callable[[F], F]:
    """Authenticate a staff token; ``g.user`` is the user. Default roles: reviewer, admin."""
    allowed = roles or auth_service.STAFF_ROLES

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with read_only():  # ended before the view: it takes the write lock if it writes
                g.user = auth_service.staff_for_token(bearer_token(), allowed)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def device_required(view: F | None = None, *, allow_revoked: bool = False) -> Any:
    """Authenticate a device token; ``g.device`` is the device and ``g.user`` its user.
    ``allow_revoked`` lets a revoked device reach the view (push: its envelopes are
    quarantined, never applied)."""

    def decorator(inner: F) -> F:
        @wraps(inner)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with read_only():  # ended before the view: it takes the write lock if it writes
                g.device = auth_service.device_for_token(bearer_token(),
                                                         allow_revoked=allow_revoked)
            g.user = g.device.user
            return inner(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator(view) if view is not None else decorator


class LoginSchema(Schema):
    username = fields.String(required=True)
    password = fields.String(required=True)


@blueprint.post("/login")
def login() -> ResponseReturnValue:
    body = load_json(LoginSchema())
    token, user = auth_service.login(body["username"], body["password"],
                                     int(current_app.config["STAFF_TOKEN_TTL"]))
    return jsonify(token=token, token_type="Bearer", username=user.username, role=user.role,
                   expires_in=int(current_app.config["STAFF_TOKEN_TTL"]))


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    auth_service.logout(bearer_token())
    return "", 204
