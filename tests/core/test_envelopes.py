"""Envelopes: round trip, tamper detection, strict parsing, and the documented byte layout."""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldsync.core.canonical import canonical_json
from fieldsync.core.envelopes import (
    INFO_PREFIX,
    MAGIC,
    MAX_CIPHERTEXT_LENGTH,
    MAX_HEADER_LENGTH,
    SIGNATURE_PREFIX,
    BadSignature,
    DecryptFailed,
    Envelope,
    EnvelopeHeader,
    MalformedEnvelope,
    UnknownKey,
    envelope_digest,
    open_envelope,
    seal,
    verify_signature,
)
from fieldsync.core.hlc import Timestamp
from fieldsync.core.keys import (
    SUITES,
    KeyRing,
    PublicKeyInfo,
    b64url_encode,
    encode_signing_public_key,
    generate_signing_key,
    hpke_suite,
    sign_p256,
)

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
HLC_STAMP = Timestamp(1_732_412_345_678, 0, "dev-1")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(max_size=10), json_values, max_size=6)
suites = st.sampled_from(SUITES)


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture(scope="module")
def device_key() -> ec.EllipticCurvePrivateKey:
    return generate_signing_key()


@pytest.fixture
def make_envelope(
    ring: KeyRing, device_key: ec.EllipticCurvePrivateKey
) -> Callable[..., Envelope]:
    def make(
        payload: dict[str, Any] | None = None, suite: str = "x25519", **fields: Any
    ) -> Envelope:
        args: dict[str, Any] = {
            "submission_id": str(uuid.uuid4()),
            "device_id": "dev-1",
            "form_id": "home_visit",
            "form_version": 2,
            "hlc": HLC_STAMP,
            "recipient": ring.current_key(suite),  # type: ignore[arg-type]
            "signing_key": device_key,
        }
        args.update(fields)
        return seal({"case_id": "c-1", "answers": {}} if payload is None else payload, **args)

    return make


# -- round trip ------------------------------------------------------------------------------


@SETTINGS
@given(payload=payloads, suite=suites)
def test_seal_open_round_trip(
    make_envelope: Callable[..., Envelope],
    ring: KeyRing,
    device_key: ec.EllipticCurvePrivateKey,
    payload: dict[str, Any],
    suite: str,
) -> None:
    envelope = make_envelope(payload, suite)
    wire = envelope.to_bytes()
    parsed = Envelope.from_bytes(wire)
    assert parsed == envelope
    assert parsed.to_bytes() == wire
    assert Envelope.from_text(envelope.to_text()) == envelope
    verify_signature(parsed, device_key.public_key())
    assert open_envelope(parsed, ring.private_key) == json.loads(json.dumps(payload))


def test_header_carries_no_case_data(make_envelope: Callable[..., Envelope]) -> None:
    envelope = make_envelope({"case_id": "CASE-SECRET-42", "answers": {"name": "Jane Roe"}})
    wire = envelope.to_bytes()
    assert b"CASE-SECRET-42" not in wire and b"Jane Roe" not in wire
    assert set(json.loads(envelope.header.to_bytes())) == {
        "format", "submission_id", "device_id", "form_id", "form_version", "key_id", "suite",
        "hlc",
    }


def test_digest_is_sha256_of_the_wire_bytes(make_envelope: Callable[..., Envelope]) -> None:
    envelope = make_envelope()
    wire = envelope.to_bytes()
    assert envelope_digest(wire) == hashlib.sha256(wire).hexdigest() == envelope.digest
    assert envelope_digest(wire) != make_envelope().digest  # fresh HPKE randomness each time


def test_signature_verifies_with_wire_form_of_the_key(
    make_envelope: Callable[..., Envelope], device_key: ec.EllipticCurvePrivateKey
) -> None:
    verify_signature(make_envelope(), encode_signing_public_key(device_key.public_key()))
    with pytest.raises(BadSignature):
        verify_signature(make_envelope(), "not-a-key")


# -- tampering -------------------------------------------------------------------------------


