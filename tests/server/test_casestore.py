"""The case store through ingest: convergence, causality, closure, rebuild, recovery."""

from __future__ import annotations

import itertools
import threading
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from fieldsync.cli import cli
from fieldsync.core.hlc import Timestamp, format_timestamp, wall_clock_millis
from fieldsync.extensions import db
from fieldsync.models import Case, CaseEvent, StoredEnvelope
from fieldsync.services import casestore, ingest
from tests.server.support import INTAKE, UPDATE, enrol

HOUR_MS = 3600 * 1000




def stamp(offset_ms: int, node: str) -> str:
    return format_timestamp(Timestamp(wall_clock_millis() + offset_ms, 0, node))


def values(case: Case) -> dict:
    """Property values and conflict candidate values: what a reviewer sees, without ids."""
    state = case.state
    props = {}
    for name, prop in state["properties"].items():
        if name == "case_number":  # differs by construction: one case per arrival order
            continue
        value = prop["value"]
        if prop["policy"] == "append":
            value = sorted(entry["value"] for entry in value)
        props[name] = value
    conflicts = sorted((c["property"], sorted(x["value"] for x in c["candidates"]))
                       for c in state["conflicts"])
    return {"status": state["status"], "props": props, "conflicts": conflicts,
            "revision": state["revision"]}


def test_any_arrival_order_gives_the_same_case(world) -> None:
    """Three devices edit the same case offline; every arrival order converges."""
    a, b, c = enrol(world, "ion"), enrol(world, "ion"), enrol(world, "ion")
    results = []
    for order in itertools.permutations(range(3)):
        case_id = str(uuid.uuid4())
        a.push_one(a.seal(INTAKE, {"full_name": "X", "address": "Old St 1"}, case_id=case_id))
        for tablet in (a, b, c):
            tablet.pull()
        edits = [
            a.seal(UPDATE, {"address": "A St 1", "phone": "0711", "note": "a", "hours": 2},
                   case_id=case_id, hlc=stamp(-5 * HOUR_MS, a.device_id)),
            b.seal(UPDATE, {"address": "B St 2", "phone": "0722", "note": "b", "hours": 3},
                   case_id=case_id, hlc=stamp(0, b.device_id)),
            c.seal(UPDATE, {"risk_level": "high", "note": "c", "hours": 1.5},
                   case_id=case_id, hlc=stamp(-1000, c.device_id)),
        ]
        for index in order:
            assert (a.push_one(edits[index]) if index == 0 else
                    (b if index == 1 else c).push_one(edits[index]))["status"] == "accepted"
        results.append(values(db.session.get(Case, case_id)))
    assert all(r == results[0] for r in results)
    first = results[0]
    assert first["props"]["phone"] == "0722"  # concurrent lww: greatest HLC wins
    assert first["props"]["hours_completed"] == 6.5
    assert first["props"]["notes"] == ["a", "b", "c"]
    assert first["conflicts"] == [("address", ["A St 1", "B St 2"])]
    assert first["revision"] == 4


def test_causality_beats_clocks(world) -> None:
    fast, slow = enrol(world, "ion"), enrol(world, "ion")
    case_id = str(uuid.uuid4())
    fast.push_one(fast.seal(INTAKE, {"full_name": "Y"}, case_id=case_id))
    fast.pull()
    fast.push_one(fast.seal(UPDATE, {"phone": "0700", "address": "New 1"}, case_id=case_id,
                            hlc=stamp(0, fast.device_id)))
    slow.pull()  # sees the edit above
    # slow's clock is three hours behind, but it edits after seeing the other edit
    result = slow.push_one(slow.seal(UPDATE, {"phone": "0799", "address": "Newer 2"},
                                     case_id=case_id, hlc=stamp(-3 * HOUR_MS, slow.device_id)))
    assert result["status"] == "accepted"
    case = db.session.get(Case, case_id)
    assert values(case)["props"]["phone"] == "0799"
    assert values(case)["props"]["address"] == "Newer 2"
    assert case.state["conflicts"] == []


