"""The review API: staff authentication, search, detail, conflicts, transfers, audit."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from fieldsync.extensions import db
from fieldsync.models import AuditEntry, Case
from tests.server.support import INTAKE, UPDATE, enrol, staff_headers


@pytest.fixture
def reviewer(world):
    return staff_headers(world, "ana", "reviewer-password-1")


def new_case(tablet, **answers) -> str:
    case_id = str(uuid.uuid4())
    answers = {"full_name": "Ioana Dumitru", **answers}
    assert tablet.push_one(tablet.seal(INTAKE, answers, case_id=case_id))["status"] == "accepted"
    tablet.pull()
    return case_id


def conflicted_case(world):
    ion, ion2 = enrol(world, "ion"), enrol(world, "ion")
    case_id = new_case(ion)
    ion2.pull()
    ion.push_one(ion.seal(UPDATE, {"risk_level": "high"}, case_id=case_id))
    ion2.push_one(ion2.seal(UPDATE, {"risk_level": "low"}, case_id=case_id))
    return ion, ion2, case_id


def audit_actions(actor: str) -> list[str]:
    return list(db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.actor == actor).order_by(AuditEntry.id)))


def test_login_refuses_wrong_password_and_device_roles(world) -> None:
    bad = world.post("/api/v1/auth/login", json={"username": "ana", "password": "nope"})
    assert bad.status_code == 401
    assert bad.json["code"] == "authentication_required"
    officer = world.post("/api/v1/auth/login", json={"username": "ion", "password": "x" * 12})
    assert officer.status_code == 401  # officers have no password: tablets enrol instead
    missing = world.get("/api/v1/review/cases")
    assert missing.status_code == 401
    assert missing.mimetype == "application/problem+json"


def test_device_token_is_not_a_staff_token(world) -> None:
    ion = enrol(world, "ion")
    response = world.get("/api/v1/review/cases", headers=ion.auth)
    assert response.status_code == 401


def test_search_and_detail_are_audited(world, reviewer) -> None:
    ion = enrol(world, "ion")
    first = new_case(ion, full_name="Gheorghe Stan")
    new_case(ion, full_name="Elena Radu")
    response = world.get("/api/v1/review/cases?q=stan", headers=reviewer)
    assert response.status_code == 200
    assert [c["case_id"] for c in response.json["cases"]] == [first]
    assert response.json["cases"][0]["name"] == "Gheorghe Stan"
    by_officer = world.get("/api/v1/review/cases?officer=ion&service=BV", headers=reviewer)
    assert by_officer.json["total"] == 2
    assert world.get("/api/v1/review/cases?officer=maria", headers=reviewer).json["total"] == 0

    detail = world.get(f"/api/v1/review/cases/{first}", headers=reviewer)
    assert detail.status_code == 200
    [event] = detail.json["history"]
    assert event["user"] == "ion" and event["form"] == "t_intake v1"
    assert audit_actions("ana") == ["case.search", "case.search", "case.search", "case.read"]
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "case.read")).one()
    assert entry.target_id == first


def test_bad_search_parameters_are_specific(world, reviewer) -> None:
    response = world.get("/api/v1/review/cases?status=sleeping", headers=reviewer)
    assert response.status_code == 422
    assert "status" in response.json["errors"]
    assert world.get(f"/api/v1/review/cases/{uuid.uuid4()}", headers=reviewer).status_code == 404


def test_resolving_a_conflict_reaches_the_devices(world, reviewer) -> None:
    ion, ion2, case_id = conflicted_case(world)
    conflicts = world.get("/api/v1/review/conflicts", headers=reviewer).json["conflicts"]
    [conflict] = conflicts
    assert conflict["property"] == "risk_level"
    assert sorted(c["value"] for c in conflict["candidates"]) == ["high", "low"]

    response = world.post(f"/api/v1/review/conflicts/{conflict['conflict_id']}/resolve",
                          json={"value": "moderate", "reason": "spoke to both officers"},
                          headers=reviewer)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "resolved"

    ion.pull()
    prop = ion.cases[case_id]["properties"]["risk_level"]
    assert prop["value"] == "moderate" and prop["conflict"] is False
    assert ion.cases[case_id]["open_conflicts"] == []

    again = world.post(f"/api/v1/review/conflicts/{conflict['conflict_id']}/resolve",
                       json={"value": "low", "reason": "second thoughts"}, headers=reviewer)
    assert again.status_code == 409
    assert again.json["code"] == "state_conflict"
    assert "conflict.resolve" in audit_actions("ana")


def test_resolution_errors_change_nothing(world, reviewer) -> None:
    _, _, case_id = conflicted_case(world)
    [conflict] = world.get("/api/v1/review/conflicts", headers=reviewer).json["conflicts"]
    url = f"/api/v1/review/conflicts/{conflict['conflict_id']}/resolve"
    before = db.session.get(Case, case_id).state

    invalid = world.post(url, json={"value": "extreme", "reason": "x"}, headers=reviewer)
    assert invalid.status_code == 422
    assert invalid.json["code"] == "invalid_input"
    assert "risk_level" in invalid.json["detail"] and "value" in invalid.json["errors"]
    no_reason = world.post(url, json={"value": "low"}, headers=reviewer)
    assert no_reason.status_code == 422 and "reason" in no_reason.json["errors"]
    unknown = world.post("/api/v1/review/conflicts/cf-nope/resolve",
                         json={"value": "low", "reason": "x"}, headers=reviewer)
    assert unknown.status_code == 404
    not_json = world.post(url, data="value=low", headers=reviewer)
    assert not_json.status_code == 400 and not_json.json["code"] == "malformed_request"
    # A reason no text column can hold (half a surrogate pair) is refused up front, not a 500.
    lone = world.post(url, data='{"value": "low", "reason": "ok \\ud800"}',
                      headers={**reviewer, "Content-Type": "application/json"})
    assert (lone.status_code, lone.json["code"]) == (400, "malformed_request")
    assert "lone surrogate" in lone.json["detail"]

    db.session.expire_all()
    assert db.session.get(Case, case_id).state == before
    assert world.get("/api/v1/review/conflicts", headers=reviewer).json["conflicts"][0][
        "status"] == "open"


def test_transfer_moves_the_case_between_caseloads(world, reviewer) -> None:
    ion = enrol(world, "ion")
    maria = enrol(world, "maria")
    case_id = new_case(ion)
    maria.pull()
    assert case_id not in maria.cases

    response = world.post(f"/api/v1/review/cases/{case_id}/transfer",
                          json={"service": "CJ", "officer": "maria", "reason": "moved to Cluj"},
                          headers=reviewer)
    assert response.status_code == 200, response.json
    assert response.json["owner_officer"] == "maria"

    body = ion.pull()
    assert case_id not in ion.cases
    assert [t["case_id"] for t in body["tombstones"]] == [case_id]
    maria.pull()
    assert maria.cases[case_id]["properties"]["owner_service"]["value"] == "CJ"

    wrong = world.post(f"/api/v1/review/cases/{case_id}/transfer",
                       json={"service": "BV", "officer": "maria", "reason": "x"},
                       headers=reviewer)
    assert wrong.status_code == 422


def test_server_property_set_by_staff_and_refused_from_devices(world, reviewer) -> None:
    ion = enrol(world, "ion")
    case_id = new_case(ion, hours_ordered=100)
    response = world.put(f"/api/v1/review/cases/{case_id}/properties/hours_ordered",
                         json={"value": 140, "reason": "court amended the order"},
                         headers=reviewer)
    assert response.status_code == 200, response.json
    ion.pull()
    assert ion.cases[case_id]["properties"]["hours_ordered"]["value"] == 140

    result = ion.push_one(ion.seal(UPDATE, {"hours_ordered": 60}, case_id=case_id))
    assert result["status"] == "accepted"  # recorded, never silently dropped ...
    ion.pull()
    assert ion.cases[case_id]["properties"]["hours_ordered"]["value"] == 140  # ... nor applied
    detail = world.get(f"/api/v1/review/cases/{case_id}", headers=reviewer).json
    [held] = detail["state"]["held"]
    assert held["reason"] == "server_property" and held["op"]["value"] == 60

    bad = world.put(f"/api/v1/review/cases/{case_id}/properties/phone",
                    json={"value": "0700", "reason": "x"}, headers=reviewer)
    assert bad.status_code == 403


def test_supervisor_sees_only_public_properties_of_placed_cases(world, reviewer) -> None:
    ion = enrol(world, "ion")
    dan = enrol(world, "dan")
    placed = new_case(ion, national_id="1850101123456", address="Str. Mare 3",
                      work_site="BV-PARC", hours_ordered=90)
    new_case(ion, national_id="2900101123456")
    ion.push_one(ion.seal(UPDATE, {"risk_level": "high"}, case_id=placed))
    dan.pull()
    assert list(dan.cases) == [placed]
    properties = dan.cases[placed]["properties"]
    assert "national_id" not in properties and "risk_level" not in properties
    assert "address" not in properties  # restricted
    assert properties["name"]["value"] == "Ioana Dumitru"
    assert properties["hours_ordered"]["value"] == 90
    assert all(p["sensitivity"] == "public" for p in properties.values())
    assert "open_conflicts" not in dan.cases[placed]

    result = dan.push_one(dan.seal(UPDATE, {"hours": 4.5}, case_id=placed))
    assert result["status"] == "accepted"
    ion.pull()
    assert ion.cases[placed]["properties"]["hours_completed"]["value"] == 4.5


def test_supervisors_may_fill_only_forms_made_for_them(world) -> None:
    from fieldsync.services import forms as forms_service

    officer_only = {**UPDATE, "form_id": "t_officer_only", "case": {"mode": "update"}}
    forms_service.save(officer_only, publish=True)
    ion, dan = enrol(world, "ion"), enrol(world, "dan")
    placed = new_case(ion, work_site="BV-PARC")
    dan.pull()
    intake = dan.push_one(dan.seal(INTAKE, {"full_name": "Not allowed"}))
    assert (intake["status"], intake["code"]) == ("rejected", "forbidden_form")
    update = dan.push_one(dan.seal(officer_only, {"risk_level": "low"}, case_id=placed))
    assert (update["status"], update["code"]) == ("rejected", "forbidden_form")
    assert "a supervisor may not fill t_officer_only" in update["detail"]
    ion.pull()
    assert "risk_level" not in ion.cases[placed]["properties"]


def test_officer_transfer_request_waits_for_the_receiving_service(world, reviewer) -> None:
    from fieldsync.services import forms as forms_service

    closure = {
        "form_id": "t_closure", "version": 1, "title": {"ro": "Transfer", "en": "Transfer"},
        "case": {"mode": "update", "transfer_when": 'action == "transfer"',
                 "transfer_to": "service", "transfer_reason": "why"},
        "fields": [
            {"name": "action", "type": "select_one", "label": {"ro": "A", "en": "A"},
             "required": True, "choices": [{"value": "transfer",
                                            "label": {"ro": "T", "en": "T"}}]},
            {"name": "service", "type": "text", "label": {"ro": "S", "en": "S"},
             "required": True},
            {"name": "why", "type": "text", "label": {"ro": "M", "en": "W"}, "required": True},
        ],
    }
    forms_service.save(closure, publish=True)
    ion, maria = enrol(world, "ion"), enrol(world, "maria")
    case_id = new_case(ion)
    result = ion.push_one(ion.seal(closure, {"action": "transfer", "service": "CJ",
                                             "why": "moved to Cluj"}, case_id=case_id))
    assert result["status"] == "accepted"
    detail = world.get(f"/api/v1/review/cases/{case_id}", headers=reviewer).json
    assert detail["status"] == "transfer_pending"
    assert detail["state"]["pending_transfer"]["service"] == "CJ"
    assert detail["owner_officer"] == "ion"  # still ion's until the receiving side accepts
    pending = world.get("/api/v1/review/cases?status=transfer_pending", headers=reviewer)
    assert [c["case_id"] for c in pending.json["cases"]] == [case_id]

    accepted = world.post(f"/api/v1/review/cases/{case_id}/transfer",
                          json={"service": "CJ", "officer": "maria", "reason": "accepted"},
                          headers=reviewer)
    assert accepted.status_code == 200 and accepted.json["status"] == "active"
    ion.pull()
    maria.pull()
    assert case_id not in ion.cases and case_id in maria.cases
