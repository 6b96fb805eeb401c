"""Bulk seeding of large case stores, through the server's own pieces but not its HTTP path.

Cases are opened by realistic intake answers validated by the form engine, merged with
:func:`fieldsync.core.merge.merge` and written as ``case_events`` and ``cases`` rows exactly as
:class:`~fieldsync.services.casestore.CaseWriter` would write them (same columns, same state),
but thousands per statement. Later changes go through ``CaseWriter`` itself, in large
transactions. Only HTTP requests are timed by the scenarios.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert

from bench import answers as gen
from bench.stores import Store
from bench.workload import _uuid

CHUNK = 2000
SEED_DEVICE = "bench-seed"


@dataclass
class Seeded:
    """Bookkeeping of a seeded store: which cases belong to whom."""

    officers: list[str] = field(default_factory=list)
    owner: dict[str, str] = field(default_factory=dict)  # case id -> officer
    focus_cases: list[str] = field(default_factory=list)
    other_cases: list[str] = field(default_factory=list)
    used_numbers: set[str] = field(default_factory=set)


def create_officers(store: Store, count: int, focus: str) -> list[str]:
    from fieldsync.extensions import db
    from fieldsync.models import Service, User

    names = [f"officer.{i:04d}" for i in range(count)]
    with store.app.app_context():
        service = Service(code="SV01", name="Serviciul de probațiune SV01")
        db.session.add(service)
        db.session.add_all([User(username=u, role="officer", display_name=u, service=service)
                            for u in [focus, *names]])
        db.session.commit()
    return names


def intake_templates(rng: random.Random, count: int = 300) -> list[list[dict[str, Any]]]:
    """Validated intake operations to draw cases from."""
    from fieldsync.core.forms import load_library, validate

    form = load_library(gen.FORMS_DIR)[("case_intake", 1)]
    out = []
    for _ in range(count):
        answers, _ = gen.intake(rng, None)
        result = validate(form, answers)
        assert result.ok, result.errors
        out.append(list(result.operations))
    return out


def update_templates(rng: random.Random, count: int = 100) -> list[list[dict[str, Any]]]:
    from fieldsync.core.forms import load_library, validate

    form = load_library(gen.FORMS_DIR)[("home_visit", 1)]
    out = []
    for _ in range(count):
        result = validate(form, gen.home_visit(rng))
        assert result.ok, result.errors
        out.append(list(result.operations))
    return out


def _event_id(rng: random.Random, used: set[str]) -> str:
    """A submission id whose case number (first 8 hex digits) is still free."""
    while True:
        value = _uuid(rng)
        if value[:8] not in used:
            used.add(value[:8])
            return value


def seed_cases(store: Store, seeded: Seeded, count: int, *, focus: str, focus_count: int,
               rng: random.Random) -> None:
    """Add ``count`` intake-only cases; the first ``focus_count`` belong to ``focus``."""
    from fieldsync.core.hlc import Timestamp, format_timestamp, wall_clock_millis
    from fieldsync.core.merge import Event, merge
    from fieldsync.extensions import db
    from fieldsync.models import User, utcnow
    from fieldsync.services import sequence
    from fieldsync.services.caseload import officer_view
    from fieldsync.services.casestore import columns_of
    from fieldsync.services.ingest import owner_operations

    templates = intake_templates(rng)
    with store.app.app_context():
        users = {u.username: u for u in db.session.scalars(db.select(User))}
        first = sequence.next_value("sync", count)
        db.session.commit()
        millis = wall_clock_millis()
        events_rows: list[dict[str, Any]] = []
        case_rows: list[dict[str, Any]] = []
        # Spread the focus officer's cases over the whole sequence range.
        focus_at = set(range(0, count, max(1, count // focus_count))[:focus_count]) \
            if focus_count else set()
        for i in range(count):
            officer = focus if i in focus_at else rng.choice(seeded.officers)
            user = users[officer]
            event_id = _event_id(rng, seeded.used_numbers)
            case_id = str(uuid.uuid4())
            hlc = format_timestamp(Timestamp(millis, i % 999_999, SEED_DEVICE))
            ops = [*rng.choice(templates), *owner_operations(user, event_id)]
            seq = first + i
            state = merge([Event(id=event_id, case_id=case_id, parents=frozenset(), hlc=hlc,
                                 device_id=SEED_DEVICE, user_id=officer, actor="device",
                                 ops=tuple(ops))], case_id=case_id).to_dict()
            now = utcnow()
            events_rows.append(dict(
                id=event_id, case_id=case_id, seq=seq, parents=[], base_revision=0, hlc=hlc,
                device_id=SEED_DEVICE, user_id=officer, actor="device", form_id="case_intake",
                form_version=1, ops=ops, recorded_at=now))
            columns = columns_of(state)
            view, view_hlc = officer_view(case_id, columns, state, seq)
            case_rows.append(dict(id=case_id, state=state, change_seq=seq, created_at=now,
                                  updated_at=now, officer_view=view, officer_view_hlc=view_hlc,
                                  **columns))
            seeded.owner[case_id] = officer
            (seeded.focus_cases if officer == focus else seeded.other_cases).append(case_id)
            if len(case_rows) >= CHUNK:
                _write(events_rows, case_rows)
        _write(events_rows, case_rows)
        db.session.commit()
        db.session.remove()


def _write(events_rows: list[dict[str, Any]], case_rows: list[dict[str, Any]]) -> None:
    from fieldsync.extensions import db
    from fieldsync.models import Case, CaseEvent

    if case_rows:
        db.session.execute(insert(CaseEvent), events_rows)
        db.session.execute(insert(Case), case_rows)
        db.session.commit()
    events_rows.clear()
    case_rows.clear()


def apply_changes(store: Store, seeded: Seeded, in_scope: int, out_of_scope: int,
                  rng: random.Random) -> None:
    """``in_scope`` home visits on distinct cases of the focus officer and ``out_of_scope`` on
    other cases, interleaved, through the case store (``CaseWriter``) in large transactions."""
    from fieldsync.core.hlc import HLC
    from fieldsync.extensions import db
    from fieldsync.models import Case, User
    from fieldsync.services.casestore import CaseWriter, Incoming

    templates = update_templates(rng)
    targets = [(c, True) for c in rng.sample(seeded.focus_cases, in_scope)]
    targets += [(c, False) for c in rng.sample(seeded.other_cases, out_of_scope)]
    rng.shuffle(targets)
    clock = HLC(SEED_DEVICE)
    with store.app.app_context():
        users = {u.username: u for u in db.session.scalars(db.select(User))}
        for start in range(0, len(targets), 500):
            writer = CaseWriter()
            for case_id, _ in targets[start:start + 500]:
                case = db.session.get(Case, case_id)
                assert case is not None
                writer.stage(Incoming(
                    id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), case_id=case_id,
                    parents=list(case.state["heads"]), base_revision=case.revision,
                    hlc=str(clock.now()), device_id=SEED_DEVICE,
                    user=users[seeded.owner[case_id]], actor="device",
                    ops=list(rng.choice(templates)), creates=False, form_id="home_visit",
                    form_version=1))
            writer.flush()
            db.session.commit()
        db.session.remove()
