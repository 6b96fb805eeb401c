"""Device enrolment with one-time codes, and revocation."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from fieldsync.core.keys import SUITES, InvalidPublicKey, decode_signing_public_key
from fieldsync.errors import AuthenticationRequired, InvalidInput, NotFound, StateConflict
from fieldsync.extensions import db
from fieldsync.models import Device, EnrolmentCode, User, utcnow
from fieldsync.services import auth
from fieldsync.services.users import get_user

DEVICE_ROLES = ("officer", "supervisor")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed by hand
CODE_LENGTH = 16  # 80 bits


@dataclass(frozen=True)
class IssuedCode:
    code: str
    user: User
    expires_at: datetime


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def code_hash(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


def format_code(raw: str) -> str:
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def issue_code(username: str, ttl_seconds: int) -> IssuedCode:
    """A one-time enrolment code for an officer's or supervisor's tablet."""
    if ttl_seconds <= 0:
        raise InvalidInput("the code lifetime must be positive")
    user = get_user(username)
    if user.role not in DEVICE_ROLES:
        raise InvalidInput(f"user {username!r} is a {user.role}; only officers and supervisors "
                           "enrol tablets")
    if not user.active:
        raise StateConflict(f"user {username!r} is disabled")
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    expires_at = utcnow() + timedelta(seconds=ttl_seconds)
    db.session.add(EnrolmentCode(code_hash=code_hash(raw), user=user, expires_at=expires_at))
    db.session.commit()
    return IssuedCode(format_code(raw), user, expires_at)


@dataclass(frozen=True)
class Enrolment:
    device: Device
    token: str


def enrol(code: str, public_key: str, *, suite: str, label: str = "") -> Enrolment:
    """Redeem an enrolment code: register the device key, issue a device token."""
    try:
        decode_signing_public_key(public_key)
    except InvalidPublicKey as exc:
        raise InvalidInput(f"public_key is not an ECDSA P-256 public key: {exc.detail}",
                           errors={"public_key": [exc.detail]}) from exc
    if suite not in SUITES:
        raise InvalidInput(f"unknown suite {suite!r}: choose one of {', '.join(SUITES)}",
                           errors={"suite": ["unknown suite"]})
    row = db.session.scalar(
        select(EnrolmentCode).where(EnrolmentCode.code_hash == code_hash(code)).with_for_update()
    )
    now = utcnow()
    if row is None:
        raise AuthenticationRequired("unknown enrolment code", reason="unknown_code")
    if row.used_at is not None:
        raise AuthenticationRequired("this enrolment code has already been used",
                                     reason="code_used")
    if row.expires_at <= now:
        raise AuthenticationRequired("this enrolment code has expired", reason="code_expired")
    token = auth.new_token()
    device = Device(
        id=str(uuid.uuid4()), user=row.user, public_key=public_key,
        token_hash=auth.token_hash(token), suite=suite, label=label[:200],
    )
    db.session.add(device)
    row.used_at = now
    row.device_id = device.id
    db.session.commit()
    return Enrolment(device, token)


def list_devices() -> list[Device]:
    return list(db.session.scalars(select(Device).order_by(Device.enrolled_at)))


def revoke(device_id: str) -> Device:
    device = db.session.get(Device, device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}")
    if device.revoked_at is not None:
        raise StateConflict(f"device {device_id} was already revoked at "
                            f"{device.revoked_at.isoformat()}")
    device.revoked_at = utcnow()
    db.session.commit()
    return device


def describe(device: Device) -> dict[str, Any]:
    return {
        "device_id": device.id,
        "user": device.user.username,
        "role": device.user.role,
        "label": device.label,
        "suite": device.suite,
        "enrolled_at": device.enrolled_at.isoformat(),
        "last_seen_at": device.last_seen_at.isoformat() if device.last_seen_at else None,
        "revoked_at": device.revoked_at.isoformat() if device.revoked_at else None,
    }
