"""The ordered steps of ``fieldsync init`` after the schema migration."""

from __future__ import annotations

from flask import Flask

from fieldsync.services import demo
from fieldsync.services.setup import InitReport, InitStep


def load_demo(app: Flask, report: InitReport, want_demo: bool) -> list[str]:
    if not want_demo:
        return []
    already = demo.is_loaded()
    report.demo_credentials = demo.load(app.config["DATA_DIR"])
    return ["demo data already present" if already else "demo data loaded"]


STEPS: list[InitStep] = [load_demo]
