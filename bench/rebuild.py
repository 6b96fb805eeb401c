"""Scenario 3, rebuild: re-derive every case from the event log and compare with the view.

Times :func:`fieldsync.services.casestore.rebuild` (what ``fieldsync cases rebuild`` runs) over
a store of ``--rebuild-cases`` cases. Under ``all`` the store is the one the ingest scenario just
filled through HTTP; alone, the ingest workload's submissions are validated and written in bulk
(the same events, without the envelopes).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

from bench.answers import FORMS_DIR
from bench.figures import Report, log
from bench.stores import Store
from bench.workload import build_org, build_plan


def seed_from_plan(store: Store, n_cases: int, n: int, devices: int, seed: int) -> int:
    """Write the ingest workload (without crypto) as events and merged cases; returns cases."""
    from sqlalchemy import insert

    from fieldsync.core.forms import load_library, validate
    from fieldsync.core.hlc import HLC
    from fieldsync.core.merge import Event, merge
    from fieldsync.extensions import db
    from fieldsync.models import Case, CaseEvent, Service, User, utcnow
    from fieldsync.services import sequence
    from fieldsync.services.casestore import columns_of
    from fieldsync.services.ingest import owner_operations

    org = build_org(devices)
    plan = build_plan(org, n, n_cases, seed=seed)
    library = load_library(FORMS_DIR)
    clocks = [HLC(f"bench-device-{spec.index}") for spec in org.devices]
    with store.app.app_context():
        services = {code: Service(code=code, name=code) for code in org.services}
        users = {}
        for spec in org.devices:
            if spec.username not in users:
                users[spec.username] = User(username=spec.username, role=spec.role,
                                            display_name=spec.username,
                                            service=services.get(spec.service or ""))
        db.session.add_all([*services.values(), *users.values()])
        db.session.commit()
        first = sequence.next_value("sync", len(plan.submissions))
        db.session.commit()
        events: dict[str, list[tuple[Event, dict[str, Any]]]] = defaultdict(list)
        for offset, s in enumerate(plan.submissions):
            spec = org.devices[s.device]
            result = validate(library[(s.form_id, 1)], s.answers)
            assert result.ok, result.errors
            ops = list(result.operations)
            if s.form_id == "case_intake":
                ops += owner_operations(users[spec.username], s.submission_id)
            event = Event(id=s.submission_id, case_id=s.case_id, parents=frozenset(s.heads),
                          hlc=str(clocks[s.device].now()), device_id=f"bench-device-{spec.index}",
                          user_id=spec.username, actor="device", ops=tuple(ops),
                          seq=first + offset)
            events[s.case_id].append((event, {
                "id": event.id, "case_id": event.case_id, "seq": event.seq,
                "parents": sorted(event.parents), "base_revision": s.revision, "hlc": event.hlc,
                "device_id": event.device_id, "user_id": event.user_id, "actor": "device",
                "form_id": s.form_id, "form_version": 1, "ops": ops, "recorded_at": utcnow()}))
        case_rows, event_rows = [], []
        for case_id, items in events.items():
            state = merge([e for e, _ in items], case_id=case_id).to_dict()
            now = utcnow()
            case_rows.append({"id": case_id, "state": state,
                              "change_seq": max(e.seq for e, _ in items), "created_at": now,
                              "updated_at": now, **columns_of(state)})
            event_rows.extend(row for _, row in items)
            if len(case_rows) >= 2000:
                db.session.execute(insert(CaseEvent), event_rows)
                db.session.execute(insert(Case), case_rows)
                case_rows, event_rows = [], []
        if case_rows:
            db.session.execute(insert(CaseEvent), event_rows)
            db.session.execute(insert(Case), case_rows)
        db.session.commit()
        db.session.remove()
    return len(events)


def run(report: Report, backend: str, args: argparse.Namespace,
        store: Store | None = None) -> None:
    from fieldsync.services.casestore import rebuild

    prefix = f"rebuild.{backend}"
    own = store is None
    if store is None:
        store = Store.create(backend, "rebuild")
        store.initialise()
        started = time.perf_counter()
        cases = seed_from_plan(store, args.rebuild_cases, int(args.rebuild_cases * 2.5),
                               args.devices, args.seed)
        store.analyze()
        log(f"{prefix}: {cases} cases seeded from the ingest workload in "
            f"{time.perf_counter() - started:.0f} s")
        source = "bulk-seeded ingest workload"
    else:
        source = "the store the ingest run filled over HTTP"
        store.analyze()
    try:
        with store.app.app_context():
            started = time.perf_counter()
            result = rebuild()
            elapsed = time.perf_counter() - started
        report.add(f"{prefix}.cases_per_s", result.checked / elapsed, "cases/s",
                   f"{result.checked} cases re-derived and compared, {source}")
        report.add(f"{prefix}.differences", len(result.differences), "cases",
                   "cases whose stored view differs from the log (0 expected)")
    finally:
        store.dispose()
        if own:
            store.destroy()


