"""Users, their roles and where they belong."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from fieldsync.errors import AlreadyExists, InvalidInput, NotFound
from fieldsync.extensions import db
from fieldsync.models import ROLES, Service, Site, User
from fieldsync.services.passwords import hash_password

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 12


@dataclass(frozen=True)
class NewUser:
    user: User
    password: str | None


def add_user(
    username: str,
    role: str,
    *,
    service: str | None = None,
    site: str | None = None,
    display_name: str = "",
    password: str | None = None,
    generate_password: bool = False,
) -> NewUser:
    """Create a user. Officers need a service, supervisors a site; staff may have a service."""
    if not USERNAME.match(username):
        raise InvalidInput(
            f"invalid user name {username!r}: use 2-64 lower-case letters, digits, '.', '_' or '-'"
        )
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    if db.session.scalar(select(User).where(User.username == username)) is not None:
        raise AlreadyExists(f"user {username!r} already exists")
    service_row = find_service(service) if service else None
    site_row = find_site(site) if site else None
    if role == "officer" and service_row is None:
        raise InvalidInput("an officer needs a probation service: pass --service CODE")
    if role == "supervisor" and site_row is None:
        raise InvalidInput("a supervisor needs a community-work site: pass --site CODE")
    if site_row is not None and service_row is None:
        service_row = site_row.service
    if password is None and generate_password:
        password = secrets.token_urlsafe(12)
    if password is not None and len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password too short: at least {MIN_PASSWORD} characters")
    user = User(
        username=username,
        role=role,
        display_name=display_name or username,
        service=service_row,
        site=site_row,
        password_hash=hash_password(password) if password else None,
    )
    db.session.add(user)
    db.session.commit()
    return NewUser(user, password)


def set_password(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password too short: at least {MIN_PASSWORD} characters")
    user = get_user(username)
    user.password_hash = hash_password(password)
    db.session.commit()


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.username)))


def get_user(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def find_service(code: str) -> Service:
    service = db.session.scalar(select(Service).where(Service.code == code))
    if service is None:
        raise NotFound(f"no probation service with code {code!r}")
    return service


def find_site(code: str) -> Site:
    site = db.session.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise NotFound(f"no community-work site with code {code!r}")
    return site


def add_service(code: str, name: str) -> Service:
    if db.session.scalar(select(Service).where(Service.code == code)) is not None:
        raise AlreadyExists(f"service {code!r} already exists")
    service = Service(code=code, name=name)
    db.session.add(service)
    db.session.commit()
    return service


def add_site(code: str, name: str, service: str) -> Site:
    if db.session.scalar(select(Site).where(Site.code == code)) is not None:
        raise AlreadyExists(f"site {code!r} already exists")
    site = Site(code=code, name=name, service=find_service(service))
    db.session.add(site)
    db.session.commit()
    return site
