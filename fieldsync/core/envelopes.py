"""Sealed submissions: HPKE-encrypted to the server, signed by the device.

The format is specified byte by byte in ``docs/envelope.md``. In short::

    "FSEN" | 0x01 | u32 header length | header | u32 ciphertext length | ciphertext | r||s (64)

* ``header`` is canonical JSON (:func:`~fieldsync.core.canonical.canonical_json`) of exactly
  the keys of :class:`EnvelopeHeader`; it holds no case data.
* ``ciphertext`` is HPKE single-shot ``enc || ct`` of the canonical JSON payload, with
  ``info = INFO_PREFIX || header``, so a changed header makes decryption fail.
* the signature is ECDSA P-256 / SHA-256 by the device key over
  ``SIGNATURE_PREFIX || u32 header length || header || SHA-256(ciphertext)``.

The server parses (:meth:`Envelope.from_bytes`), verifies (:func:`verify_signature`) and only
then decrypts (:func:`open_envelope`). Each failure has its own exception, whose ``code`` is the
push rejection reason::

    EnvelopeError (FieldsyncError)
      +-- MalformedEnvelope   malformed_envelope   bytes or header not in the documented format
      +-- BadSignature        bad_signature        not signed by the given device key
      +-- UnknownKey          unknown_key          key id unknown, retired, or of another suite
      +-- DecryptFailed       decrypt_failed       ciphertext or header altered, wrong key
"""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec

from fieldsync.core.canonical import LONE_SURROGATE, canonical_json, has_lone_surrogate
from fieldsync.core.hlc import InvalidTimestamp, Timestamp, check_node, parse_timestamp
from fieldsync.core.keys import (
    SIGNATURE_LENGTH,
    SUITES,
    EncryptionKey,
    InvalidPublicKey,
    PublicKeyInfo,
    b64url_decode,
    b64url_encode,
    decode_signing_public_key,
    encapsulated_key_length,
    hpke_suite,
    sign_p256,
    verify_p256,
)
from fieldsync.errors import FieldsyncError

__all__ = [
    "FORMAT_VERSION",
    "INFO_PREFIX",
    "MAGIC",
    "MAX_CIPHERTEXT_LENGTH",
    "MAX_HEADER_LENGTH",
    "SIGNATURE_PREFIX",
    "BadSignature",
    "DecryptFailed",
    "Envelope",
    "EnvelopeError",
    "EnvelopeHeader",
    "MalformedEnvelope",
    "UnknownKey",
    "envelope_digest",
    "is_submission_id",
    "open_envelope",
    "seal",
    "verify_signature",
]

MAGIC = b"FSEN"
FORMAT_VERSION = 1
INFO_PREFIX = b"FieldSync envelope v1 payload\x00"
SIGNATURE_PREFIX = b"FieldSync envelope v1 signature\x00"
MAX_HEADER_LENGTH = 4096
MAX_CIPHERTEXT_LENGTH = 2 * 1024 * 1024
AEAD_TAG_LENGTH = 16
MAX_FORM_ID_LENGTH = 200
MAX_KEY_ID_LENGTH = 64

_LENGTH = struct.Struct(">I")
_PREFIX_LENGTH = len(MAGIC) + 1
MAX_ENVELOPE_LENGTH = (
    _PREFIX_LENGTH + 2 * _LENGTH.size + MAX_HEADER_LENGTH + MAX_CIPHERTEXT_LENGTH + SIGNATURE_LENGTH
)
_HEADER_KEYS = frozenset(
    {"format", "submission_id", "device_id", "form_id", "form_version", "key_id", "suite", "hlc"}
)


class EnvelopeError(FieldsyncError):
    """An envelope the server cannot accept; ``code`` is the rejection reason."""

    status = 422
    code = "envelope_rejected"
    title = "Envelope rejected"


class MalformedEnvelope(EnvelopeError):
    code = "malformed_envelope"
    title = "The envelope is not in the documented format"


class BadSignature(EnvelopeError):
    code = "bad_signature"
    title = "The envelope signature does not verify with the device key"


