"""Server-signed receipts: round trip and tamper detection."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldsync.core.canonical import canonical_json
from fieldsync.core.keys import (
    b64url_decode,
    b64url_encode,
    encode_signing_public_key,
    generate_signing_key,
    verify_p256,
)
from fieldsync.core.receipts import RECEIPT_PREFIX, InvalidReceipt, sign_receipt, verify_receipt

SERVER_KEY = generate_signing_key()
DIGEST = hashlib.sha256(b"envelope").hexdigest()


def fields(**changes: Any) -> dict[str, Any]:
    base = {
        "submission_id": "0b6f3c8e-2f4b-4d7e-9d35-2b8b1f6f4a10",
        "envelope_digest": DIGEST,
        "sequence": 42,
        "status": "accepted",
        "timestamp": "001732412345678-000000-server",
        "device_id": "dev-1",
    }
    base.update(changes)
    return base


@pytest.fixture
def server_key() -> ec.EllipticCurvePrivateKey:
    return SERVER_KEY


def test_round_trip(server_key: ec.EllipticCurvePrivateKey) -> None:
    receipt = sign_receipt(fields(), server_key)
    assert set(receipt) == set(fields()) | {"signature"}
    assert len(b64url_decode(receipt["signature"])) == 64
    assert verify_receipt(receipt, server_key.public_key()) == fields()
    wire_key = encode_signing_public_key(server_key.public_key())
    assert verify_receipt(receipt, wire_key, envelope_digest=DIGEST) == fields()


def test_signature_is_over_the_documented_message(server_key: ec.EllipticCurvePrivateKey) -> None:
    receipt = sign_receipt(fields(status="duplicate"), server_key)
    message = b"FieldSync receipt v1\x00" + canonical_json(fields(status="duplicate"))
    assert RECEIPT_PREFIX == b"FieldSync receipt v1\x00"
    assert verify_p256(server_key.public_key(), b64url_decode(receipt["signature"]), message)


field_changes = st.sampled_from(
    [
        ("submission_id", str(uuid.UUID(int=7))),
        ("envelope_digest", "0" * 64),
        ("sequence", 43),
        ("status", "duplicate"),
        ("timestamp", "001732412345679-000000-server"),
        ("device_id", "dev-2"),
        ("extra", "added"),
    ]
)


@settings(max_examples=50, deadline=None)
@given(field_changes)
def test_changed_or_added_fields_are_detected(change: tuple[str, Any]) -> None:
    receipt = sign_receipt(fields(), SERVER_KEY)
    name, value = change
    receipt[name] = value
    with pytest.raises(InvalidReceipt, match="does not verify"):
        verify_receipt(receipt, SERVER_KEY.public_key())


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 63), st.integers(1, 255))
def test_any_signature_byte_change_is_detected(position: int, flip: int) -> None:
    receipt = sign_receipt(fields(), SERVER_KEY)
    signature = bytearray(b64url_decode(receipt["signature"]))
    signature[position] ^= flip
    receipt["signature"] = b64url_encode(bytes(signature))
    with pytest.raises(InvalidReceipt):
        verify_receipt(receipt, SERVER_KEY.public_key())


def test_removed_field_is_detected(server_key: ec.EllipticCurvePrivateKey) -> None:
    receipt = sign_receipt(fields(), server_key)
    del receipt["device_id"]
    with pytest.raises(InvalidReceipt):
        verify_receipt(receipt, server_key.public_key())


def test_other_key_does_not_verify(server_key: ec.EllipticCurvePrivateKey) -> None:
    receipt = sign_receipt(fields(), server_key)
    with pytest.raises(InvalidReceipt) as caught:
        verify_receipt(receipt, generate_signing_key().public_key())
    assert caught.value.code == "invalid_receipt"


def test_receipt_for_another_envelope_is_refused(server_key: ec.EllipticCurvePrivateKey) -> None:
    receipt = sign_receipt(fields(), server_key)
    with pytest.raises(InvalidReceipt, match="different envelope"):
        verify_receipt(receipt, server_key.public_key(), envelope_digest="f" * 64)


@pytest.mark.parametrize(
    "receipt",
    [
        {},
        [],
        {**fields(), "signature": "AA=="},
        {**fields(sequence=-1), "signature": "AAAA"},
        {**fields(status="rejected"), "signature": "AAAA"},
        {**fields(device_id="\ud800"), "signature": "AAAA"},
    ],
)
def test_malformed_receipts(receipt: Any, server_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(InvalidReceipt):
        verify_receipt(receipt, server_key.public_key())


@pytest.mark.parametrize(
    "bad",
    [
        fields(submission_id="not-a-uuid"),
        fields(envelope_digest="sha256:" + DIGEST),
        fields(sequence=True),
        fields(sequence="1"),
        fields(status="rejected"),
        fields(timestamp=""),
        fields(signature="x"),
        fields(extra=float("nan")),
        fields(extra=1.5),
        fields(extra={"nested": 1}),
        fields(extra=[1]),
        {k: v for k, v in fields().items() if k != "timestamp"},
    ],
)
def test_sign_refuses_bad_fields(
    bad: dict[str, Any], server_key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(ValueError):
        sign_receipt(bad, server_key)
