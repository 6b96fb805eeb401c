"""Every bad input over real HTTP gets its own rejection code and changes nothing.

Attack envelopes are built with the shared core modules, as an attacker with the format spec
would, and pushed with plain httpx.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from typing import Any

import httpx
import pytest

from fieldsync.core.envelopes import Envelope, EnvelopeHeader
from fieldsync.core.keys import (
    encode_signing_public_key,
    generate_signing_key,
    sign_p256,
)
from fieldsync.core.receipts import verify_receipt
from tests.client import answers
from tests.e2e.conftest import Server
from tests.e2e.rawdevice import RawDevice

pytestmark = pytest.mark.slow

SIGNATURE_PREFIX = b"FieldSync envelope v1 signature\x00"


def resign(envelope: Envelope, key: Any, header: EnvelopeHeader | None = None,
           ciphertext: bytes | None = None) -> Envelope:
    """Rebuild ``envelope`` with another header or ciphertext, signed with ``key``."""
    header = header or envelope.header
    ciphertext = envelope.ciphertext if ciphertext is None else ciphertext
    header_bytes = header.to_bytes()
    message = (SIGNATURE_PREFIX + struct.pack(">I", len(header_bytes)) + header_bytes
               + hashlib.sha256(ciphertext).digest())
    return Envelope(header, ciphertext, sign_p256(key, message))


def with_header(envelope: Envelope, **changes: Any) -> EnvelopeHeader:
    fields = {k: v for k, v in envelope.header.to_dict().items() if k != "format"}
    return EnvelopeHeader(**{**fields, **changes})


def flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]


@pytest.fixture(scope="module")
def officer(shared_server: Server) -> dict[str, Any]:
    """An officer's raw device with one case of its own (created and pulled)."""
    device = RawDevice(shared_server, "ion.popescu")
    case_id = str(uuid.uuid4())
    [result] = device.push(device.seal("case_intake", answers.intake("Raw Device Case"),
                                       case_id))
    assert result["status"] == "accepted", result
    return {"device": device, "case_id": case_id}


def visit_on(officer: dict[str, Any], notes: str = "Visit from a crafted envelope.") -> Envelope:
    device: RawDevice = officer["device"]
    case = device.pull()[officer["case_id"]]
    return device.seal("home_visit", answers.home_visit(notes), officer["case_id"],
                       {"revision": case["revision"], "heads": case["heads"]})


def assert_rejected(server: Server, device: RawDevice, envelope: Envelope | str,
                    code: str) -> dict[str, Any]:
    before = server.snapshot()
    [result] = device.push(envelope)
    assert result["status"] == "rejected", result
    assert result["code"] == code, result
    assert "receipt" not in result
    assert server.snapshot() == before
    return result


def test_a_valid_visit_is_accepted_with_a_verifiable_receipt_and_a_duplicate_is_harmless(
        shared_server: Server, officer: dict[str, Any]) -> None:
    device: RawDevice = officer["device"]
    envelope = visit_on(officer)
    [first] = device.push(envelope)
    assert first["status"] == "accepted"
    receipt = verify_receipt(first["receipt"], device.receipt_key,
                             envelope_digest=envelope.digest)
    before = shared_server.snapshot()
    [again] = device.push(envelope)
    assert again["status"] == "duplicate"
    assert verify_receipt(again["receipt"], device.receipt_key,
                          envelope_digest=envelope.digest)["sequence"] == receipt["sequence"]
    assert shared_server.snapshot() == before
    assert shared_server.scalar("SELECT count(*) FROM case_events WHERE id = :id",
                                id=envelope.submission_id) == 1


def test_tampered_ciphertext(shared_server: Server, officer: dict[str, Any]) -> None:
    device: RawDevice = officer["device"]
    envelope = visit_on(officer)
    altered = flip(envelope.ciphertext, len(envelope.ciphertext) - 20)
    tampered = Envelope(envelope.header, altered, envelope.signature)
    assert_rejected(shared_server, device, tampered, "bad_signature")
    # Re-signing with the device key does not help: the AEAD tag no longer matches.
    assert_rejected(shared_server, device, resign(envelope, device.key, ciphertext=altered),
                    "decrypt_failed")


def test_tampered_header(shared_server: Server, officer: dict[str, Any]) -> None:
    device: RawDevice = officer["device"]
    envelope = visit_on(officer)
    header = with_header(envelope, form_id="risk_needs_assessment")
    assert_rejected(shared_server, device, Envelope(header, envelope.ciphertext,
                                                    envelope.signature), "bad_signature")
    # The header is HPKE info: a re-signed, altered header still fails to decrypt.
    assert_rejected(shared_server, device, resign(envelope, device.key, header=header),
                    "decrypt_failed")


def test_wrong_signature(shared_server: Server, officer: dict[str, Any]) -> None:
    device: RawDevice = officer["device"]
    envelope = visit_on(officer)
    assert_rejected(shared_server, device, resign(envelope, generate_signing_key()),
                    "bad_signature")


def test_replay_under_another_device(shared_server: Server, officer: dict[str, Any]) -> None:
    device: RawDevice = officer["device"]
    thief = RawDevice(shared_server, "ion.popescu")
    envelope = visit_on(officer)
    assert_rejected(shared_server, thief, envelope, "device_mismatch")
    stolen = resign(envelope, thief.key, header=with_header(envelope, device_id=thief.id))
    assert_rejected(shared_server, thief, stolen, "decrypt_failed")
    # The original is untouched by the attempts and still goes through.
    [result] = device.push(envelope)
    assert result["status"] == "accepted"


