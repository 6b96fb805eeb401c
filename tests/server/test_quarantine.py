"""A revoked device: nothing it sends is applied; what it sealed before revocation waits for
review instead of being lost."""

from __future__ import annotations

import time
import uuid

from fieldsync.extensions import db
from fieldsync.models import Case, StoredEnvelope
from fieldsync.services import devices as devices_service
from tests.server.support import INTAKE, enrol, staff_headers


def test_revoked_device_envelopes_are_quarantined_then_reviewed(world) -> None:
    reviewer = staff_headers(world, "ana", "reviewer-password-1")
    ion = enrol(world, "ion")
    keep, drop = str(uuid.uuid4()), str(uuid.uuid4())
    before_keep = ion.seal(INTAKE, {"full_name": "Sealed offline"}, case_id=keep)
    before_drop = ion.seal(INTAKE, {"full_name": "Also offline"}, case_id=drop)
    # An envelope sealed in the millisecond of the revocation counts as after it (refused):
    # let the clock move on, as it would between sealing offline and a revocation.
    time.sleep(0.005)
    devices_service.revoke(ion.device_id)
    after = ion.seal(INTAKE, {"full_name": "After revocation"})

    assert world.get("/api/v1/sync/pull", headers=ion.auth).json["code"] == "device_revoked"
    results = ion.push(before_keep, before_drop, after)
    assert [r["status"] for r in results] == ["quarantined", "quarantined", "rejected"]
    assert results[2]["code"] == "device_revoked"
    assert "receipt" not in results[0]  # no receipt: the tablet keeps it in its outbox
    assert db.session.get(Case, keep) is None and db.session.get(Case, drop) is None

    listed = world.get("/api/v1/review/quarantine", headers=reviewer).json["envelopes"]
    assert {e["form_id"] for e in listed} == {"t_intake"} and len(listed) == 2
    keep_sid = next(e["submission_id"] for e in listed
                    if e["submission_id"] == results[0]["submission_id"])

    released = world.post(f"/api/v1/review/quarantine/{keep_sid}/release",
                          json={"reason": "tablet recovered, officer confirmed"},
                          headers=reviewer)
    assert released.status_code == 200 and released.json["status"] == "accepted"
    assert db.session.get(Case, keep).display_name == "Sealed offline"

    drop_sid = results[1]["submission_id"]
    discarded = world.post(f"/api/v1/review/quarantine/{drop_sid}/discard",
                           json={"reason": "duplicate of a paper record"}, headers=reviewer)
    assert discarded.status_code == 200 and discarded.json["state"] == "discarded"
    assert db.session.get(Case, drop) is None
    assert db.session.get(StoredEnvelope, drop_sid).state == "discarded"
    again = world.post(f"/api/v1/review/quarantine/{drop_sid}/release",
                       json={"reason": "changed my mind"}, headers=reviewer)
    assert again.status_code == 409
    assert world.get("/api/v1/review/quarantine", headers=reviewer).json["envelopes"] == []
