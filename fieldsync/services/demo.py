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

# (officer, full name, national id, address, locality, measure, years, work days, site)
CASES = [
    ("ion.popescu", "Andrei Munteanu", "1900215080011", "Str. Republicii 12", "Brașov",
     "suspended_sentence", 3, 90, "BV-PARC"),
    ("ion.popescu", "Florin Dragomir", "1870730080022", "Bd. Eroilor 5, ap. 3", "Brașov",
     "suspended_sentence", 2, 60, "BV-PARC"),
    ("ion.popescu", "Cristina Vlad", "2950101080033", "Str. Lungă 101", "Codlea",
     "deferral", 2, 0, None),
    ("maria.ionescu", "Mihai Pop", "1820505120044", "Str. Horea 8", "Cluj-Napoca",
     "suspended_sentence", 4, 120, "CJ-BIBL"),
    ("maria.ionescu", "Ioana Rus", "2990909120055", "Calea Turzii 40", "Cluj-Napoca",
     "deferral", 2, 45, None),
]


def is_loaded() -> bool:
    return bool(db.session.scalar(select(func.count()).select_from(User)))


def load(data_dir: str) -> dict[str, Any]:
    """Create the demo organisation and users; write their passwords to a 0600 file."""
    if db.session.scalar(select(func.count()).select_from(Service)):
        return read_credentials(data_dir)
    for code, name in SERVICES:
        users_service.add_service(code, name)
    for code, name, site_service in SITES:
        users_service.add_site(code, name, site_service)
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


def load_cases() -> int:
    """Open the demo cases through the case store, as intake forms filled by the officers."""
    import uuid

    from fieldsync.core.forms.engine import validate
    from fieldsync.core.hlc import Timestamp, format_timestamp, wall_clock_millis
    from fieldsync.models import Case
    from fieldsync.services import forms as forms_service
    from fieldsync.services.casestore import CaseWriter, Incoming
    from fieldsync.services.ingest import owner_operations
    from fieldsync.services.users import get_user

    if db.session.scalar(select(func.count()).select_from(Case)):
        return 0
    form = forms_service.compiled("case_intake", 1)
    if form is None:
        return 0
    writer = CaseWriter()
    namespace = uuid.UUID("5f6d1c0e-7a43-4f55-9a55-2d1b5c9e0a11")
    for n, (officer, name, cnp, address, locality, measure, years, days, site) in enumerate(
            CASES):
        answers = {
            "full_name": name, "national_id": cnp, "birth_date": "19" + cnp[1:3] + "-"
            + cnp[3:5] + "-" + cnp[5:7], "address": address, "locality": locality,
            "court": f"Judecătoria {locality}", "decision_number": f"{100 + n}/2026",
            "decision_final_date": "2026-03-02", "measure": measure, "term_years": years,
            "standard_obligations_explained": True, "obligations": ["course"],
            "community_work_days": days, "first_appointment": "2026-12-01T10:00:00+02:00",
        }
        if site:
            answers["work_site"] = site
        result = validate(form, answers, settings=forms_service.form_settings())
        if not result.ok:
            raise ValueError(f"demo case {name} does not validate: {result.errors}")
        user = get_user(officer)
        event_id = str(uuid.uuid5(namespace, name))
        writer.stage(Incoming(
            id=event_id, case_id=str(uuid.uuid5(namespace, "case:" + name)), parents=[],
            base_revision=0, hlc=format_timestamp(Timestamp(wall_clock_millis(), n, "demo")),
            device_id="demo-seed", user=user, actor="device",
            ops=[*result.operations, *owner_operations(user, event_id)], creates=True,
            form_id=form.form_id, form_version=form.version,
        ))
    writer.flush()
    db.session.commit()
    return len(CASES)


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
