"""Authentication: staff bearer tokens (after a password login) and device tokens.

Tokens are 256-bit random strings; only their SHA-256 is stored, so a database leak does not
leak usable tokens. A revoked device or expired staff token stops working on the next request.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from fieldsync.errors import AuthenticationRequired, DeviceRevoked, Forbidden
from fieldsync.extensions import db
from fieldsync.models import Device, StaffToken, User, utcnow
from fieldsync.services.passwords import verify_password

STAFF_ROLES = ("reviewer", "admin")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(username: str, password: str, ttl_seconds: int) -> tuple[str, User]:
    """Exchange a staff user's password for a bearer token."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not verify_password(user.password_hash, password):
        raise AuthenticationRequired("unknown user name or wrong password")
    if user.role not in STAFF_ROLES:
        raise Forbidden(f"role {user.role!r} has no staff API access; tablets enrol instead")
    token = new_token()
    db.session.add(StaffToken(
        user=user, token_hash=token_hash(token),
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
    ))
    db.session.commit()
    return token, user


def logout(token: str) -> None:
    row = db.session.scalar(select(StaffToken).where(StaffToken.token_hash == token_hash(token)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.commit()


def staff_for_token(token: str, roles: tuple[str, ...] = STAFF_ROLES) -> User:
    row = db.session.scalar(select(StaffToken).where(StaffToken.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        raise AuthenticationRequired("the staff token is unknown, expired or revoked; log in again")
    user = row.user
    if not user.active:
        raise AuthenticationRequired("this account is disabled")
    if user.role not in roles:
        raise Forbidden(f"this needs one of the roles {', '.join(roles)}; you are {user.role}")
    return user


# Built once: every device request runs it (building it costs more than running it).
_DEVICE_BY_TOKEN = (select(Device).where(Device.token_hash == bindparam("hash"))
                    .options(joinedload(Device.user).joinedload(User.service),
                             joinedload(Device.user).joinedload(User.site)))


def device_for_token(token: str, *, allow_revoked: bool = False) -> Device:
    """The device a token belongs to. ``allow_revoked`` is for push only: a revoked device's
    envelopes are quarantined there, never applied."""
    device = db.session.scalar(_DEVICE_BY_TOKEN, {"hash": token_hash(token)})
    if device is None:
        raise AuthenticationRequired("unknown device token; enrol the device again",
                                     reason="unknown_device")
    if device.revoked_at is not None and not allow_revoked:
        raise DeviceRevoked(f"device {device.id} was revoked at {device.revoked_at.isoformat()}")
    if not device.user.active:
        raise Forbidden("the device's user account is disabled")
    return device