class UnknownKey(EnvelopeError):
    code = "unknown_key"
    title = "The envelope is sealed to a key the server does not hold"


class DecryptFailed(EnvelopeError):
    code = "decrypt_failed"
    title = "The envelope could not be decrypted"


@dataclass(frozen=True)
class EnvelopeHeader:
    """The clear-text, signed and HPKE-bound part of an envelope (no case data)."""

    submission_id: str
    device_id: str
    form_id: str
    form_version: int
    key_id: str
    suite: str
    hlc: str

    def __post_init__(self) -> None:
        _check_header(self)

    @property
    def timestamp(self) -> Timestamp:
        return parse_timestamp(self.hlc)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "submission_id": self.submission_id,
            "device_id": self.device_id,
            "form_id": self.form_id,
            "form_version": self.form_version,
            "key_id": self.key_id,
            "suite": self.suite,
            "hlc": self.hlc,
        }

    def to_bytes(self) -> bytes:
        # Computed once per (immutable) header: parsing, verifying and opening all need it.
        cached = self.__dict__.get("_bytes")
        if cached is None:
            cached = canonical_json(self.to_dict())
            object.__setattr__(self, "_bytes", cached)
        return cached

    @classmethod
    def from_bytes(cls, data: bytes) -> EnvelopeHeader:
        """Parse canonical header JSON strictly; :class:`MalformedEnvelope` otherwise."""
        value = _strict_json(data, "header")
        if not isinstance(value, dict) or set(value) != _HEADER_KEYS:
            raise MalformedEnvelope(
                f"header must be a JSON object with exactly the keys {sorted(_HEADER_KEYS)}"
            )
        if type(value["format"]) is not int or value["format"] != FORMAT_VERSION:
            raise MalformedEnvelope(f"header format must be {FORMAT_VERSION}")
        fields = {key: value[key] for key in _HEADER_KEYS - {"format"}}
        header = cls(**fields)
        if header.to_bytes() != data:
            raise MalformedEnvelope("header is not canonical JSON")
        return header


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope. ``to_bytes`` returns exactly the bytes ``from_bytes`` read."""

    header: EnvelopeHeader
    ciphertext: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.ciphertext, bytes) or len(self.ciphertext) > MAX_CIPHERTEXT_LENGTH:
            raise MalformedEnvelope(f"ciphertext must be at most {MAX_CIPHERTEXT_LENGTH} bytes")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_LENGTH:
            raise MalformedEnvelope(f"signature must be {SIGNATURE_LENGTH} bytes (r || s)")

    @property
    def submission_id(self) -> str:
        return self.header.submission_id

    @property
    def digest(self) -> str:
        return envelope_digest(self.to_bytes())

    def to_bytes(self) -> bytes:
        cached = self.__dict__.get("_bytes")
        if cached is None:
            header = self.header.to_bytes()
            cached = b"".join(
                (
                    MAGIC,
                    bytes([FORMAT_VERSION]),
                    _LENGTH.pack(len(header)),
                    header,
                    _LENGTH.pack(len(self.ciphertext)),
                    self.ciphertext,
                    self.signature,
                )
            )
            object.__setattr__(self, "_bytes", cached)
        return cached

    def to_text(self) -> str:
        """base64url (unpadded) of :meth:`to_bytes`, for JSON transport."""
        return b64url_encode(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse the binary form strictly; raise :class:`MalformedEnvelope` on any deviation."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedEnvelope("envelope must be bytes")
        data = bytes(data)
        if len(data) > MAX_ENVELOPE_LENGTH:
            raise MalformedEnvelope(f"envelope longer than {MAX_ENVELOPE_LENGTH} bytes")
        if data[: len(MAGIC)] != MAGIC:
            raise MalformedEnvelope("not a FieldSync envelope (bad magic bytes)")
        if len(data) < _PREFIX_LENGTH:
            raise MalformedEnvelope("envelope truncated in the version byte")
        if data[len(MAGIC)] != FORMAT_VERSION:
            raise MalformedEnvelope(f"unsupported envelope version {data[len(MAGIC)]}")
        offset = _PREFIX_LENGTH
        header_bytes, offset = _read_chunk(data, offset, MAX_HEADER_LENGTH, "header")
        ciphertext, offset = _read_chunk(data, offset, MAX_CIPHERTEXT_LENGTH, "ciphertext")
        signature = data[offset : offset + SIGNATURE_LENGTH]
        if len(signature) != SIGNATURE_LENGTH:
            raise MalformedEnvelope("envelope truncated in the signature")
        if offset + SIGNATURE_LENGTH != len(data):
            raise MalformedEnvelope("trailing bytes after the signature")
        header = EnvelopeHeader.from_bytes(header_bytes)
        if len(ciphertext) < encapsulated_key_length(header.suite) + AEAD_TAG_LENGTH:
            raise MalformedEnvelope(f"ciphertext too short for suite {header.suite}")
        return cls(header, ciphertext, signature)

    @classmethod
    def from_text(cls, text: str) -> Envelope:
        """Parse the base64url text form; :class:`MalformedEnvelope` on any deviation."""
        if not isinstance(text, str) or len(text) > (MAX_ENVELOPE_LENGTH * 4 + 2) // 3:
            raise MalformedEnvelope("envelope text is not a string of acceptable length")
        try:
            data = b64url_decode(text)
        except ValueError:
            raise MalformedEnvelope("envelope text is not unpadded base64url") from None
        return cls.from_bytes(data)


def seal(
    payload: Mapping[str, Any],
    *,
    submission_id: str,
    device_id: str,
    form_id: str,
    form_version: int,
    hlc: Timestamp | str,
    recipient: PublicKeyInfo,
    signing_key: ec.EllipticCurvePrivateKey,
) -> Envelope:
    """Encrypt ``payload`` (a JSON object) to ``recipient`` and sign it with the device key.

    Raises :class:`MalformedEnvelope` if the header fields or the payload do not fit the format.
    """
    header = EnvelopeHeader(
        submission_id=submission_id,
        device_id=device_id,
        form_id=form_id,
        form_version=form_version,
        key_id=recipient.key_id,
        suite=recipient.suite,
        hlc=str(hlc),
    )
    if not isinstance(payload, Mapping):
        raise MalformedEnvelope("payload must be a JSON object")
    try:
        plaintext = canonical_json(dict(payload))
    except (TypeError, ValueError) as exc:
        raise MalformedEnvelope(f"payload is not JSON: {exc}") from None
    header_bytes = header.to_bytes()
    ciphertext = hpke_suite(header.suite).encrypt(
        plaintext, recipient.public_key, info=INFO_PREFIX + header_bytes
    )
    if len(ciphertext) > MAX_CIPHERTEXT_LENGTH:
        raise MalformedEnvelope(f"payload too large (ciphertext over {MAX_CIPHERTEXT_LENGTH} B)")
    signature = sign_p256(signing_key, _signed_message(header_bytes, ciphertext))
    return Envelope(header, ciphertext, signature)


def verify_signature(
    envelope: Envelope, device_public_key: ec.EllipticCurvePublicKey | str
) -> None:
    """Raise :class:`BadSignature` unless the device key signed this header and ciphertext.

    ``device_public_key`` is a key object or its wire form (base64url SEC1 point).
    """
    if isinstance(device_public_key, str):
        try:
            device_public_key = decode_signing_public_key(device_public_key)
        except InvalidPublicKey:
            raise BadSignature("the device public key on record is not valid") from None
    message = _signed_message(envelope.header.to_bytes(), envelope.ciphertext)
    if not verify_p256(device_public_key, envelope.signature, message):
        raise BadSignature("envelope signature does not verify with the device key")


def open_envelope(
    envelope: Envelope, private_key_lookup: Callable[[str], EncryptionKey | None]
) -> dict[str, Any]:
    """Decrypt and return the payload. Verify the signature first (:func:`verify_signature`).

    ``private_key_lookup(key_id)`` returns the key, or ``None`` / raises :class:`KeyError` if
    the server does not hold it (``KeyRing.private_key`` fits).
    """
    header = envelope.header
    try:
        key = private_key_lookup(header.key_id)
    except KeyError:
        key = None
    if key is None:
        raise UnknownKey(f"no private key with id {header.key_id!r}")
    if key.suite != header.suite:
        raise UnknownKey(f"key {header.key_id} is a {key.suite} key, not {header.suite}")
    try:
        plaintext = hpke_suite(header.suite).decrypt(
            envelope.ciphertext, key.hpke_private_key, info=INFO_PREFIX + header.to_bytes()
        )
    except (InvalidTag, ValueError):
        raise DecryptFailed(
            "decryption failed: the header or ciphertext was altered, or the key is wrong"
        ) from None
    payload = _strict_json(plaintext, "payload")
    if not isinstance(payload, dict):
        raise MalformedEnvelope("payload is not a JSON object")
    return payload


def envelope_digest(data: bytes) -> str:
    """Lower-case hex SHA-256 of the exact wire bytes (the idempotency fingerprint)."""
    return hashlib.sha256(data).hexdigest()


# -- helpers -------------------------------------------------------------------------------


def _signed_message(header_bytes: bytes, ciphertext: bytes) -> bytes:
    return (
        SIGNATURE_PREFIX
        + _LENGTH.pack(len(header_bytes))
        + header_bytes
        + hashlib.sha256(ciphertext).digest()
    )


def _read_chunk(data: bytes, offset: int, limit: int, name: str) -> tuple[bytes, int]:
    if len(data) < offset + _LENGTH.size:
        raise MalformedEnvelope(f"envelope truncated in the {name} length")
    (length,) = _LENGTH.unpack_from(data, offset)
    if length > limit:
        raise MalformedEnvelope(f"{name} length {length} exceeds the limit of {limit} bytes")
    offset += _LENGTH.size
    if len(data) < offset + length:
        raise MalformedEnvelope(f"envelope truncated in the {name}")
    return data[offset : offset + length], offset + length


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return result


def _strict_json(data: bytes, what: str) -> Any:
    """Parse UTF-8 JSON; duplicate keys, NaN and Infinity are errors, and so is a ``\\u``
    escape of half a surrogate pair (no text can hold it: storing it would fail)."""
    try:
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_unique_object,
                           parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedEnvelope(f"{what} is not valid JSON: {exc}") from None
    if has_lone_surrogate(text, value):
        raise MalformedEnvelope(f"{what} is not valid JSON: {LONE_SURROGATE}")
    return value


def _check_header(header: EnvelopeHeader) -> None:
    def bad(message: str) -> MalformedEnvelope:
        return MalformedEnvelope(f"header: {message}")

    if not is_submission_id(header.submission_id):
        raise bad("submission_id must be a lower-case hyphenated UUID")
    try:
        check_node(header.device_id)
    except InvalidTimestamp:
        raise bad("device_id must be 1 to 64 characters from [A-Za-z0-9._-]") from None
    if not isinstance(header.form_id, str) or not 1 <= len(header.form_id) <= MAX_FORM_ID_LENGTH:
        raise bad(f"form_id must be a string of 1 to {MAX_FORM_ID_LENGTH} characters")
    if type(header.form_version) is not int or not 1 <= header.form_version < 2**31:
        raise bad("form_version must be a positive integer")
    if not isinstance(header.key_id, str) or not 1 <= len(header.key_id) <= MAX_KEY_ID_LENGTH:
        raise bad(f"key_id must be a string of 1 to {MAX_KEY_ID_LENGTH} characters")
    if header.suite not in SUITES:
        raise bad(f"suite must be one of {', '.join(SUITES)}")
    try:
        parse_timestamp(header.hlc)
    except InvalidTimestamp:
        raise bad("hlc must be an HLC timestamp (see fieldsync.core.hlc)") from None


def is_submission_id(text: object) -> bool:
    """True for a lower-case hyphenated UUID string (the only accepted spelling)."""
    if not isinstance(text, str):
        return False
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
