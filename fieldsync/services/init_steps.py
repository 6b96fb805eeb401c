"""The ordered steps of ``fieldsync init`` after the schema migration."""

from __future__ import annotations

from flask import Flask

from fieldsync.services import demo, keyring
from fieldsync.services import forms as forms_service
from fieldsync.services.setup import InitReport, InitStep


def ensure_keyring(app: Flask, report: InitReport, want_demo: bool) -> list[str]:
    ring, created = keyring.ensure(app)
    path = keyring.path_for(app)
    if created:
        return [f"key ring created at {path} (keys {', '.join(ring.key_ids())})"]
    return [f"key ring loaded from {path}"]


def publish_forms(app: Flask, report: InitReport, want_demo: bool) -> list[str]:
    return forms_service.publish_library(app.config["FORMS_DIR"])


def load_demo(app: Flask, report: InitReport, want_demo: bool) -> list[str]:
    if not want_demo:
        return []
    already = demo.is_loaded()
    report.demo_credentials = demo.load(app.config["DATA_DIR"])
    cases = demo.load_cases()
    if already and not cases:
        return ["demo data already present"]
    return [f"demo data loaded ({len(demo.USERS)} users, {cases} cases)"]


STEPS: list[InitStep] = [ensure_keyring, publish_forms, load_demo]
