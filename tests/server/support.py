"""Test helpers: small forms, enrolled devices that seal real envelopes, staff tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from flask.testing import FlaskClient

from fieldsync.core.envelopes import seal
from fieldsync.core.hlc import HLC
from fieldsync.core.keys import PublicKeyInfo, encode_signing_public_key, generate_signing_key
from fieldsync.services import devices as devices_service
from fieldsync.services import forms as forms_service
from fieldsync.services import users as users_service

INTAKE = {
    "form_id": "t_intake",
    "version": 1,
    "title": {"ro": "Deschidere dosar (test)", "en": "Intake (test)"},
    "case": {"mode": "create"},
    "fields": [
        {"name": "full_name", "type": "text", "label": {"ro": "Nume", "en": "Name"},
         "required": True, "case_property": "name", "sensitivity": "public"},
        {"name": "national_id", "type": "text", "label": {"ro": "CNP", "en": "ID"},
         "pattern": "[0-9]{13}", "case_property": "national_id",
         "sensitivity": "confidential"},
        {"name": "address", "type": "text", "label": {"ro": "Adresa", "en": "Address"},
         "case_property": "address", "policy": "manual"},
        {"name": "hours_ordered", "type": "integer", "label": {"ro": "Ore", "en": "Hours"},
         "min": 0, "max": 1000, "case_property": "hours_ordered", "policy": "server",
         "sensitivity": "public"},
        {"name": "work_site", "type": "text", "label": {"ro": "Loc", "en": "Site"},
         "case_property": "site"},
    ],
}

UPDATE = {
    "form_id": "t_update",
    "version": 1,
    "title": {"ro": "Actualizare (test)", "en": "Update (test)"},
    "case": {"mode": "update", "roles": ["officer", "supervisor"]},
    "fields": [
        {"name": "risk_level", "type": "select_one", "label": {"ro": "Risc", "en": "Risk"},
         "choices": [{"value": v, "label": {"ro": v, "en": v}}
                     for v in ("low", "moderate", "high", "very_high")],
         "case_property": "risk_level", "policy": "manual", "sensitivity": "confidential"},
        {"name": "address", "type": "text", "label": {"ro": "Adresa", "en": "Address"},
         "case_property": "address", "policy": "manual"},
        {"name": "phone", "type": "text", "label": {"ro": "Telefon", "en": "Phone"},
         "case_property": "phone"},
        {"name": "note", "type": "text", "label": {"ro": "Notă", "en": "Note"},
         "case_property": "notes", "policy": "append"},
        {"name": "hours", "type": "decimal", "label": {"ro": "Ore", "en": "Hours"},
         "min": 0, "max": 12, "case_property": "hours_completed", "policy": "sum",
         "sensitivity": "public"},
        {"name": "hours_ordered", "type": "integer", "label": {"ro": "Ore", "en": "Hours"},
         "case_property": "hours_ordered", "policy": "server", "sensitivity": "public"},
    ],
}


def publish_test_forms() -> None:
    for document in (INTAKE, UPDATE):
        forms_service.save(document, publish=True)


def make_org() -> None:
    users_service.add_service("BV", "Brașov")
    users_service.add_service("CJ", "Cluj")
    users_service.add_site("BV-PARC", "Parc", "BV")
    users_service.add_user("ion", "officer", service="BV")
    users_service.add_user("maria", "officer", service="CJ")
    users_service.add_user("dan", "supervisor", site="BV-PARC")
    users_service.add_user("ana", "reviewer", service="BV", password="reviewer-password-1")
    users_service.add_user("root", "admin", password="admin-password-12")


@dataclass
class Tablet:
    """An enrolled device driven through the HTTP API, sealing real envelopes."""

    client: FlaskClient
    device_id: str
    token: str
    signing_key: Any
    server_keys: list[dict[str, str]]
    receipt_key: str
    suite: str
    hlc: HLC = field(init=False)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    cursor: int = 0

    def __post_init__(self) -> None:
        self.hlc = HLC(self.device_id)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def recipient(self) -> PublicKeyInfo:
        info = next(k for k in self.server_keys if k["suite"] == self.suite)
        return PublicKeyInfo.from_wire(info)

    def seal(self, form: dict[str, Any], answers: dict[str, Any], *, case_id: str | None = None,
             heads: list[str] | None = None, revision: int | None = None,
             submission_id: str | None = None, hlc: str | None = None) -> str:
        submission_id = submission_id or str(uuid.uuid4())
        case_id = case_id or str(uuid.uuid4())
        known = self.cases.get(case_id)
        if heads is None:
            heads = list(known["heads"]) if known else []
        if revision is None:
            revision = known["revision"] if known else 0
        payload = {
            "submission_id": submission_id, "form_id": form["form_id"],
            "form_version": form["version"], "case_id": case_id,
            "base": {"revision": revision, "heads": heads}, "answers": answers,
        }
        envelope = seal(
            payload, submission_id=submission_id, device_id=self.device_id,
            form_id=form["form_id"], form_version=form["version"],
            hlc=hlc or self.hlc.now(), recipient=self.recipient(), signing_key=self.signing_key,
        )
        # The device has now seen its own submission: its next edit of this case builds on it.
        self.cases[case_id] = {**(known or {}), "case_id": case_id, "heads": [submission_id],
                               "revision": revision + 1}
        return envelope.to_text()

    def push(self, *texts: str) -> list[dict[str, Any]]:
        response = self.client.post("/api/v1/sync/push", json={"envelopes": list(texts)},
                                    headers=self.auth)
        assert response.status_code == 200, response.json
        return list(response.json["results"])

    def push_one(self, text: str) -> dict[str, Any]:
        return self.push(text)[0]

    def pull(self) -> dict[str, Any]:
        """Pull every page, applying cases and tombstones to the local copy."""
        while True:
            response = self.client.get(f"/api/v1/sync/pull?cursor={self.cursor}",
                                       headers=self.auth)
            assert response.status_code == 200, response.json
            body = response.json
            for case in body["cases"]:
                self.cases[case["case_id"]] = case
            for tombstone in body["tombstones"]:
                self.cases.pop(tombstone["case_id"], None)
            self.cursor = body["cursor"]
            self.hlc.receive(body["server_hlc"])
            if not body["more"]:
                return body


def enrol(client: FlaskClient, username: str, suite: str = "mlkem768x25519") -> Tablet:
    code = devices_service.issue_code(username, 3600).code
    key = generate_signing_key()
    response = client.post("/api/v1/devices/enroll", json={
        "code": code, "public_key": encode_signing_public_key(key.public_key()), "suite": suite,
    })
    assert response.status_code == 201, response.json
    body = response.json
    return Tablet(client, body["device_id"], body["device_token"], key, body["server_keys"],
                  body["receipt_key"], suite)


def staff_headers(client: FlaskClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login",
                           json={"username": username, "password": password})
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}