def test_same_submission_id_with_other_content(shared_server: Server,
                                               officer: dict[str, Any]) -> None:
    device: RawDevice = officer["device"]
    envelope = visit_on(officer)
    assert device.push(envelope)[0]["status"] == "accepted"
    twin = resign(envelope, device.key, header=with_header(envelope, hlc=str(device.hlc.now())))
    assert_rejected(shared_server, device, twin, "id_reused_with_different_content")


def test_garbage_is_a_malformed_envelope(shared_server: Server,
                                         officer: dict[str, Any]) -> None:
    envelope = visit_on(officer)
    text = envelope.to_text()
    assert_rejected(shared_server, officer["device"], "not-an-envelope", "malformed_envelope")
    assert_rejected(shared_server, officer["device"], text[:-40], "malformed_envelope")


def test_unknown_form_version(shared_server: Server, officer: dict[str, Any]) -> None:
    device: RawDevice = officer["device"]
    case = device.pull()[officer["case_id"]]
    envelope = device.seal("home_visit", answers.home_visit(), officer["case_id"],
                           {"revision": case["revision"], "heads": case["heads"]}, version=99)
    result = assert_rejected(shared_server, device, envelope, "unknown_form_version")
    assert "home_visit version 99" in result["detail"]


def test_invalid_answers(shared_server: Server, officer: dict[str, Any]) -> None:
    device: RawDevice = officer["device"]
    case = device.pull()[officer["case_id"]]
    bad = {**answers.home_visit(), "notes": "short", "outcome": "on_the_moon"}
    envelope = device.seal("home_visit", bad, officer["case_id"],
                           {"revision": case["revision"], "heads": case["heads"]})
    result = assert_rejected(shared_server, device, envelope, "invalid_answers")
    assert set(result["errors"]) >= {"notes", "outcome"}
    assert device.pull()[officer["case_id"]]["revision"] == case["revision"]


def test_oversized_batch(shared_server: Server, officer: dict[str, Any]) -> None:
    device: RawDevice = officer["device"]
    limit = device.limits["push_batch_limit"]
    envelope = visit_on(officer)
    before = shared_server.snapshot()
    response = device.post("/api/v1/sync/push",
                           json={"envelopes": [envelope.to_text()] * (limit + 1)})
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"
    too_big = "A" * (device.limits["max_body_bytes"] + 1)
    response = device.post("/api/v1/sync/push", content=b'{"envelopes": ["' + too_big.encode()
                           + b'"]}', headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert shared_server.snapshot() == before
    assert shared_server.scalar("SELECT count(*) FROM envelopes WHERE submission_id = :id",
                                id=envelope.submission_id) == 0


def test_malformed_request_bodies(shared_server: Server, officer: dict[str, Any]) -> None:
    device: RawDevice = officer["device"]
    before = shared_server.snapshot()
    response = device.post("/api/v1/sync/push", content=b"{not json",
                           headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request")
    response = device.post("/api/v1/sync/push", json={"envelopes": "x"})
    assert (response.status_code, response.json()["code"]) == (422, "invalid_input")
    assert "envelopes" in response.json()["errors"]
    response = device.post("/api/v1/sync/push", json={"envelopes": []})
    assert (response.status_code, response.json()["code"]) == (422, "invalid_input")
    assert shared_server.snapshot() == before


def test_unknown_token(shared_server: Server) -> None:
    response = httpx.get(f"{shared_server.url}/api/v1/sync/pull",
                         headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"
    assert response.json()["reason"] == "unknown_device"
    response = httpx.get(f"{shared_server.url}/api/v1/sync/pull")
    assert (response.status_code, response.json()["code"]) == (401, "authentication_required")


def test_enrolment_codes_are_one_time_and_expire(shared_server: Server) -> None:
    key = encode_signing_public_key(generate_signing_key().public_key())
    url = f"{shared_server.url}/api/v1/devices/enroll"
    code = shared_server.enrolment_code("maria.ionescu")
    assert httpx.post(url, json={"code": code, "public_key": key}).status_code == 201
    devices = shared_server.scalar("SELECT count(*) FROM devices")
    used = httpx.post(url, json={"code": code, "public_key": key})
    assert (used.status_code, used.json()["code"], used.json()["reason"]) == (
        401, "authentication_required", "code_used")
    expired_code = shared_server.enrolment_code("maria.ionescu", expires="1s")
    shared_server.execute("UPDATE enrolment_codes SET expires_at = created_at "
                          "WHERE used_at IS NULL")  # as if a day had passed
    expired = httpx.post(url, json={"code": expired_code, "public_key": key})
    assert (expired.status_code, expired.json()["reason"]) == (401, "code_expired")
    unknown = httpx.post(url, json={"code": "AAAA-BBBB-CCCC-DDDD", "public_key": key})
    assert (unknown.status_code, unknown.json()["reason"]) == (401, "unknown_code")
    bad_key = httpx.post(url, json={"code": shared_server.enrolment_code("maria.ionescu"),
                                    "public_key": "AAAA"})
    assert (bad_key.status_code, bad_key.json()["code"]) == (422, "invalid_input")
    assert shared_server.scalar("SELECT count(*) FROM devices") == devices
