"""The sync protocol through the Flask app: enrol, push, pull, with real sealed envelopes."""

from __future__ import annotations

import pytest

from fieldsync.core.receipts import verify_receipt
from tests.server.support import INTAKE, UPDATE, enrol


def test_intake_push_then_pull_round_trip(world) -> None:
    ion = enrol(world, "ion")
    text = ion.seal(INTAKE, {"full_name": "Vasile Pop", "national_id": "1850101123456",
                             "address": "Str. Lungă 1", "hours_ordered": 120})
    result = ion.push_one(text)
    assert result["status"] == "accepted", result
    receipt = verify_receipt(result["receipt"], ion.receipt_key)
    assert receipt["sequence"] >= 1

    ion.pull()
    [case] = ion.cases.values()
    assert case["properties"]["name"]["value"] == "Vasile Pop"
    assert case["properties"]["owner_officer"]["value"] == "ion"
    assert case["properties"]["hours_ordered"]["value"] == 120
    assert case["revision"] == 1

    again = ion.push_one(text)
    assert again["status"] == "duplicate"
    assert again["receipt"] == result["receipt"]


def test_concurrent_manual_edits_open_a_conflict(world) -> None:
    ion = enrol(world, "ion")
    other = enrol(world, "ion")
    case_id = "6f0c7a51-2a9a-4d43-9d4b-0d8a3c1e2f00"
    assert ion.push_one(ion.seal(INTAKE, {"full_name": "A B"}, case_id=case_id))["status"] \
        == "accepted"
    ion.pull()
    other.pull()
    r1 = ion.push_one(ion.seal(UPDATE, {"risk_level": "high"}, case_id=case_id))
    r2 = other.push_one(other.seal(UPDATE, {"risk_level": "low"}, case_id=case_id))
    assert (r1["status"], r2["status"]) == ("accepted", "accepted")
    ion.pull()
    case = ion.cases[case_id]
    assert case["properties"]["risk_level"]["conflict"] is True
    assert len(case["open_conflicts"]) == 1


def test_pull_sends_the_stored_officer_view_and_projects_rows_without_one(world) -> None:
    """The officer view written with each case is what the projection of its state gives; a
    row written before views existed (NULL) is projected at pull time, with the same result;
    ``rebuild`` finds a stored view that no longer matches the log and rewrites it."""
    import json

    from sqlalchemy import text

    from fieldsync.extensions import db
    from fieldsync.models import Case
    from fieldsync.services import caseload, casestore

    ion = enrol(world, "ion")
    case_id = "0b5e8a43-7d1c-4f7e-9a55-3c2d1e0f9a11"
    assert ion.push_one(ion.seal(INTAKE, {"full_name": "Ana Vlad", "address": "Str. Mare 2"},
                                 case_id=case_id))["status"] == "accepted"
    ion.pull()
    assert ion.push_one(ion.seal(UPDATE, {"address": "Str. Mică 3", "hours": 2},
                                 case_id=case_id))["status"] == "accepted"
    stored = world.get("/api/v1/sync/pull?cursor=0", headers=ion.auth).json
    case = db.session.get(Case, case_id)
    projected = caseload.project(case, "officer")
    assert stored["cases"] == [projected]
    assert json.loads(case.officer_view) == projected
    view_hlc = case.officer_view_hlc
    assert stored["cases"][0]["properties"]["address"]["value"] == "Str. Mică 3"

    db.session.execute(text("UPDATE cases SET officer_view = NULL, officer_view_hlc = NULL"))
    db.session.commit()
    legacy = world.get("/api/v1/sync/pull?cursor=0", headers=ion.auth).json
    assert legacy["cases"] == stored["cases"]
    assert legacy["server_hlc"] >= stored["cases"][0]["properties"]["address"]["hlc"]

    # Views written by earlier versions had "seq" elsewhere: the order of members is no
    # difference, and such a view is sent as it is.
    db.session.execute(text("UPDATE cases SET officer_view = :view, officer_view_hlc = :hlc"),
                       {"view": json.dumps(dict(reversed(list(projected.items())))),
                        "hlc": view_hlc})
    db.session.commit()
    assert casestore.rebuild().differences == {}
    assert world.get("/api/v1/sync/pull?cursor=0", headers=ion.auth).json["cases"] == \
        stored["cases"]

    db.session.execute(text("UPDATE cases SET officer_view = '{\"case_id\": \"stale\"}'"))
    db.session.commit()
    assert casestore.rebuild().differences == {case_id: ["officer_view"]}
    casestore.rebuild(apply=True)
    db.session.expire_all()
    assert casestore.rebuild().differences == {}
    assert world.get("/api/v1/sync/pull?cursor=0", headers=ion.auth).json["cases"] == \
        stored["cases"]


