"""A tablet written from docs/envelope.md and docs/protocol.md alone, without sync_client."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from fieldsync.core.envelopes import Envelope, seal
from fieldsync.core.hlc import HLC
from fieldsync.core.keys import PublicKeyInfo, encode_signing_public_key, generate_signing_key
from tests.e2e.conftest import Server


class RawDevice:
    """Enrols over HTTP, seals with the core modules, pushes and pulls with plain httpx."""

    def __init__(self, server: Server, user: str) -> None:
        self.server = server
        self.key = generate_signing_key()
        response = httpx.post(f"{server.url}/api/v1/devices/enroll", json={
            "code": server.enrolment_code(user),
            "public_key": encode_signing_public_key(self.key.public_key())})
        assert response.status_code == 201, response.text
        body = response.json()
        self.id: str = body["device_id"]
        self.token: str = body["device_token"]
        self.receipt_key: str = body["receipt_key"]
        self.limits: dict[str, int] = body["limits"]
        self.recipient = PublicKeyInfo.from_wire(
            next(k for k in body["server_keys"] if k["suite"] == body["suite"]))
        self.hlc = HLC(self.id)

    def seal(self, form_id: str, answers: dict[str, Any], case_id: str,
             base: dict[str, Any] | None = None, *, version: int = 1) -> Envelope:
        submission_id = str(uuid.uuid4())
        payload = {"submission_id": submission_id, "form_id": form_id, "form_version": version,
                   "case_id": case_id, "base": base or {"revision": 0, "heads": []},
                   "answers": answers}
        return seal(payload, submission_id=submission_id, device_id=self.id, form_id=form_id,
                    form_version=version, hlc=self.hlc.now(), recipient=self.recipient,
                    signing_key=self.key)

    def post(self, path: str, headers: dict[str, str] | None = None,
             **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        return httpx.post(f"{self.server.url}{path}", headers=headers, **kwargs)

    def push(self, *items: Envelope | str) -> list[dict[str, Any]]:
        texts = [i.to_text() if isinstance(i, Envelope) else i for i in items]
        response = self.post("/api/v1/sync/push", json={"envelopes": texts})
        assert response.status_code == 200, response.text
        return list(response.json()["results"])

    def pull(self) -> dict[str, dict[str, Any]]:
        cases: dict[str, dict[str, Any]] = {}
        cursor = 0
        while True:
            response = httpx.get(f"{self.server.url}/api/v1/sync/pull",
                                 params={"cursor": cursor},
                                 headers={"Authorization": f"Bearer {self.token}"})
            assert response.status_code == 200, response.text
            page = response.json()
            cases.update({c["case_id"]: c for c in page["cases"]})
            for tombstone in page["tombstones"]:
                cases.pop(tombstone["case_id"], None)
            cursor = page["cursor"]
            if not page["more"]:
                return cases