def test_edits_to_a_closed_case_are_recorded_not_applied(world, app) -> None:
    from fieldsync.services import forms as forms_service

    forms_service.save({
        "form_id": "t_close", "version": 1, "title": {"ro": "Închidere", "en": "Close"},
        "case": {"mode": "update", "close_when": "true", "close_reason": "reason",
                 "close_date": "closed_on"},
        "fields": [
            {"name": "reason", "type": "text", "label": {"ro": "M", "en": "R"},
             "required": True},
            {"name": "closed_on", "type": "date", "label": {"ro": "D", "en": "D"},
             "required": True},
        ],
    }, publish=True)
    closer, late = enrol(world, "ion"), enrol(world, "ion")
    case_id = str(uuid.uuid4())
    closer.push_one(closer.seal(INTAKE, {"full_name": "Z"}, case_id=case_id))
    closer.pull()
    late.pull()
    close = {"form_id": "t_close", "version": 1}
    assert closer.push_one(closer.seal(close, {"reason": "term completed",
                                               "closed_on": "2026-11-20"},
                                       case_id=case_id))["status"] == "accepted"
    result = late.push_one(late.seal(UPDATE, {"phone": "0733", "hours": 2}, case_id=case_id))
    assert result["status"] == "accepted"
    case = db.session.get(Case, case_id)
    assert case.status == "closed"
    assert "phone" not in case.state["properties"]
    assert sorted(h["op"]["property"] for h in case.state["held"]) == ["hours_completed",
                                                                       "phone"]
    assert {h["reason"] for h in case.state["held"]} == {"case_closed"}
    body = closer.pull()
    assert case_id in [t["case_id"] for t in body["tombstones"]]
    assert case_id not in closer.cases


def test_update_errors_are_specific_and_change_nothing(world) -> None:
    ion, maria = enrol(world, "ion"), enrol(world, "maria")
    unknown = ion.push_one(ion.seal(UPDATE, {"phone": "1"}, case_id=str(uuid.uuid4())))
    assert (unknown["status"], unknown["code"]) == ("rejected", "unknown_case")
    case_id = str(uuid.uuid4())
    ion.push_one(ion.seal(INTAKE, {"full_name": "Q"}, case_id=case_id))
    twice = ion.push_one(ion.seal(INTAKE, {"full_name": "Q2"}, case_id=case_id))
    assert twice["code"] == "case_exists"
    bad_base = ion.push_one(ion.seal(UPDATE, {"phone": "1"}, case_id=case_id,
                                     heads=[str(uuid.uuid4())]))
    assert bad_base["code"] == "unknown_base"
    foreign = maria.push_one(maria.seal(UPDATE, {"phone": "1"}, case_id=case_id, heads=[]))
    assert foreign["code"] == "case_out_of_scope"
    case = db.session.get(Case, case_id)
    assert case.revision == 1 and case.display_name == "Q"
    assert db.session.scalar(select(func.count()).select_from(CaseEvent)) == 1


def test_rebuild_matches_the_view_and_finds_tampering(world, app) -> None:
    ion, other = enrol(world, "ion"), enrol(world, "ion")
    ids = []
    for n in range(3):
        case_id = str(uuid.uuid4())
        ids.append(case_id)
        ion.push_one(ion.seal(INTAKE, {"full_name": f"P{n}", "address": "A"}, case_id=case_id))
    ion.pull()
    other.pull()
    ion.push_one(ion.seal(UPDATE, {"address": "B", "note": "n1", "hours": 2}, case_id=ids[0]))
    other.push_one(other.seal(UPDATE, {"address": "C", "hours": 1}, case_id=ids[0]))
    assert casestore.rebuild().differences == {}

    with db.engine.begin() as conn:
        conn.execute(text("UPDATE cases SET display_name = 'forged' WHERE id = :id"),
                     {"id": ids[1]})
    db.session.expire_all()
    report = casestore.rebuild()
    assert report.checked == 3
    assert report.differences == {ids[1]: ["column display_name"]}

    runner = CliRunner(env={"FIELDSYNC_DATABASE_URL": app.config["DATABASE_URL"],
                            "FIELDSYNC_DATA_DIR": app.config["DATA_DIR"]})
    result = runner.invoke(cli, ["cases", "rebuild"])
    assert result.exit_code == 1
    assert f"{ids[1]}: differs at column display_name" in result.output
    fixed = runner.invoke(cli, ["cases", "rebuild", "--apply"])
    assert fixed.exit_code == 0 and "1 rewritten" in fixed.output
    clean = runner.invoke(cli, ["cases", "rebuild"])
    assert clean.exit_code == 0 and "3 case(s) checked, 0 differ" in clean.output


