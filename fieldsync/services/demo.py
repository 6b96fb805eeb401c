"""The demo data set: a few services, sites and users so a new user sees a living system."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from fieldsync.extensions import db
from fieldsync.models import Service, User
from fieldsync.services import users as users_service

SERVICES = [
    ("HQ", "Direcția Națională de Probațiune (headquarters)"),
    ("BV", "Serviciul de Probațiune Brașov"),
    ("CJ", "Serviciul de Probațiune Cluj"),
    ("IS", "Serviciul de Probațiune Iași"),
]
SITES = [
    ("BV-PARC", "Primăria Brașov: parcuri și spații verzi", "BV"),
    ("CJ-BIBL", "Biblioteca Județeană Cluj", "CJ"),
    ("IS-CANT", "Cantina socială Iași", "IS"),
]
USERS = [
    ("admin", "admin", "HQ", None, "Administrator"),
    ("ana.review", "reviewer", "HQ", None, "Ana Marin"),
    ("ion.popescu", "officer", "BV", None, "Ion Popescu"),
    ("maria.ionescu", "officer", "CJ", None, "Maria Ionescu"),
    ("dan.parc", "supervisor", None, "BV-PARC", "Dan Stoica"),
]
CREDENTIALS_FILE = "demo-credentials.json"


def is_loaded() -> bool:
    return bool(db.session.scalar(select(func.count()).select_from(User)))


def load(data_dir: str) -> dict[str, Any]:
    """Create the demo organisation and users; write their passwords to a 0600 file."""
    if db.session.scalar(select(func.count()).select_from(Service)):
        return read_credentials(data_dir)
    for code, name in SERVICES:
        users_service.add_service(code, name)
    for code, name, service in SITES:
        users_service.add_site(code, name, service)
    credentials: dict[str, Any] = {}
    for username, role, service, site, display in USERS:
        created = users_service.add_user(
            username, role, service=service, site=site, display_name=display,
            generate_password=role in ("admin", "reviewer"),
        )
        if created.password:
            credentials[username] = {"role": role, "password": created.password}
    write_credentials(data_dir, credentials)
    return credentials


def write_credentials(data_dir: str, credentials: dict[str, Any]) -> None:
    path = Path(data_dir) / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(credentials, handle, indent=2)


def read_credentials(data_dir: str) -> dict[str, Any]:
    path = Path(data_dir) / CREDENTIALS_FILE
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text()))