@SETTINGS
@given(suite=suites, data=st.data())
def test_any_single_byte_change_is_detected(
    make_envelope: Callable[..., Envelope],
    ring: KeyRing,
    device_key: ec.EllipticCurvePrivateKey,
    suite: str,
    data: st.DataObject,
) -> None:
    envelope = make_envelope(suite=suite)
    wire = bytearray(envelope.to_bytes())
    header_length = len(envelope.header.to_bytes())
    ciphertext_start = 9 + header_length + 4
    region = data.draw(st.sampled_from(["anywhere", "header", "ciphertext", "signature"]))
    low, high = {
        "anywhere": (0, len(wire) - 1),
        "header": (9, 9 + header_length - 1),
        "ciphertext": (ciphertext_start, ciphertext_start + len(envelope.ciphertext) - 1),
        "signature": (len(wire) - 64, len(wire) - 1),
    }[region]
    position = data.draw(st.integers(low, high))
    wire[position] ^= data.draw(st.integers(1, 255))

    try:
        tampered = Envelope.from_bytes(bytes(wire))
    except MalformedEnvelope:
        return
    with pytest.raises(BadSignature):
        verify_signature(tampered, device_key.public_key())
    if tampered.signature == envelope.signature:  # header or ciphertext changed
        with pytest.raises((DecryptFailed, UnknownKey)):
            open_envelope(tampered, ring.private_key)


def test_swapped_header_fails_signature_and_decryption(
    make_envelope: Callable[..., Envelope],
    ring: KeyRing,
    device_key: ec.EllipticCurvePrivateKey,
) -> None:
    first, second = make_envelope(), make_envelope()
    swapped = Envelope(second.header, first.ciphertext, first.signature)
    with pytest.raises(BadSignature):
        verify_signature(swapped, device_key.public_key())
    with pytest.raises(DecryptFailed):
        open_envelope(swapped, ring.private_key)

    # Even the device itself cannot move a ciphertext under another header: HPKE info binds it.
    header_bytes = second.header.to_bytes()
    message = (SIGNATURE_PREFIX + struct.pack(">I", len(header_bytes)) + header_bytes
               + hashlib.sha256(first.ciphertext).digest())
    resigned = Envelope(second.header, first.ciphertext, sign_p256(device_key, message))
    verify_signature(resigned, device_key.public_key())
    with pytest.raises(DecryptFailed):
        open_envelope(resigned, ring.private_key)


def test_other_devices_key_does_not_verify(make_envelope: Callable[..., Envelope]) -> None:
    with pytest.raises(BadSignature) as caught:
        verify_signature(make_envelope(), generate_signing_key().public_key())
    assert caught.value.code == "bad_signature"


def test_unknown_and_mismatched_keys(make_envelope: Callable[..., Envelope], ring: KeyRing) -> None:
    envelope = make_envelope(suite="x25519")
    with pytest.raises(UnknownKey) as caught:
        open_envelope(envelope, lambda key_id: None)
    assert caught.value.code == "unknown_key"
    with pytest.raises(UnknownKey):
        open_envelope(envelope, {}.__getitem__)
    hybrid = ring.private_key(ring.current_key("mlkem768x25519").key_id)
    with pytest.raises(UnknownKey):
        open_envelope(envelope, lambda key_id: hybrid)


def test_wrong_private_key_fails_decryption(make_envelope: Callable[..., Envelope]) -> None:
    other = KeyRing.generate(suites=("x25519",))
    other_key = other.private_key(other.current_key("x25519").key_id)
    with pytest.raises(DecryptFailed) as caught:
        open_envelope(make_envelope(suite="x25519"), lambda key_id: other_key)
    assert caught.value.code == "decrypt_failed"


# -- strict parsing --------------------------------------------------------------------------


def _frame(header: bytes, ciphertext: bytes, signature: bytes = b"\x01" * 64) -> bytes:
    return (MAGIC + b"\x01" + struct.pack(">I", len(header)) + header
            + struct.pack(">I", len(ciphertext)) + ciphertext + signature)


def _header_dict() -> dict[str, Any]:
    return {
        "format": 1, "submission_id": str(uuid.uuid4()), "device_id": "dev-1",
        "form_id": "home_visit", "form_version": 2, "key_id": "k1-00000000", "suite": "x25519",
        "hlc": str(HLC_STAMP),
    }