def test_a_pull_is_answered_while_a_push_holds_the_write_locks(world) -> None:
    """A pull reads a snapshot: it neither waits for a push's transaction nor is refused. On
    SQLite another server process holds the database's write lock; on PostgreSQL a push holds
    the case rows ``FOR UPDATE``."""
    import fcntl
    import os
    from pathlib import Path

    from sqlalchemy import text

    from fieldsync.extensions import db

    ion = enrol(world, "ion")
    assert ion.push_one(ion.seal(INTAKE, {"full_name": "Ana Lup"}))["status"] == "accepted"
    db.session.remove()
    if db.engine.dialect.name == "sqlite":
        path = Path(db.engine.url.database).resolve()
        fd = os.open(path.with_name(path.name + "-writelock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            ion.pull()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    else:
        with db.engine.connect() as other:
            other.execute(text("SELECT id FROM cases FOR UPDATE"))
            other.execute(text("SELECT value FROM counters FOR UPDATE"))
            other.execute(text("SET statement_timeout = 0"))
            ion.pull()
            other.rollback()
    [case] = ion.cases.values()
    assert case["properties"]["name"]["value"] == "Ana Lup"


def test_a_payload_with_half_a_surrogate_pair_is_refused_and_blocks_nothing(
        world, monkeypatch) -> None:
    """A tablet (or an attacker with a device key) can escape a lone surrogate in the JSON it
    seals; no text column can store it. It is refused as malformed, and the rest of the batch
    goes through (it used to fail the whole push with a 500, and stay stuck for recovery)."""
    import json
    import uuid

    from fieldsync.core import envelopes
    from fieldsync.extensions import db
    from fieldsync.models import StoredEnvelope

    ion = enrol(world, "ion")
    monkeypatch.setattr(envelopes, "canonical_json", lambda value: json.dumps(
        value, sort_keys=True, separators=(",", ":")).encode())  # ASCII, with \u escapes
    broken = ion.seal(INTAKE, {"full_name": "A\ud800B"}, case_id=str(uuid.uuid4()))
    monkeypatch.undo()
    fine = ion.seal(INTAKE, {"full_name": "Ana"}, case_id=str(uuid.uuid4()))
    results = ion.push(broken, fine)
    assert [(r["status"], r.get("code")) for r in results] == [
        ("rejected", "malformed_envelope"), ("accepted", None)]
    assert "lone surrogate" in results[0]["detail"]
    assert db.session.get(StoredEnvelope, results[0]["submission_id"]).state == "rejected"


def test_a_device_whose_key_on_record_is_broken_has_every_envelope_refused(world) -> None:
    """The pushing device's key is decoded once per batch; a key on record that is not a
    P-256 point (a damaged row) refuses each envelope of the batch as a bad signature, stores
    nothing as accepted, and a push after the key is restored goes through."""
    import uuid

    from fieldsync.extensions import db
    from fieldsync.models import Case, Device

    ion = enrol(world, "ion")
    texts = [ion.seal(INTAKE, {"full_name": f"P {k}"}, case_id=str(uuid.uuid4()))
             for k in range(3)]
    device = db.session.get(Device, ion.device_id)
    good_key = device.public_key
    device.public_key = "AAAA"
    db.session.commit()
    results = ion.push(*texts)
    assert [(r["status"], r["code"]) for r in results] == [("rejected", "bad_signature")] * 3
    assert all("public key on record is not valid" in r["detail"] for r in results)
    assert db.session.query(Case).count() == 0

    device = db.session.get(Device, ion.device_id)
    device.public_key = good_key
    db.session.commit()
    fresh = [ion.seal(INTAKE, {"full_name": f"Q {k}"}, case_id=str(uuid.uuid4()))
             for k in range(2)]
    assert [r["status"] for r in ion.push(*fresh)] == ["accepted", "accepted"]


@pytest.mark.postgres_only
def test_large_case_values_are_stored_lz4_compressed_on_postgresql(world) -> None:
    """Migration 0004: a case state, its officer view, an event's operations and an envelope
    over PostgreSQL's compression threshold are written with lz4 (pglz cost up to half of
    the database's CPU in the ingest benchmark), and read back unchanged."""
    from sqlalchemy import text

    from fieldsync.extensions import db

    ion = enrol(world, "ion")
    address = "Strada Lungă 1, bloc A, scara 2, apartament 14, Brașov. " * 60  # ~3.4 kB
    result = ion.push_one(ion.seal(INTAKE, {"full_name": "Ana Lup", "address": address}))
    assert result["status"] == "accepted", result
    row = db.session.execute(text(
        "SELECT pg_column_compression(c.state), pg_column_compression(c.officer_view), "
        "pg_column_compression(e.ops), c.state -> 'properties' -> 'address' ->> 'value' "
        "FROM cases c JOIN case_events e ON e.case_id = c.id")).one()
    assert row[:3] == ("lz4", "lz4", "lz4")
    assert row[3] == address
    ion.pull()
    [case] = ion.cases.values()
    assert case["properties"]["address"]["value"] == address
