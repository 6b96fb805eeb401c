"""Form versions: publishing rules, the manifest with ETag/304, the admin API."""

from __future__ import annotations

import copy

import pytest

from tests.server.support import INTAKE, UPDATE, enrol, staff_headers


@pytest.fixture
def admin(world):
    return staff_headers(world, "root", "admin-password-12")


def test_manifest_has_etag_and_answers_304(world) -> None:
    ion = enrol(world, "ion")
    first = world.get("/api/v1/sync/manifest", headers=ion.auth)
    assert first.status_code == 200
    assert [(f["form_id"], f["version"]) for f in first.json["forms"]] == [
        ("t_intake", 1), ("t_update", 1)]
    etag = first.headers["ETag"]
    cached = world.get("/api/v1/sync/manifest", headers={**ion.auth, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.data == b""

    form = world.get("/api/v1/sync/forms/t_update/1", headers=ion.auth)
    assert form.status_code == 200 and form.json["definition"]["form_id"] == "t_update"
    assert world.get("/api/v1/sync/forms/t_update/9", headers=ion.auth).status_code == 404
    assert world.get("/api/v1/sync/manifest").status_code == 401


def test_publishing_rules_through_the_admin_api(world, admin) -> None:
    ion = enrol(world, "ion")
    etag = world.get("/api/v1/sync/manifest", headers=ion.auth).headers["ETag"]

    same = world.post("/api/v1/admin/forms?publish=true", json=UPDATE, headers=admin)
    assert same.status_code == 200 and "unchanged" in same.json["message"]

    changed = copy.deepcopy(UPDATE)
    changed["title"]["en"] = "Update (test, changed)"
    refused = world.post("/api/v1/admin/forms?publish=true", json=changed, headers=admin)
    assert refused.status_code == 409
    assert refused.json["code"] == "form_version_immutable"
    assert "version 2" in refused.json["detail"]

    changed["version"] = 2
    draft = world.post("/api/v1/admin/forms", json=changed, headers=admin)
    assert draft.status_code == 201 and draft.json["state"] == "draft"
    # a draft is invisible to devices
    assert world.get("/api/v1/sync/manifest",
                     headers={**ion.auth, "If-None-Match": etag}).status_code == 304
    assert world.get("/api/v1/sync/forms/t_update/2", headers=ion.auth).status_code == 404

    published = world.post("/api/v1/admin/forms/t_update/2/publish", headers=admin)
    assert published.status_code == 200 and published.json["state"] == "published"
    manifest = world.get("/api/v1/sync/manifest", headers={**ion.auth, "If-None-Match": etag})
    assert manifest.status_code == 200
    assert ("t_update", 2) in [(f["form_id"], f["version"]) for f in manifest.json["forms"]]

    retired = world.post("/api/v1/admin/forms/t_update/1/retire", headers=admin)
    assert retired.status_code == 200 and retired.json["state"] == "retired"
    listing = world.get("/api/v1/admin/forms", headers=admin).json["forms"]
    assert {(f["form_id"], f["version"], f["state"]) for f in listing} == {
        ("t_intake", 1, "published"), ("t_update", 1, "retired"), ("t_update", 2, "published")}


def test_submissions_in_a_retired_version_are_still_accepted(world, admin) -> None:
    ion = enrol(world, "ion")
    text = ion.seal(INTAKE, {"full_name": "Sealed before retirement"})
    assert world.post("/api/v1/admin/forms/t_intake/1/retire", headers=admin).status_code == 200
    assert ion.push_one(text)["status"] == "accepted"


def test_invalid_definitions_are_refused_with_paths(world, admin) -> None:
    broken = copy.deepcopy(UPDATE)
    broken["version"] = 3
    broken["fields"][2]["relevant"] = "agee > 3"
    response = world.post("/api/v1/admin/forms", json=broken, headers=admin)
    assert response.status_code == 422
    assert response.json["code"] == "invalid_form_definition"
    assert {"path": "fields[2].relevant", "message": "unknown field 'agee'"} in \
        response.json["errors"]
    assert world.get("/api/v1/admin/forms/t_update/3", headers=admin).status_code == 404


def test_reviewers_cannot_publish(world) -> None:
    reviewer = staff_headers(world, "ana", "reviewer-password-1")
    response = world.post("/api/v1/admin/forms?publish=true", json=UPDATE, headers=reviewer)
    assert response.status_code == 403