def test_every_truncation_is_malformed(make_envelope: Callable[..., Envelope]) -> None:
    wire = make_envelope().to_bytes()
    for length in range(len(wire)):
        with pytest.raises(MalformedEnvelope):
            Envelope.from_bytes(wire[:length])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda w: b"XSEN" + w[4:], "magic"),
        (lambda w: w[:4] + b"\x02" + w[5:], "version"),
        (lambda w: w + b"\x00", "trailing"),
        (lambda w: w[:5] + struct.pack(">I", MAX_HEADER_LENGTH + 1) + w[9:], "exceeds"),
        (lambda w: w[:5] + struct.pack(">I", 2**32 - 1) + w[9:], "exceeds"),
    ],
)
def test_framing_errors(
    make_envelope: Callable[..., Envelope], mutate: Callable[[bytes], bytes], message: str
) -> None:
    with pytest.raises(MalformedEnvelope, match=message):
        Envelope.from_bytes(mutate(make_envelope().to_bytes()))


def test_oversize_ciphertext_length_is_malformed() -> None:
    header = canonical_json(_header_dict())
    wire = _frame(header, b"")
    start = 9 + len(header)
    wire = wire[:start] + struct.pack(">I", MAX_CIPHERTEXT_LENGTH + 1) + wire[start + 4 :]
    with pytest.raises(MalformedEnvelope, match="exceeds"):
        Envelope.from_bytes(wire)


@pytest.mark.parametrize(
    "header",
    [
        json.dumps(_header_dict(), sort_keys=True).encode(),  # white space
        json.dumps(_header_dict(), separators=(",", ":")).encode(),  # keys not sorted
        json.dumps({**_header_dict(), "form_id": "é"}, sort_keys=True,
                   separators=(",", ":")).encode(),  # \u escape instead of UTF-8
        canonical_json({**_header_dict(), "case_id": "c-1"}),
        canonical_json({**_header_dict(), "format": 2}),
        canonical_json({**_header_dict(), "form_version": 2.0}),
        canonical_json({**_header_dict(), "submission_id": str(uuid.uuid4()).upper()}),
        canonical_json({**_header_dict(), "suite": "p256"}),
        canonical_json({**_header_dict(), "hlc": "yesterday"}),
        b'{"device_id":"a","device_id":"b"}',
        b"[" * 2000 + b"]" * 2000,  # nesting deeper than the parser recursion limit
        b"\xff\xfe",
        b"",
    ],
)
def test_bad_headers_are_malformed(header: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        Envelope.from_bytes(_frame(header, b"\x00" * 48))


def test_ciphertext_shorter_than_the_suite_allows_is_malformed() -> None:
    header = canonical_json(_header_dict())
    Envelope.from_bytes(_frame(header, b"\x00" * 48))  # 32-byte enc + 16-byte tag: well formed
    with pytest.raises(MalformedEnvelope, match="too short"):
        Envelope.from_bytes(_frame(header, b"\x00" * 47))


@settings(max_examples=100, deadline=None)
@given(
    st.binary(max_size=300)
    | st.binary(max_size=300).map(lambda b: MAGIC + b"\x01" + b)
    | st.builds(
        lambda h, c, s: _frame(h, c, s),
        st.binary(max_size=60) | st.just(json.dumps(_header_dict()).encode()),
        st.binary(max_size=80),
        st.binary(min_size=64, max_size=64),
    )
)
def test_parsing_arbitrary_bytes_raises_only_malformed(data: bytes) -> None:
    try:
        Envelope.from_bytes(data)
    except MalformedEnvelope:
        pass


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_parsing_arbitrary_text_raises_only_malformed(text: str) -> None:
    try:
        Envelope.from_text(text)
    except MalformedEnvelope:
        pass


def test_text_form_must_be_unpadded_base64url(make_envelope: Callable[..., Envelope]) -> None:
    text = make_envelope().to_text()
    for bad in (text + "=", text.replace("-", "+").replace("_", "/") + "+", " " + text):
        with pytest.raises(MalformedEnvelope):
            Envelope.from_text(bad)


# -- sealing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"submission_id": "not-a-uuid"},
        {"submission_id": str(uuid.uuid4()).upper()},
        {"device_id": "dev 1"},
        {"form_id": ""},
        {"form_version": 0},
        {"form_version": True},
        {"hlc": "now"},
    ],
)
def test_seal_refuses_bad_header_fields(
    make_envelope: Callable[..., Envelope], fields: dict[str, Any]
) -> None:
    with pytest.raises(MalformedEnvelope):
        make_envelope(**fields)


