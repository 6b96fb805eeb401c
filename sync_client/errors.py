"""Every failure the tablet client reports, as one exception tree::

    ClientError                    base class; ``str(exc)`` is a one-line message
      +-- StoreError               the local store cannot be used
      |     +-- WrongPassphrase    the passphrase does not open the store
      |     +-- NotEnrolled        the store holds no enrolment yet (run ``enroll``)
      |     +-- AlreadyEnrolled    the store already belongs to an enrolled device
      +-- LocalDataError           a form, case or answer file the command names is missing or
      |     |                      unusable on this tablet
      |     +-- InvalidAnswers     the answers fail the form's validation (``errors``)
      +-- SyncError                talking to the server failed
            +-- TransportError     the server could not be reached (after every retry)
            +-- ServerError        the server refused the request: ``status``, ``code``,
            |                      ``detail``, ``errors`` and ``problem`` (the problem+json body)
            +-- ProtocolError      the server's answer breaks the protocol (``docs/protocol.md``),
                                   e.g. a receipt that does not verify

Nothing here carries answer values: messages name fields, never what was typed into them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyEnrolled",
    "ClientError",
    "InvalidAnswers",
    "LocalDataError",
    "NotEnrolled",
    "ProtocolError",
    "ServerError",
    "StoreError",
    "SyncError",
    "TransportError",
    "WrongPassphrase",
]


class ClientError(Exception):
    """Base class of every error the client raises on purpose."""


class StoreError(ClientError):
    """The local store is missing, damaged or of an unknown format."""


class WrongPassphrase(StoreError):
    """The passphrase does not decrypt the store's verifier."""


class NotEnrolled(StoreError):
    """No device enrolment in this store yet."""


class AlreadyEnrolled(StoreError):
    """``enroll`` on a store that already holds a device."""


class LocalDataError(ClientError):
    """A form, case or answers file named by the caller is not usable."""


class InvalidAnswers(LocalDataError):
    """The form engine refused the answers; ``errors`` maps field paths to messages."""

    def __init__(self, message: str, errors: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.errors = errors


class SyncError(ClientError):
    """Talking to the server failed."""


class TransportError(SyncError):
    """No usable answer from the server after every retry (connection refused, reset, timeout,
    or repeated 5xx)."""


class ServerError(SyncError):
    """The server answered with a problem document (``application/problem+json``)."""

    def __init__(self, status: int, code: str, detail: str, problem: dict[str, Any]) -> None:
        reason = problem.get("reason")
        suffix = f" ({reason})" if isinstance(reason, str) else ""
        super().__init__(f"server refused the request: {code}{suffix}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.reason = reason if isinstance(reason, str) else None
        self.errors = problem.get("errors")
        self.problem = problem


class ProtocolError(SyncError):
    """The server's answer does not follow ``docs/protocol.md``."""
