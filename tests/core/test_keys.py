"""Key formats and the server key ring file."""

from __future__ import annotations

import json
import re
import stat
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldsync.core import keys
from fieldsync.core.envelopes import Envelope, UnknownKey, open_envelope, seal
from fieldsync.core.hlc import Timestamp
from fieldsync.core.keys import (
    SUITES,
    InvalidPublicKey,
    KeyRing,
    KeyringError,
    KeyringPassphraseError,
    PublicKeyInfo,
    b64url_decode,
    b64url_encode,
    decode_signing_public_key,
    encode_signing_public_key,
    generate_encryption_key,
    generate_signing_key,
)

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap scrypt for the suite; the file records the parameters it was written with."""
    monkeypatch.setattr(keys, "SCRYPT_N", 2**10)


def sealed_to(ring: KeyRing, suite: str = "mlkem768x25519") -> Envelope:
    return seal(
        {"case_id": "c-1"},
        submission_id=str(uuid.uuid4()),
        device_id="dev-1",
        form_id="home_visit",
        form_version=1,
        hlc=Timestamp(1_732_412_345_678, 0, "dev-1"),
        recipient=ring.current_key(suite),  # type: ignore[arg-type]
        signing_key=generate_signing_key(),
    )


# -- base64url and public keys ---------------------------------------------------------------


@given(st.binary(max_size=100))
def test_b64url_round_trip(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text and re.fullmatch(r"[A-Za-z0-9_-]*", text)
    assert b64url_decode(text) == data


@pytest.mark.parametrize("text", ["AA==", "AA=", "A", "AB", "a+b/", "AA AA", "ÅÅÅÅ", "AAB"])
def test_b64url_decode_is_strict(text: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)


def test_signing_public_key_round_trip() -> None:
    public = generate_signing_key().public_key()
    text = encode_signing_public_key(public)
    raw = b64url_decode(text)
    assert len(raw) == 65 and raw[0] == 4
    assert decode_signing_public_key(text).public_numbers() == public.public_numbers()


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x04" + b"\x00" * 64, b"\x02" + b"\x01" * 32, b"\x04" + b"\x01" * 63, b"\x05" * 65],
)
def test_signing_public_key_must_be_an_uncompressed_p256_point(raw: bytes) -> None:
    with pytest.raises(InvalidPublicKey):
        decode_signing_public_key(b64url_encode(raw))


@pytest.mark.parametrize("suite", SUITES)
def test_encryption_public_key_wire_round_trip(suite: str) -> None:
    key = generate_encryption_key(suite)  # type: ignore[arg-type]
    wire = key.public_info().to_wire()
    assert re.fullmatch(r"k1-[0-9a-f]{8}", wire["key_id"])
    assert len(b64url_decode(wire["public_key"])) == {"x25519": 32, "mlkem768x25519": 1216}[suite]
    assert PublicKeyInfo.from_wire(wire) == key.public_info()


@pytest.mark.parametrize(
    "wire",
    [
        {"key_id": "k1-1", "suite": "x25519", "public_key": b64url_encode(b"\x01" * 31)},
        {"key_id": "k1-1", "suite": "mlkem768x25519", "public_key": b64url_encode(b"\x01" * 32)},
        {"key_id": "k1-1", "suite": "rsa", "public_key": b64url_encode(b"\x01" * 32)},
        {"key_id": "", "suite": "x25519", "public_key": b64url_encode(b"\x01" * 32)},
        {"key_id": "k1-1", "suite": "x25519", "public_key": "AA=="},
        {"suite": "x25519"},
    ],
)
def test_bad_encryption_public_keys(wire: dict[str, str]) -> None:
    with pytest.raises(InvalidPublicKey):
        PublicKeyInfo.from_wire(wire)


# -- the ring ----------------------------------------------------------------------------------


def test_generated_ring_has_one_current_key_per_suite() -> None:
    ring = KeyRing.generate()
    public = ring.current_public_keys()
    assert sorted(item["suite"] for item in public) == sorted(SUITES)
    assert all(set(item) == {"key_id", "suite", "public_key"} for item in public)
    assert sorted(ring.key_ids()) == sorted(item["key_id"] for item in public)


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE])
def test_save_load_round_trip(tmp_path: Path, passphrase: str | None) -> None:
    ring = KeyRing.generate()
    envelopes = [sealed_to(ring, suite) for suite in SUITES]
    path = tmp_path / "keyring.json"
    ring.save(path, passphrase)

    loaded = KeyRing.load(path, passphrase)
    assert loaded.current_public_keys() == ring.current_public_keys()
    assert loaded.key_ids() == ring.key_ids()
    assert loaded.receipt_public_key() == ring.receipt_public_key()
    for envelope in envelopes:
        assert open_envelope(envelope, loaded.private_key) == {"case_id": "c-1"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_passphrase_protects_the_private_material(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    key = ring.private_key(ring.current_key("x25519").key_id)
    secret = b64url_encode(key.x25519_private.private_bytes_raw())
    ring.save(tmp_path / "plain.json")
    ring.save(tmp_path / "sealed.json", PASSPHRASE)
    assert secret in (tmp_path / "plain.json").read_text()
    sealed = (tmp_path / "sealed.json").read_text()
    assert secret not in sealed
    assert json.loads(sealed)["protection"] == "scrypt-aes256gcm"


def test_wrong_passphrase_is_a_specific_error(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    KeyRing.generate().save(path, PASSPHRASE)
    with pytest.raises(KeyringPassphraseError, match="wrong passphrase"):
        KeyRing.load(path, "incorrect horse")
    with pytest.raises(KeyringPassphraseError, match="passphrase-protected"):
        KeyRing.load(path)


def test_passphrase_for_an_unprotected_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    KeyRing.generate().save(path)
    with pytest.raises(KeyringPassphraseError, match="not passphrase-protected"):
        KeyRing.load(path, PASSPHRASE)


def test_altered_protected_file_does_not_load(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    KeyRing.generate().save(path, PASSPHRASE)
    document = json.loads(path.read_text())
    document["scrypt"]["n"] = 2**11  # authenticated as associated data
    path.write_text(json.dumps(document))
    with pytest.raises(KeyringPassphraseError):
        KeyRing.load(path, PASSPHRASE)


@pytest.mark.parametrize(
    "content", ["", "[]", '{"format": "something-else", "version": 1}', "{not json"]
)
def test_files_that_are_not_key_rings(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keyring.json"
    path.write_text(content)
    with pytest.raises(KeyringError):
        KeyRing.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="cannot read"):
        KeyRing.load(tmp_path / "absent.json")


def test_damaged_key_material_does_not_load(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    KeyRing.generate().save(path)
    document = json.loads(path.read_text())
    document["keys"]["encryption_keys"][0]["private_key"]["x25519"] = b64url_encode(b"\x07" * 32)
    path.write_text(json.dumps(document))
    with pytest.raises(KeyringError, match="does not match"):
        KeyRing.load(path)


def test_save_replaces_atomically_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.write_text("old")
    path.chmod(0o644)
    KeyRing.generate().save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]  # no temporary left behind


def test_default_scrypt_cost_is_recorded_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()
    path = tmp_path / "keyring.json"
    KeyRing.generate(suites=("x25519",)).save(path, PASSPHRASE)
    assert json.loads(path.read_text())["scrypt"] == {
        "salt": json.loads(path.read_text())["scrypt"]["salt"], "n": 2**17, "r": 8, "p": 1,
    }
    KeyRing.load(path, PASSPHRASE)


# -- rotation and retirement -------------------------------------------------------------------


def test_rotate_keeps_old_keys_for_decryption(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    old_id = ring.current_key("mlkem768x25519").key_id
    old_envelope = sealed_to(ring)
    new_id = ring.rotate("mlkem768x25519")

    assert new_id != old_id
    assert ring.current_key("mlkem768x25519").key_id == new_id
    assert new_id in [k["key_id"] for k in ring.current_public_keys()]
    assert old_id not in [k["key_id"] for k in ring.current_public_keys()]
    assert ring.current_key("x25519").key_id in ring.key_ids()  # other suite untouched

    ring.save(tmp_path / "keyring.json")
    loaded = KeyRing.load(tmp_path / "keyring.json")
    assert open_envelope(old_envelope, loaded.private_key) == {"case_id": "c-1"}
    assert open_envelope(sealed_to(loaded), loaded.private_key) == {"case_id": "c-1"}


def test_retire_removes_decryption(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    old_id = ring.current_key("mlkem768x25519").key_id
    old_envelope = sealed_to(ring)
    ring.rotate("mlkem768x25519")
    ring.retire(old_id)

    assert old_id not in ring.key_ids() and ring.is_retired(old_id)
    with pytest.raises(UnknownKey):
        open_envelope(old_envelope, ring.private_key)
    ring.save(tmp_path / "keyring.json")
    saved = json.loads((tmp_path / "keyring.json").read_text())["keys"]
    assert old_id not in [item["key_id"] for item in saved["encryption_keys"]]
    assert old_id in saved["retired"]
    loaded = KeyRing.load(tmp_path / "keyring.json")
    assert loaded.is_retired(old_id)
    with pytest.raises(UnknownKey):
        open_envelope(old_envelope, loaded.private_key)
    with pytest.raises(KeyringError, match="already retired"):
        loaded.retire(old_id)


def test_current_key_cannot_be_retired() -> None:
    ring = KeyRing.generate()
    with pytest.raises(KeyringError, match="rotate"):
        ring.retire(ring.current_key("x25519").key_id)
    with pytest.raises(KeyringError, match="not in the key ring"):
        ring.retire("k1-ffffffff")