@pytest.mark.parametrize("payload", [[1, 2], {"x": float("nan")}, {"x": object()}])
def test_seal_refuses_payloads_that_are_not_json_objects(
    make_envelope: Callable[..., Envelope], payload: Any
) -> None:
    with pytest.raises(MalformedEnvelope):
        make_envelope(payload)


def test_payload_that_is_not_an_object_is_malformed(
    ring: KeyRing, device_key: ec.EllipticCurvePrivateKey
) -> None:
    header = EnvelopeHeader.from_bytes(
        canonical_json({**_header_dict(), "key_id": ring.current_key("x25519").key_id})
    )
    recipient = ring.current_key("x25519")
    ciphertext = hpke_suite("x25519").encrypt(
        b"[1,2]", recipient.public_key, info=INFO_PREFIX + header.to_bytes()
    )
    envelope = Envelope(header, ciphertext, b"\x00" * 64)
    with pytest.raises(MalformedEnvelope, match="payload"):
        open_envelope(envelope, ring.private_key)


@pytest.mark.parametrize(("escaped", "opened"), [
    ('"A\\ud800B"', None),  # a lone high half: no text can hold it
    ('"\\udc00"', None),  # a lone low half
    ('"\\ud83d\\ude00"', "\U0001F600"),  # a pair: one character, fine
    ('"\\\\ud800"', "\\ud800"),  # an escaped backslash, then plain letters
])
def test_payload_escaping_half_a_surrogate_pair_is_malformed(
    ring: KeyRing, escaped: str, opened: str | None
) -> None:
    """json.loads accepts a lone surrogate escape, but the text cannot be stored (UTF-8):
    such a payload must be refused as malformed, not fail later in the database."""
    recipient = ring.current_key("x25519")
    header = EnvelopeHeader.from_bytes(
        canonical_json({**_header_dict(), "key_id": recipient.key_id}))
    plaintext = ('{"answers":{"full_name":' + escaped + "}}").encode("ascii")
    ciphertext = hpke_suite("x25519").encrypt(
        plaintext, recipient.public_key, info=INFO_PREFIX + header.to_bytes())
    envelope = Envelope(header, ciphertext, b"\x00" * 64)
    if opened is None:
        with pytest.raises(MalformedEnvelope, match="lone surrogate"):
            open_envelope(envelope, ring.private_key)
    else:
        assert open_envelope(envelope, ring.private_key)["answers"]["full_name"] == opened


# -- the documented layout -------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_envelope_built_from_docs_is_accepted(
    ring: KeyRing, device_key: ec.EllipticCurvePrivateKey, suite: str
) -> None:
    """Build an envelope following docs/envelope.md only, as another language would."""
    wire_key = next(k for k in ring.current_public_keys() if k["suite"] == suite)
    recipient = PublicKeyInfo.from_wire(wire_key)
    header = (
        '{"device_id":"dev-1","form_id":"home_visit","form_version":2,"format":1,'
        '"hlc":"001732412345678-000000-dev-1","key_id":"' + wire_key["key_id"] + '",'
        '"submission_id":"0b6f3c8e-2f4b-4d7e-9d35-2b8b1f6f4a10","suite":"' + suite + '"}'
    ).encode()
    plaintext = b'{"answers":{"visited":true},"case_id":"c-9"}'
    ciphertext = hpke_suite(suite).encrypt(
        plaintext, recipient.public_key, info=b"FieldSync envelope v1 payload\x00" + header
    )
    message = (b"FieldSync envelope v1 signature\x00" + len(header).to_bytes(4, "big") + header
               + hashlib.sha256(ciphertext).digest())
    signature = sign_p256(device_key, message)
    wire = (b"FSEN\x01" + len(header).to_bytes(4, "big") + header
            + len(ciphertext).to_bytes(4, "big") + ciphertext + signature)

    envelope = Envelope.from_text(b64url_encode(wire))
    verify_signature(envelope, encode_signing_public_key(device_key.public_key()))
    assert open_envelope(envelope, ring.private_key) == {"answers": {"visited": True},
                                                          "case_id": "c-9"}
    assert envelope.to_bytes() == wire
