"""One error type for every failure a user can cause, rendered as RFC 9457 problem details.

Services raise subclasses of :class:`FieldsyncError`; the API renders them as
``application/problem+json`` and the CLI as one line with a non-zero exit. The stable ``code``
values are listed in ``docs/errors.md`` (kept in step by a test).
"""

from __future__ import annotations

from typing import Any


class FieldsyncError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str, *, errors: Any = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:fieldsync:error:{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class InvalidInput(FieldsyncError):
    status = 422
    code = "invalid_input"
    title = "The request is not valid"


class MalformedRequest(FieldsyncError):
    status = 400
    code = "malformed_request"
    title = "The request body could not be read"


class NotFound(FieldsyncError):
    status = 404
    code = "not_found"
    title = "Not found"


class AlreadyExists(FieldsyncError):
    status = 409
    code = "already_exists"
    title = "Already exists"


class StateConflict(FieldsyncError):
    status = 409
    code = "state_conflict"
    title = "The resource is not in a state that allows this"


class AuthenticationRequired(FieldsyncError):
    status = 401
    code = "authentication_required"
    title = "Authentication required"


class DeviceRevoked(FieldsyncError):
    status = 401
    code = "device_revoked"
    title = "This device has been revoked"


class Forbidden(FieldsyncError):
    status = 403
    code = "forbidden"
    title = "Not allowed for your role or scope"


class PayloadTooLarge(FieldsyncError):
    status = 413
    code = "payload_too_large"
    title = "Request too large"


class DatabaseUnavailable(FieldsyncError):
    status = 503
    code = "database_unavailable"
    title = "The database cannot be reached"


class FormDefinitionInvalid(InvalidInput):
    code = "invalid_form_definition"
    title = "The form definition is not valid"


class FormVersionImmutable(FieldsyncError):
    status = 409
    code = "form_version_immutable"
    title = "A published form version cannot change"


class KeyringError(FieldsyncError):
    status = 500
    code = "keyring_error"
    title = "The server key ring cannot be used"
