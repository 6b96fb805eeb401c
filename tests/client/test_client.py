"""The client library against the real app, in-process (``httpx.WSGITransport``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from flask import Flask

from fieldsync.core.envelopes import Envelope, open_envelope
from fieldsync.core.hlc import parse_timestamp
from fieldsync.core.keys import b64url_decode
from fieldsync.services import keyring
from sync_client import (
    AlreadyEnrolled,
    Client,
    InvalidAnswers,
    LocalDataError,
    NotEnrolled,
    ServerError,
)
from sync_client.store import Store
from tests.client import answers
from tests.client.conftest import FAST_KDF, OFFLINE_URL, PASSPHRASE


def open_case(tablet: Client, name: str = "Vasile Ionescu") -> str:
    filled = tablet.fill("case_intake", answers.intake(name))
    assert tablet.push().accepted == [filled.submission_id]
    tablet.pull()
    return filled.case_id


def test_fill_refuses_invalid_answers_and_stores_nothing(
        make_tablet: Callable[..., Client]) -> None:
    tablet = make_tablet()
    case_id = open_case(tablet)
    clock = tablet.store.get("hlc")
    bad = {**answers.home_visit(), "notes": "short"}
    del bad["outcome"]
    with pytest.raises(InvalidAnswers) as caught:
        tablet.fill("home_visit", bad, case_id=case_id)
    assert set(caught.value.errors) >= {"outcome", "notes"}
    assert caught.value.errors["outcome"] == ["required"]
    assert tablet.store.outbox_size() == 0
    assert tablet.store.get("hlc") == clock  # nothing was sealed


def test_fill_needs_the_right_case_and_form(make_tablet: Callable[..., Client]) -> None:
    tablet = make_tablet()
    case_id = open_case(tablet)
    with pytest.raises(LocalDataError, match="updates an existing case: give --case"):
        tablet.fill("home_visit", answers.home_visit())
    with pytest.raises(LocalDataError, match="case 0000.* is not on this tablet"):
        tablet.fill("home_visit", answers.home_visit(),
                    case_id="00000000-0000-4000-8000-000000000000")
    with pytest.raises(LocalDataError, match="opens a new case: do not give --case"):
        tablet.fill("case_intake", answers.intake(), case_id=case_id)
    with pytest.raises(LocalDataError, match="form no_such_form is not on this tablet"):
        tablet.fill("no_such_form", {})
    with pytest.raises(LocalDataError, match="form home_visit v7 is not on this tablet"):
        tablet.fill("home_visit", answers.home_visit(), case_id=case_id, version=7)
    assert tablet.store.outbox_size() == 0


def test_the_sealed_payload_follows_the_protocol(server_app: Flask,
                                                 make_tablet: Callable[..., Client]) -> None:
    tablet = make_tablet()
    case_id = open_case(tablet)
    case = next(c for c in tablet.cases() if c["case_id"] == case_id)
    filled = tablet.fill("home_visit", answers.home_visit(), case_id=case_id)
    [item] = tablet.store.outbox()
    envelope = Envelope.from_bytes(item.envelope)
    header = envelope.header
    device = tablet.device()
    assert (header.device_id, header.form_id, header.form_version, header.submission_id) == (
        device["device_id"], "home_visit", 1, filled.submission_id)
    assert parse_timestamp(header.hlc).node == device["device_id"]
    payload = open_envelope(envelope, keyring.get(server_app).private_key)
    assert payload == {"submission_id": filled.submission_id, "form_id": "home_visit",
                       "form_version": 1, "case_id": case_id,
                       "base": {"revision": case["revision"], "heads": case["heads"]},
                       "answers": answers.home_visit()}


def test_an_item_leaves_the_outbox_only_on_a_verified_receipt(
        server_app: Flask, make_tablet: Callable[..., Client]) -> None:
    wsgi = httpx.WSGITransport(app=server_app)
    forge = {"on": True}

    def handler(request: httpx.Request) -> httpx.Response:
        response = wsgi.handle_request(request)
        if forge["on"] and request.url.path.endswith("/sync/push"):
            body = json.loads(response.read())
            for result in body["results"]:
                result["receipt"]["sequence"] += 1000  # no longer what the server signed
            return httpx.Response(200, json=body)
        return response

    tablet = make_tablet(transport=httpx.MockTransport(handler))
    filled = tablet.fill("case_intake", answers.intake())
    report = tablet.push()
    assert report.accepted == [] and [u["submission_id"] for u in report.unverified] == [
        filled.submission_id]
    assert "does not verify" in report.unverified[0]["reason"]
    assert tablet.store.outbox_size() == 1
    forge["on"] = False
    report = tablet.push()
    assert report.duplicate == [filled.submission_id]
    assert tablet.store.outbox_size() == 0


def test_pull_uses_etags_keeps_the_cursor_and_advances_the_clock(
        make_tablet: Callable[..., Client]) -> None:
    tablet = make_tablet(pull=False)
    first = tablet.pull()
    assert "home_visit v1" in first.forms_downloaded
    again = tablet.pull()
    assert again.forms_downloaded == [] and again.cases_updated == 0
    assert again.cursor == first.cursor
    tablet.store.put("hlc", "000000000000001-000000-" + tablet.device()["device_id"])
    tablet.pull()
    assert parse_timestamp(tablet.store.get("hlc")).millis > 1_700_000_000_000


def test_settings_changed_on_the_server_reject_with_field_errors(
        server_app: Flask, make_tablet: Callable[..., Client]) -> None:
    tablet = make_tablet()
    case_id = open_case(tablet)
    filled = tablet.fill("home_visit", answers.home_visit(), case_id=case_id)
    server_app.config["FORM_SETTINGS"] = {"max_days_to_next_contact": 7}
    report = tablet.push()
    [rejected] = report.rejected
    assert (rejected["submission_id"], rejected["code"]) == (filled.submission_id,
                                                            "invalid_answers")
    assert "next_contact_date" in rejected["errors"]
    [kept] = tablet.status()["rejected"]
    assert kept["errors"] == rejected["errors"] and tablet.status()["outbox"] == []


def test_enrolment_errors(server_app: Flask, make_tablet: Callable[..., Client],
                          tmp_path: Path) -> None:
    tablet = make_tablet()
    with pytest.raises(AlreadyEnrolled):
        tablet.enroll(OFFLINE_URL, "ANY-CODE")
    fresh = Client(tmp_path / "fresh", PASSPHRASE, scrypt_n=FAST_KDF,
                   transport=httpx.WSGITransport(app=server_app))
    with pytest.raises(ServerError) as caught:
        fresh.enroll(OFFLINE_URL, "AAAA-BBBB-CCCC-DDDD")
    assert caught.value.reason == "unknown_code"
    assert not Store.exists(fresh.home)  # a failed enrolment leaves no store behind
    with pytest.raises(NotEnrolled):
        Store.create(fresh.home, PASSPHRASE, scrypt_n=FAST_KDF).close()
        fresh.status()
    fresh.close()


def test_envelope_text_on_the_wire_is_the_stored_envelope(
        server_app: Flask, make_tablet: Callable[..., Client]) -> None:
    sent: list[bytes] = []
    wsgi = httpx.WSGITransport(app=server_app)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sync/push"):
            sent.extend(b64url_decode(t) for t in json.loads(request.content)["envelopes"])
        return wsgi.handle_request(request)

    tablet = make_tablet(transport=httpx.MockTransport(handler))
    tablet.fill("case_intake", answers.intake())
    [item] = tablet.store.outbox()
    tablet.push()
    assert sent == [item.envelope]


def test_a_day_offline_intake_then_more_forms_for_the_new_case(
        make_tablet: Callable[..., Client], server_app: Flask) -> None:
    """Open a case and keep working on it before any sync: the edits build on each other."""
    from fieldsync.extensions import db
    from fieldsync.models import Case

    tablet = make_tablet()
    opened = tablet.fill("case_intake", answers.intake("Radu Oprea"))
    local = tablet.store.get_case(opened.case_id)
    assert local["provisional"] is True
    assert local["properties"]["name"]["value"] == "Radu Oprea"
    moved = {**answers.home_visit(), "outcome": "moved", "new_address": "Str. Nouă 2"}
    for key in ("address_confirmed", "people_present", "living_conditions", "income_evidence",
                "concerns"):
        moved.pop(key)
    tablet.fill("home_visit", moved, case_id=opened.case_id)
    moved_again = {**moved, "new_address": "Str. Veche 9"}
    tablet.fill("home_visit", moved_again, case_id=opened.case_id)

    report = tablet.push()
    assert len(report.accepted) == 3
    tablet.pull()
    case = tablet.store.get_case(opened.case_id)
    assert "provisional" not in case
    assert case["revision"] == 3
    assert case["properties"]["address"]["value"] == "Str. Veche 9"
    assert case["properties"]["address"]["conflict"] is False  # ordered, not concurrent
    db.session.expire_all()  # the requests above ran in this test's app context
    assert db.session.get(Case, opened.case_id).open_conflicts == 0
