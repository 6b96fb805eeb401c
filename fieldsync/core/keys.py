"""Keys: device signing keys, server encryption keys, and the server's key ring file.

Formats are specified byte by byte in ``docs/envelope.md``; in short:

* Every binary value on the wire is **base64url without padding** (RFC 4648 section 5).
* Signing keys (device keys and the server's receipt key) are **ECDSA P-256 with SHA-256**.
  A public key is the 65-byte uncompressed SEC1 point ``0x04 || X || Y``; a signature is the
  64-byte ``r || s`` (IEEE P1363), each half 32 bytes big-endian.
* Encryption keys are HPKE (RFC 9180) keys of one of two suites (:data:`SUITES`). A public key
  is the raw X25519 key (32 bytes) or, for the hybrid suite, the raw ML-KEM-768 encapsulation
  key (1184 bytes) followed by the raw X25519 key (32 bytes). A key id is ``k1-`` and the first
  8 hex digits of SHA-256 over ``suite || 0x00 || public key bytes``.

The :class:`KeyRing` holds the server's encryption keys (one current key per suite plus older
keys kept for decryption until retired) and its receipt-signing key, in one JSON file.

Exceptions (all :class:`~fieldsync.errors.FieldsyncError`)::

    InvalidPublicKey (invalid_input)       a device or server public key that cannot be decoded
    KeyringError (keyring_error)           the key ring cannot be used
      +-- KeyringPassphraseError           missing or wrong passphrase
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fieldsync.core.canonical import canonical_json
from fieldsync.errors import InvalidInput, KeyringError

__all__ = [
    "DEFAULT_SUITE",
    "SUITES",
    "EncryptionKey",
    "InvalidPublicKey",
    "KeyRing",
    "KeyringError",
    "KeyringPassphraseError",
    "PublicKeyInfo",
    "Suite",
    "b64url_decode",
    "b64url_encode",
    "decode_signing_public_key",
    "encode_signing_public_key",
    "generate_encryption_key",
    "generate_signing_key",
    "sign_p256",
    "verify_p256",
]

Suite = Literal["x25519", "mlkem768x25519"]
SUITES: tuple[Suite, ...] = ("x25519", "mlkem768x25519")
DEFAULT_SUITE: Suite = "mlkem768x25519"

X25519_LENGTH = 32
MLKEM768_PUBLIC_LENGTH = 1184
MLKEM768_SEED_LENGTH = 64
P256_POINT_LENGTH = 65
P256_SCALAR_LENGTH = 32
SIGNATURE_LENGTH = 64

KEYRING_FORMAT = "fieldsync-keyring"
KEYRING_VERSION = 1
SCRYPT_N = 2**17  # OWASP's scrypt setting; the file records the parameters it was written with
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAX_N = 2**20

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


class InvalidPublicKey(InvalidInput):
    """A public key that is not in the documented wire format."""

    title = "Invalid public key"


class KeyringPassphraseError(KeyringError):
    """The key ring file needs a passphrase that was not given, or the one given is wrong."""

    title = "Wrong or missing key ring passphrase"


# -- base64url -------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict inverse of :func:`b64url_encode`: no padding, no other characters, canonical.

    Raises :class:`ValueError` on anything that :func:`b64url_encode` would not produce.
    """
    if not isinstance(text, str) or not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:  # non-zero unused bits: a second spelling of the same bytes
        raise ValueError("non-canonical base64url")
    return data


# -- signing keys (ECDSA P-256 / SHA-256) ----------------------------------------------------


def generate_signing_key() -> ec.EllipticCurvePrivateKey:
    """A new P-256 key (on a tablet the key lives in the hardware keystore instead)."""
    return ec.generate_private_key(ec.SECP256R1())


def encode_signing_public_key(public_key: ec.EllipticCurvePublicKey) -> str:
    """base64url of the uncompressed SEC1 point (65 bytes)."""
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise InvalidPublicKey("signing keys must be on curve P-256")
    return b64url_encode(public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))


