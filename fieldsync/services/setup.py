"""``fieldsync init``: create or upgrade the schema, publish the form library, load demo data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask

from fieldsync import database
from fieldsync.extensions import db


@dataclass
class InitReport:
    schema_before: str | None
    schema_after: str | None
    lines: list[str] = field(default_factory=list)
    demo_credentials: dict = field(default_factory=dict)


# Steps other modules contribute to ``init`` (form library, key ring, demo cases), in order.
# Each gets the app and the report, and returns lines to print.
InitStep = Callable[[Flask, InitReport, bool], list[str]]


def init_steps() -> list[InitStep]:
    from fieldsync.services import init_steps as steps

    return steps.STEPS


def is_new(app: Flask) -> bool:
    with app.app_context():
        database.ping(db.engine)
        return database.current_revision(db.engine) is None


def initialise(app: Flask, *, demo: bool = False) -> InitReport:
    with app.app_context():
        database.ping(db.engine)
        before, after = database.upgrade(db.engine)
        report = InitReport(before, after)
        if before == after:
            report.lines.append(f"schema is current ({after})")
        else:
            report.lines.append(f"schema upgraded from {before or 'empty'} to {after}")
        for step in init_steps():
            report.lines.extend(step(app, report, demo))
        return report