def test_stored_but_unprocessed_envelopes_are_finished_exactly_once(world) -> None:
    ion = enrol(world, "ion")
    case_id = str(uuid.uuid4())
    texts = [ion.seal(INTAKE, {"full_name": "R"}, case_id=case_id)]
    from fieldsync.models import Device

    device = db.session.get(Device, ion.device_id)
    # Simulate a crash after the receive commit and before processing.
    ion_pushed = [ingest.receive(device, t) for t in texts]
    db.session.commit()
    assert db.session.get(StoredEnvelope, ion_pushed[0]).state == "received"
    assert db.session.get(Case, case_id) is None

    assert ingest.process_pending() == 1
    assert ingest.process_pending() == 0
    assert db.session.get(StoredEnvelope, ion_pushed[0]).state == "accepted"
    assert db.session.get(Case, case_id).revision == 1
    again = ion.push_one(texts[0])
    assert again["status"] == "duplicate"
    assert db.session.scalar(select(func.count()).select_from(CaseEvent)) == 1


def test_an_envelope_refused_when_processed_keeps_its_reason_and_may_succeed_later(
        world) -> None:
    """Processing refuses an update of a case the server does not have: the stored envelope
    says why; pushed again once the case exists, it is applied and the reason cleared."""
    ion = enrol(world, "ion")
    case_id = str(uuid.uuid4())
    intake = ion.seal(INTAKE, {"full_name": "L"}, case_id=case_id)  # sealed offline, then
    update = ion.seal(UPDATE, {"hours": 2}, case_id=case_id)  # pushed in the wrong order
    refused = ion.push_one(update)
    assert (refused["status"], refused["code"]) == ("rejected", "unknown_case")
    row = db.session.get(StoredEnvelope, refused["submission_id"])
    assert (row.state, row.reject_code) == ("rejected", "unknown_case")
    assert row.reject_detail["detail"].startswith(f"no case {case_id}")
    assert row.processed_at is not None and row.receipt is None
    db.session.rollback()

    assert ion.push_one(intake)["status"] == "accepted"
    again = ion.push_one(update)
    assert again["status"] == "accepted" and again["receipt"], again
    db.session.expire_all()
    row = db.session.get(StoredEnvelope, refused["submission_id"])
    assert (row.state, row.reject_code, row.reject_detail) == ("accepted", None, None)
    assert db.session.get(Case, case_id).revision == 2


def test_a_starting_worker_leaves_envelopes_in_flight_to_their_request(world, app,
                                                                       monkeypatch) -> None:
    """A gunicorn worker starting beside serving siblings must not take a push's envelopes
    (the push would answer "duplicate" for a first submission); a crash's leftovers, older
    than the in-flight window, are finished at once, and a sole ``fieldsync serve`` takes all."""
    from datetime import timedelta

    from fieldsync import jobs
    from fieldsync.models import Device
    from fieldsync.services import startup

    monkeypatch.setattr(startup, "tune_runtime", lambda: None)  # no process-wide GC changes
    ion = enrol(world, "ion")
    device = db.session.get(Device, ion.device_id)
    old_case, new_case = str(uuid.uuid4()), str(uuid.uuid4())
    old = ingest.receive(device, ion.seal(INTAKE, {"full_name": "Old"}, case_id=old_case))
    new = ingest.receive(device, ion.seal(INTAKE, {"full_name": "New"}, case_id=new_case))
    stored = db.session.get(StoredEnvelope, old)
    stored.received_at -= timedelta(seconds=jobs.IN_FLIGHT_SECONDS + 5)
    db.session.commit()

    assert startup.start_background_jobs(app, sole_process=False) == [
        "recovered 1 envelope(s) left unprocessed by a crash"]
    db.session.expire_all()
    assert db.session.get(StoredEnvelope, old).state == "accepted"
    assert db.session.get(StoredEnvelope, new).state == "received"
    assert db.session.get(Case, new_case) is None
    db.session.rollback()  # SQLite: this session's reads hold the write lock

    assert startup.start_background_jobs(app) == [
        "recovered 1 envelope(s) left unprocessed by a crash"]
    db.session.expire_all()
    assert db.session.get(StoredEnvelope, new).state == "accepted"
    assert db.session.get(Case, new_case).revision == 1