def decode_signing_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """Inverse of :func:`encode_signing_public_key`; rejects anything but a valid P-256 point."""
    try:
        raw = b64url_decode(text)
    except ValueError:
        raise InvalidPublicKey("public key is not unpadded base64url") from None
    if len(raw) != P256_POINT_LENGTH or raw[0] != 0x04:
        raise InvalidPublicKey("public key must be a 65-byte uncompressed P-256 point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise InvalidPublicKey("public key is not a point on P-256") from None


def sign_p256(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """ECDSA P-256 / SHA-256 signature as 64 bytes ``r || s``."""
    r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_p256(public_key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    """True if ``signature`` (64 bytes ``r || s``) is valid for ``message``."""
    if len(signature) != SIGNATURE_LENGTH:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# -- encryption keys (HPKE) ------------------------------------------------------------------

HpkePublicKey = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
HpkePrivateKey = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


def hpke_suite(suite: str) -> hpke.Suite:
    """The HPKE suite (KEM, HKDF-SHA256, AES-256-GCM) named ``suite``."""
    if suite == "x25519":
        kem = hpke.KEM.X25519
    elif suite == "mlkem768x25519":
        kem = hpke.KEM.MLKEM768_X25519
    else:
        raise ValueError(f"unknown suite {suite!r}")
    return hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def encapsulated_key_length(suite: str) -> int:
    """Length of the HPKE ``enc`` that starts a ciphertext of ``suite``."""
    return {"x25519": 32, "mlkem768x25519": 1088 + 32}[suite]


def _key_id(suite: str, public_raw: bytes) -> str:
    return "k1-" + hashlib.sha256(suite.encode() + b"\x00" + public_raw).hexdigest()[:8]


@dataclass(frozen=True)
class PublicKeyInfo:
    """A server encryption public key as a device holds it; equal when ``raw`` bytes are."""

    key_id: str
    suite: Suite
    public_key: HpkePublicKey = field(compare=False, repr=False)
    raw: bytes = field(repr=False)

    @classmethod
    def from_raw(cls, key_id: str, suite: str, raw: bytes) -> PublicKeyInfo:
        """Rebuild from the raw bytes (see module docstring); :class:`InvalidPublicKey` if bad."""
        try:
            if suite == "x25519" and len(raw) == X25519_LENGTH:
                public: HpkePublicKey = x25519.X25519PublicKey.from_public_bytes(raw)
            elif suite == "mlkem768x25519" and len(raw) == MLKEM768_PUBLIC_LENGTH + X25519_LENGTH:
                public = hpke.MLKEM768X25519PublicKey(
                    mlkem.MLKEM768PublicKey.from_public_bytes(raw[:MLKEM768_PUBLIC_LENGTH]),
                    x25519.X25519PublicKey.from_public_bytes(raw[MLKEM768_PUBLIC_LENGTH:]),
                )
            else:
                raise ValueError(f"not a {suite} public key")
        except ValueError as exc:
            raise InvalidPublicKey(f"invalid encryption public key: {exc}") from None
        if not isinstance(key_id, str) or not 1 <= len(key_id) <= 64:
            raise InvalidPublicKey("key id must be a string of 1 to 64 characters")
        return cls(key_id, cast(Suite, suite), public, raw)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> PublicKeyInfo:
        """Inverse of :meth:`to_wire`."""
        try:
            raw = b64url_decode(data["public_key"])
            return cls.from_raw(data["key_id"], data["suite"], raw)
        except (KeyError, TypeError, ValueError):
            raise InvalidPublicKey("expected {key_id, suite, public_key (base64url)}") from None

    def to_wire(self) -> dict[str, str]:
        return {"key_id": self.key_id, "suite": self.suite, "public_key": b64url_encode(self.raw)}


@dataclass(frozen=True)
class EncryptionKey:
    """A server encryption private key with its id and suite."""

    key_id: str
    suite: Suite
    created_at: str
    x25519_private: x25519.X25519PrivateKey = field(repr=False)
    mlkem_private: mlkem.MLKEM768PrivateKey | None = field(default=None, repr=False)

    @property
    def hpke_private_key(self) -> HpkePrivateKey:
        if self.mlkem_private is None:
            return self.x25519_private
        return hpke.MLKEM768X25519PrivateKey(self.mlkem_private, self.x25519_private)

    def public_info(self) -> PublicKeyInfo:
        raw = self.x25519_private.public_key().public_bytes_raw()
        if self.mlkem_private is not None:
            raw = self.mlkem_private.public_key().public_bytes_raw() + raw
        return PublicKeyInfo.from_raw(self.key_id, self.suite, raw)

    def _to_json(self) -> dict[str, Any]:
        private = {"x25519": b64url_encode(self.x25519_private.private_bytes_raw())}
        if self.mlkem_private is not None:
            private["mlkem768_seed"] = b64url_encode(self.mlkem_private.private_bytes_raw())
        return {
            "key_id": self.key_id,
            "suite": self.suite,
            "created_at": self.created_at,
            "private_key": private,
        }

    @classmethod
    def _from_json(cls, data: Mapping[str, Any]) -> EncryptionKey:
        suite = data["suite"]
        if suite not in SUITES:
            raise ValueError(f"unknown suite {suite!r}")
        private = data["private_key"]
        mlkem_private = None
        if suite == "mlkem768x25519":
            mlkem_private = mlkem.MLKEM768PrivateKey.from_seed_bytes(
                b64url_decode(private["mlkem768_seed"])
            )
        key = cls(
            key_id=data["key_id"],
            suite=suite,
            created_at=data["created_at"],
            x25519_private=x25519.X25519PrivateKey.from_private_bytes(
                b64url_decode(private["x25519"])
            ),
            mlkem_private=mlkem_private,
        )
        if key.key_id != _key_id(suite, key.public_info().raw):
            raise ValueError(f"key id {key.key_id} does not match its key")
        return key


def generate_encryption_key(suite: Suite = DEFAULT_SUITE) -> EncryptionKey:
    """A new encryption key pair of ``suite``; its id is derived from the public key."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
    x_private = x25519.X25519PrivateKey.generate()
    m_private = mlkem.MLKEM768PrivateKey.generate() if suite == "mlkem768x25519" else None
    raw = x_private.public_key().public_bytes_raw()
    if m_private is not None:
        raw = m_private.public_key().public_bytes_raw() + raw
    return EncryptionKey(_key_id(suite, raw), suite, _utcnow(), x_private, m_private)


def _utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- key ring ----------------------------------------------------------------------------------


class KeyRing:
    """The server's private keys: encryption keys by id (one current per suite) and the
    receipt-signing key. Build with :meth:`generate` or :meth:`load`; keep one per app
    (``app.extensions``), not in module state.
    """

    def __init__(
        self,
        *,
        keys: Mapping[str, EncryptionKey],
        current: Mapping[str, str],
        retired: Mapping[str, Mapping[str, str]],
        receipt_key: ec.EllipticCurvePrivateKey,
    ) -> None:
        self._keys = dict(keys)
        self._current = dict(current)
        self._retired = {key_id: dict(meta) for key_id, meta in retired.items()}
        self._receipt_key = receipt_key
        for suite, key_id in self._current.items():
            if key_id not in self._keys or self._keys[key_id].suite != suite:
                raise KeyringError(f"current {suite} key {key_id} is not in the key ring")

    @classmethod
    def generate(cls, *, suites: tuple[Suite, ...] = SUITES) -> KeyRing:
        """A new ring with one current key for each of ``suites`` and a new receipt key."""
        keys = [generate_encryption_key(suite) for suite in suites]
        return cls(
            keys={key.key_id: key for key in keys},
            current={key.suite: key.key_id for key in keys},
            retired={},
            receipt_key=generate_signing_key(),
        )

    # - use -

    @property
    def receipt_signing_key(self) -> ec.EllipticCurvePrivateKey:
        return self._receipt_key

    def receipt_public_key(self) -> str:
        """The receipt-verification key for devices (base64url, as device keys)."""
        return encode_signing_public_key(self._receipt_key.public_key())

    def key_ids(self) -> list[str]:
        """Ids of the keys that can still decrypt, oldest first."""
        return sorted(self._keys, key=lambda key_id: (self._keys[key_id].created_at, key_id))

    def current_key(self, suite: Suite = DEFAULT_SUITE) -> PublicKeyInfo:
        """The key that devices enrolled with ``suite`` encrypt to now."""
        try:
            return self._keys[self._current[suite]].public_info()
        except KeyError:
            raise KeyringError(f"the key ring has no current {suite} key") from None

    def current_public_keys(self) -> list[dict[str, str]]:
        """``[{key_id, suite, public_key}]``, one per suite, for the wire."""
        return [self.current_key(cast(Suite, suite)).to_wire() for suite in sorted(self._current)]

    def private_key(self, key_id: str) -> EncryptionKey:
        """The private key ``key_id``; :class:`KeyError` if unknown or retired."""
        return self._keys[key_id]

    def is_retired(self, key_id: str) -> bool:
        return key_id in self._retired

    # - change -

    def rotate(self, suite: Suite = DEFAULT_SUITE) -> str:
        """Make a new current key for ``suite``; older keys stay for decryption. Returns its id."""
        key = generate_encryption_key(suite)
        if key.key_id in self._keys or key.key_id in self._retired:  # 32-bit id collision
            return self.rotate(suite)
        self._keys[key.key_id] = key
        self._current[suite] = key.key_id
        return key.key_id

    def retire(self, key_id: str) -> None:
        """Destroy the private key ``key_id``: envelopes sealed to it can no longer be opened.

        The current key of a suite cannot be retired (rotate first).
        """
        if key_id not in self._keys:
            state = "already retired" if key_id in self._retired else "not in the key ring"
            raise KeyringError(f"key {key_id} is {state}")
        if key_id in self._current.values():
            raise KeyringError(f"key {key_id} is current; rotate before retiring it")
        key = self._keys.pop(key_id)
        self._retired[key_id] = {
            "suite": key.suite,
            "created_at": key.created_at,
            "retired_at": _utcnow(),
        }

    # - file -

    def save(self, path: str | os.PathLike[str], passphrase: str | None = None) -> None:
        """Write the ring to ``path`` atomically, mode 0600; encrypted if ``passphrase``."""
        secret = canonical_json(self._secret_json())
        document: dict[str, Any] = {"format": KEYRING_FORMAT, "version": KEYRING_VERSION}
        if passphrase is None:
            document["protection"] = "none"
            document["keys"] = json.loads(secret)
        else:
            salt = secrets.token_bytes(16)
            nonce = secrets.token_bytes(12)
            document["protection"] = "scrypt-aes256gcm"
            document["scrypt"] = {
                "salt": b64url_encode(salt),
                "n": SCRYPT_N,
                "r": SCRYPT_R,
                "p": SCRYPT_P,
            }
            document["nonce"] = b64url_encode(nonce)
            key = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
            document["keys"] = b64url_encode(
                AESGCM(key).encrypt(nonce, secret, canonical_json(document))
            )
        _write_private_file(Path(path), json.dumps(document, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str], passphrase: str | None = None) -> KeyRing:
        """Read a file written by :meth:`save`.

        Raises :class:`KeyringPassphraseError` if the file is encrypted and ``passphrase`` is
        missing or wrong (or the file was altered), and :class:`KeyringError` if the file cannot
        be read or is not a key ring.
        """
        path = Path(path)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KeyringError(f"cannot read key ring {path}: {exc.strerror}") from None
        except ValueError:
            raise KeyringError(f"key ring {path} is not valid JSON") from None
        if (
            not isinstance(document, dict)
            or document.get("format") != KEYRING_FORMAT
            or document.get("version") != KEYRING_VERSION
        ):
            raise KeyringError(f"{path} is not a version {KEYRING_VERSION} FieldSync key ring")
        protection = document.get("protection")
        try:
            if protection == "none":
                if passphrase is not None:
                    raise KeyringPassphraseError(
                        f"key ring {path} is not passphrase-protected but a passphrase was "
                        "given; save it again with the passphrase to protect it"
                    )
                secret = document["keys"]
            elif protection == "scrypt-aes256gcm":
                if passphrase is None:
                    raise KeyringPassphraseError(
                        f"key ring {path} is passphrase-protected; set FIELDSYNC_KEY_PASSPHRASE"
                    )
                secret = _decrypt_document(document, passphrase, path)
            else:
                raise KeyringError(f"key ring {path}: unknown protection {protection!r}")
            return cls._from_secret_json(secret)
        except KeyringError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise KeyringError(f"key ring {path} is damaged: {exc}") from None

    def _secret_json(self) -> dict[str, Any]:
        scalar = self._receipt_key.private_numbers().private_value.to_bytes(32, "big")
        return {
            "current": dict(self._current),
            "encryption_keys": [self._keys[key_id]._to_json() for key_id in self.key_ids()],
            "retired": {key_id: dict(meta) for key_id, meta in self._retired.items()},
            "receipt_key": {"algorithm": "ecdsa-p256-sha256", "private_key": b64url_encode(scalar)},
        }

    @classmethod
    def _from_secret_json(cls, data: Mapping[str, Any]) -> KeyRing:
        receipt = data["receipt_key"]
        if receipt["algorithm"] != "ecdsa-p256-sha256":
            raise ValueError(f"unknown receipt key algorithm {receipt['algorithm']!r}")
        scalar = b64url_decode(receipt["private_key"])
        if len(scalar) != P256_SCALAR_LENGTH:
            raise ValueError("receipt key must be a 32-byte P-256 scalar")
        keys = [EncryptionKey._from_json(item) for item in data["encryption_keys"]]
        return cls(
            keys={key.key_id: key for key in keys},
            current=dict(data["current"]),
            retired=dict(data["retired"]),
            receipt_key=ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1()),
        )


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _decrypt_document(document: dict[str, Any], passphrase: str, path: Path) -> Any:
    params = document["scrypt"]
    n, r, p = params["n"], params["r"], params["p"]
    if not all(type(v) is int for v in (n, r, p)) or not (2 <= n <= SCRYPT_MAX_N and r <= 32):
        raise ValueError("scrypt parameters out of range")
    salt = b64url_decode(params["salt"])
    nonce = b64url_decode(document["nonce"])
    ciphertext = b64url_decode(document["keys"])
    associated = canonical_json({k: v for k, v in document.items() if k != "keys"})
    try:
        secret = AESGCM(_derive(passphrase, salt, n, r, p)).decrypt(nonce, ciphertext, associated)
    except InvalidTag:
        raise KeyringPassphraseError(
            f"wrong passphrase for key ring {path} (or the file has been altered)"
        ) from None
    return json.loads(secret)


def _write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, fsync, rename), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
