"""Operator CLI: forms, devices, keys, cases and conflicts, including their failure modes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from fieldsync.cli import cli
from fieldsync.extensions import db
from fieldsync.models import AuditEntry
from tests.server.support import INTAKE, UPDATE, enrol


@pytest.fixture
def run(app):
    runner = CliRunner(env={"FIELDSYNC_DATABASE_URL": app.config["DATABASE_URL"],
                            "FIELDSYNC_DATA_DIR": app.config["DATA_DIR"]})

    def invoke(*args: str, code: int = 0) -> str:
        db.session.remove()  # end the test's own transaction: SQLite has one writer
        result = runner.invoke(cli, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def write_form(tmp_path: Path, document: dict, name: str = "form.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    return str(path)


def test_forms_validate_publish_list_retire(world, run, tmp_path) -> None:
    good = dict(UPDATE, form_id="t_extra")
    path = write_form(tmp_path, good)
    assert "ok (t_extra v1" in run("forms", "validate", path)

    bad = dict(good, fields=[dict(good["fields"][0], relevant="agee > 1")])
    bad_path = write_form(tmp_path, bad, "bad.yaml")
    output = run("forms", "validate", bad_path, code=1)
    assert "fields[0].relevant: unknown field 'agee'" in output

    broken = tmp_path / "broken.yaml"
    broken.write_text("form_id: [unclosed")
    assert "not valid YAML" in run("forms", "publish", str(broken), code=1)
    # one bad file: nothing of the batch is published
    run("forms", "publish", path, bad_path, code=1)
    assert "t_extra" not in run("forms", "list")

    assert "t_extra v1 published" in run("forms", "publish", path)
    assert "already published, unchanged" in run("forms", "publish", path)
    changed = write_form(tmp_path, dict(good, title={"ro": "Alt", "en": "Other"}), "c.yaml")
    assert "is published with different content" in run("forms", "publish", changed, code=1)
    rows = json.loads(run("forms", "list", "--json"))
    assert {"form_id": "t_extra", "version": 1, "state": "published"}.items() <= \
        next(r for r in rows if r["form_id"] == "t_extra").items()
    assert "retired" in run("forms", "retire", "t_extra", "1")
    assert "no form t_extra version 7" in run("forms", "retire", "t_extra", "7", code=1)


def test_enrolment_codes_devices_and_revocation(world, run, app, tmp_path) -> None:
    qr = tmp_path / "code.png"
    output = run("devices", "enroll-code", "--user", "ion", "--expires", "30m", "--qr", str(qr))
    assert output.startswith("enrolment code for ion: ")
    assert qr.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert oct(qr.stat().st_mode & 0o777) == "0o600"
    assert "only officers and supervisors" in run("devices", "enroll-code", "--user", "ana",
                                                  code=1)
    assert "invalid duration" in run("devices", "enroll-code", "--user", "ion", "--expires",
                                     "soon", code=1)
    assert "no user 'nobody'" in run("devices", "enroll-code", "--user", "nobody", code=1)

    ion = enrol(world, "ion")
    listing = json.loads(run("devices", "list", "--json"))
    assert [d["device_id"] for d in listing] == [ion.device_id]
    assert f"device {ion.device_id} (ion) revoked" in run("devices", "revoke", ion.device_id)
    assert "already revoked" in run("devices", "revoke", ion.device_id, code=1)
    response = world.get("/api/v1/sync/pull", headers=ion.auth)
    assert response.status_code == 401 and response.json["code"] == "device_revoked"


def test_key_rotation_keeps_old_envelopes_openable(world, run) -> None:
    ion = enrol(world, "ion")
    sealed_under_old = ion.seal(INTAKE, {"full_name": "Old key"})
    old_id = ion.recipient().key_id
    output = run("keys", "rotate")
    new_id = output.split(": ")[1].split()[0]
    assert new_id != old_id
    listing = run("keys", "list")
    assert f"{old_id}" in listing and "decrypt only" in listing
    assert ion.push_one(sealed_under_old)["status"] == "accepted"

    keys = world.get("/api/v1/sync/keys", headers=ion.auth).json["server_keys"]
    assert new_id in [k["key_id"] for k in keys]
    assert "is current" in run("keys", "retire", new_id, code=1)
    assert f"key {old_id} retired" in run("keys", "retire", old_id)
    late = ion.seal(INTAKE, {"full_name": "Too late"})  # still sealed to the retired key
    result = ion.push_one(late)
    assert (result["status"], result["code"]) == ("rejected", "unknown_key")


def test_cases_and_conflicts_from_the_cli(world, run) -> None:
    ion, other = enrol(world, "ion"), enrol(world, "ion")
    case_id = str(uuid.uuid4())
    ion.push_one(ion.seal(INTAKE, {"full_name": "Dana Lupu", "address": "A 1"},
                          case_id=case_id))
    ion.pull()
    other.pull()
    ion.push_one(ion.seal(UPDATE, {"address": "B 2"}, case_id=case_id))
    other.push_one(other.seal(UPDATE, {"address": "C 3"}, case_id=case_id))

    shown = run("cases", "show", case_id, "--as", "ana")
    assert "Dana Lupu" in shown and "CONFLICT" in shown
    assert "pass --as" in run("conflicts", "list", code=1)  # no user called admin here
    [conflict] = json.loads(run("conflicts", "list", "--json", "--as", "root"))
    assert sorted(c["value"] for c in conflict["candidates"]) == ["B 2", "C 3"]

    assert "not JSON" in run("conflicts", "resolve", conflict["conflict_id"], "--value",
                             "B 2", "--reason", "x", "--as", "ana", code=1)
    assert "use a reviewer or admin" in run("conflicts", "resolve", conflict["conflict_id"],
                                            "--value", '"B 2"', "--reason", "x", "--as",
                                            "ion", code=1)
    output = run("conflicts", "resolve", conflict["conflict_id"], "--value", '"B 2"',
                 "--reason", "confirmed by phone", "--as", "ana")
    assert "resolved: address = \"B 2\"" in output
    assert "no open conflicts" in run("conflicts", "list", "--as", "root")
    assert "already resolved" in run("conflicts", "resolve", conflict["conflict_id"], "--value",
                                     '"C 3"', "--reason", "x", "--as", "ana", code=1)
    assert f"no case {uuid.UUID(int=0)}" in run("cases", "show", str(uuid.UUID(int=0)), "--as",
                                                "ana", code=1)

    actions = {(e.action, e.via) for e in db.session.scalars(db.select(AuditEntry))}
    assert {("case.read", "cli"), ("conflict.list", "cli"), ("conflict.resolve", "cli")} <= \
        actions