@pytest.mark.postgres_only
def test_concurrent_ingest_loses_no_update(world, app, database_url) -> None:
    assert database_url.startswith("postgresql")
    tablets = [enrol(world, "ion") for _ in range(6)]
    case_id = str(uuid.uuid4())
    tablets[0].push_one(tablets[0].seal(INTAKE, {"full_name": "C"}, case_id=case_id))
    for t in tablets:
        t.pull()
    batches = [[t.seal(UPDATE, {"hours": 1, "note": f"{n}-{k}", "address": f"{n} St"},
                       case_id=case_id) for k in range(5)] for n, t in enumerate(tablets)]
    errors = []

    def run(tablet, batch):
        try:
            with app.app_context():
                client = app.test_client()
                response = client.post("/api/v1/sync/push", json={"envelopes": batch},
                                       headers=tablet.auth)
                statuses = [r["status"] for r in response.json["results"]]
                assert statuses == ["accepted"] * len(batch), response.json
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t, b)) for t, b in zip(tablets, batches,
                                                                          strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db.session.expire_all()
    case = db.session.get(Case, case_id)
    assert case.revision == 31
    assert case.state["properties"]["hours_completed"]["value"] == 30
    assert case.state["properties"]["notes"]["count"] == 30
    [conflict] = case.state["conflicts"]
    assert sorted(c["value"] for c in conflict["candidates"]) == [f"{n} St" for n in range(6)]
    assert casestore.rebuild().differences == {}


def test_case_numbers_are_unique_and_sequential(world) -> None:
    ion = enrol(world, "ion")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    texts = [ion.seal(INTAKE, {"full_name": f"N{n}"}, case_id=case_id)
             for n, case_id in enumerate(ids)]
    assert [r["status"] for r in ion.push(*texts)] == ["accepted"] * 3
    numbers = sorted(db.session.get(Case, case_id).case_number for case_id in ids)
    assert numbers == ["BV-000001", "BV-000002", "BV-000003"]


def test_a_retried_batch_applies_each_intake_once_with_one_case_number(world, monkeypatch):
    """A lock conflict makes the process step retry the whole batch: the retry must not carry
    anything over from the failed attempt (e.g. a second case number on the same intake)."""
    from sqlalchemy.exc import IntegrityError

    ion = enrol(world, "ion")
    case_id = str(uuid.uuid4())
    real_flush = casestore.CaseWriter.flush
    calls = []

    def flush_failing_once(self):
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("INSERT", {}, Exception("simulated conflicting writer"))
        return real_flush(self)

    monkeypatch.setattr(casestore.CaseWriter, "flush", flush_failing_once)
    [result] = ion.push(ion.seal(INTAKE, {"full_name": "Retry"}, case_id=case_id))
    assert result["status"] == "accepted"
    assert len(calls) == 2
    [event] = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id))
    numbers = [op["value"] for op in event.ops if op.get("property") == "case_number"]
    assert numbers == [db.session.get(Case, case_id).case_number]


def test_a_merge_done_before_a_concurrent_write_is_done_again(world, app, monkeypatch):
    """A push merges its envelopes before it takes the write locks. When another push writes
    the same case in between, the early merge is stale: the written case must still hold both
    edits (no update lost) and match the log."""
    ion, other = enrol(world, "ion"), enrol(world, "ion")
    case_id = str(uuid.uuid4())
    assert ion.push_one(ion.seal(INTAKE, {"full_name": "R"}, case_id=case_id))["status"] \
        == "accepted"
    ion.pull()
    other.pull()
    mine = ion.seal(UPDATE, {"risk_level": "high", "note": "ion", "hours": 2}, case_id=case_id)
    theirs = other.seal(UPDATE, {"risk_level": "low", "note": "other", "hours": 3},
                        case_id=case_id)
    real = ingest.rehearse
    raced = []

    def rehearse_then_another_push(prepared):
        rehearsal = real(prepared)
        if not raced:
            raced.append(rehearsal)
            with app.app_context():  # another request, its own session, writes meanwhile
                assert other.push_one(theirs)["status"] == "accepted"
        return rehearsal

    monkeypatch.setattr(ingest, "rehearse", rehearse_then_another_push)
    assert ion.push_one(mine)["status"] == "accepted"
    assert len(raced[0].merges) == 1  # the early merge was made, without the other edit
    db.session.expire_all()
    case = db.session.get(Case, case_id)
    assert case.revision == 3
    assert case.state["properties"]["hours_completed"]["value"] == 5
    assert sorted(e["value"] for e in case.state["properties"]["notes"]["value"]) \
        == ["ion", "other"]
    [conflict] = case.state["conflicts"]
    assert sorted(c["value"] for c in conflict["candidates"]) == ["high", "low"]
    assert casestore.rebuild([case_id]).differences == {}
    ion.pull()
    assert ion.cases[case_id]["revision"] == 3
