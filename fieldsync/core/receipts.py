"""Server-signed receipts: the device's proof that the server durably holds a submission.

A receipt is a flat JSON object: the fields below, any extra fields the server adds, and
``signature``: base64url of the 64-byte ECDSA P-256 / SHA-256 signature (``r || s``) by the key
ring's receipt key over ``RECEIPT_PREFIX || canonical_json(receipt without "signature")``.

=================  ====================================================================
``submission_id``  the envelope's submission id (lower-case hyphenated UUID)
``envelope_digest`` :func:`~fieldsync.core.envelopes.envelope_digest` of the envelope bytes
``sequence``       the server sequence number given to the submission (integer >= 0)
``status``         ``accepted`` or ``duplicate``
``timestamp``      when the server accepted it (string; the server's HLC timestamp)
=================  ====================================================================

Further fields are allowed (and signed) if their values are strings, integers, booleans or
null: no floats or nesting, so every language produces the same canonical JSON.

A tablet removes a submission from its outbox only after :func:`verify_receipt` succeeds with
the digest of the envelope it sent. See ``docs/envelope.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from fieldsync.core.canonical import canonical_json
from fieldsync.core.envelopes import is_submission_id
from fieldsync.core.keys import (
    InvalidPublicKey,
    b64url_decode,
    b64url_encode,
    decode_signing_public_key,
    sign_p256,
    verify_p256,
)
from fieldsync.errors import FieldsyncError

__all__ = ["RECEIPT_PREFIX", "RECEIPT_STATUSES", "InvalidReceipt", "sign_receipt", "verify_receipt"]

RECEIPT_PREFIX = b"FieldSync receipt v1\x00"
RECEIPT_STATUSES = ("accepted", "duplicate")
MAX_TIMESTAMP_LENGTH = 100

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


class InvalidReceipt(FieldsyncError):
    """A receipt that is malformed, not signed by the server's receipt key, or for another
    envelope. The device keeps the submission in its outbox."""

    status = 502
    code = "invalid_receipt"
    title = "The server's receipt does not verify"


def sign_receipt(
    fields: Mapping[str, Any], signing_key: ec.EllipticCurvePrivateKey
) -> dict[str, Any]:
    """Return ``fields`` plus ``signature``; :class:`ValueError` if the fields are invalid."""
    body = dict(fields)
    problem = _field_problem(body)
    if problem:
        raise ValueError(f"cannot sign receipt: {problem}")
    signature = sign_p256(signing_key, RECEIPT_PREFIX + canonical_json(body))
    return {**body, "signature": b64url_encode(signature)}


def verify_receipt(
    receipt: Mapping[str, Any],
    public_key: ec.EllipticCurvePublicKey | str,
    *,
    envelope_digest: str | None = None,
) -> dict[str, Any]:
    """Check the signature (and, if given, that the receipt is for ``envelope_digest``).

    Returns the receipt fields without ``signature``; raises :class:`InvalidReceipt`.
    ``public_key`` is the receipt key object or its wire form (base64url SEC1 point).
    """
    if not isinstance(receipt, Mapping):
        raise InvalidReceipt("receipt is not a JSON object")
    body = dict(receipt)
    try:
        signature = b64url_decode(body.pop("signature"))
    except (KeyError, ValueError):
        raise InvalidReceipt("receipt has no base64url signature") from None
    problem = _field_problem(body)
    if problem:
        raise InvalidReceipt(f"receipt is malformed: {problem}")
    if isinstance(public_key, str):
        try:
            public_key = decode_signing_public_key(public_key)
        except InvalidPublicKey:
            raise InvalidReceipt("the server receipt key is not valid") from None
    try:
        message = RECEIPT_PREFIX + canonical_json(body)
    except ValueError:  # e.g. a lone surrogate in a string
        raise InvalidReceipt("receipt is malformed: not encodable as UTF-8 JSON") from None
    if not verify_p256(public_key, signature, message):
        raise InvalidReceipt("receipt signature does not verify with the server receipt key")
    if envelope_digest is not None and body["envelope_digest"] != envelope_digest:
        raise InvalidReceipt("receipt is for a different envelope")
    return body


def _field_problem(body: dict[str, Any]) -> str | None:
    """What is wrong with the receipt fields, or None."""
    if "signature" in body:
        return "'signature' is reserved"
    if not all(isinstance(key, str) for key in body):
        return "field names must be strings"
    if not is_submission_id(body.get("submission_id")):
        return "submission_id must be a lower-case hyphenated UUID"
    digest = body.get("envelope_digest")
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        return "envelope_digest must be 64 lower-case hex digits"
    sequence = body.get("sequence")
    if type(sequence) is not int or sequence < 0:
        return "sequence must be a non-negative integer"
    if body.get("status") not in RECEIPT_STATUSES:
        return f"status must be one of {', '.join(RECEIPT_STATUSES)}"
    timestamp = body.get("timestamp")
    if not isinstance(timestamp, str) or not 1 <= len(timestamp) <= MAX_TIMESTAMP_LENGTH:
        return "timestamp must be a non-empty string"
    for key, value in body.items():
        if value is not None and not isinstance(value, str | int):  # bool is an int
            return f"{key!r}: values must be strings, integers, booleans or null"
    return None
