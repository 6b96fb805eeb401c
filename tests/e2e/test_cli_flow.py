"""The officer's day through ``fieldsync-client``: enrol, pull, fill offline, push, see the case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sync_client.cli import cli
from sync_client.store import Store
from tests.client import answers
from tests.e2e.conftest import FAST_KDF, PASSPHRASE, Server

pytestmark = pytest.mark.slow


class Tablet:
    def __init__(self, home: Path) -> None:
        self.home = home
        Store.create(home, PASSPHRASE, scrypt_n=FAST_KDF).close()  # fast KDF for the test

    def run(self, *args: str, ok: bool = True) -> Result:
        result = CliRunner().invoke(
            cli, ["--home", str(self.home), "--retries", "2", "--backoff", "0.01", *args],
            env={"FIELDSYNC_CLIENT_PASSPHRASE": PASSPHRASE})
        assert (result.exit_code == 0) is ok, (result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def fill(self, tmp_path: Path, form: str, answers: dict[str, Any], *extra: str) -> Result:
        path = tmp_path / f"{form}.json"
        path.write_text(json.dumps(answers))
        return self.run("fill", form, "--answers", str(path), *extra)


def test_officer_day_end_to_end(server: Server, tmp_path: Path) -> None:
    tablet = Tablet(tmp_path / "tablet")
    enrolled = tablet.run("enroll", "--server", server.url,
                          "--code", server.enrolment_code("ion.popescu"))
    assert "for ion.popescu (officer)" in enrolled.stdout

    pulled = tablet.run("pull")
    assert "downloaded form home_visit v1" in pulled.stderr
    forms = {(f["form_id"], f["mode"]) for f in tablet.json("forms")}
    assert {("case_intake", "create"), ("home_visit", "update")} <= forms

    # Offline: the server is down, filling still works and push keeps everything.
    server.stop()
    sealed = tablet.fill(tmp_path, "case_intake", answers.intake("Ana Offline"))
    assert "1 in the outbox" in sealed.stdout
    failed = tablet.run("push", ok=False)
    assert failed.stderr.strip().splitlines()[-1].startswith("Error: cannot reach ")
    assert len(tablet.json("status")["outbox"]) == 1
    server.start()

    pushed = tablet.run("push")
    assert "1 accepted" in pushed.stdout and "pushed 1/1" in pushed.stderr
    tablet.run("pull")
    [case] = [c for c in tablet.json("cases") if c["properties"]["name"]["value"] == "Ana Offline"]
    assert case["revision"] == 1
    assert case["case_number"].startswith("BV-")

    tablet.fill(tmp_path, "home_visit", answers.home_visit("Found at home, documents seen."),
                "--case", case["case_id"])
    assert "1 accepted" in tablet.run("push").stdout
    tablet.run("pull")
    [after] = [c for c in tablet.json("cases") if c["case_id"] == case["case_id"]]
    assert after["revision"] == 2
    assert after["properties"]["last_visit"]["value"].startswith("2025-04-01")
    assert "Found at home, documents seen." in json.dumps(after["properties"]["visit_notes"])

    status = tablet.json("status")
    assert status["outbox"] == [] and status["rejected"] == []
    assert status["cursor"] >= after["seq"] and status["last_push"] and status["last_pull"]
    human = tablet.run("status").stdout
    assert "outbox:    0 waiting" in human


def test_rejected_items_stay_visible_with_their_reasons(server: Server, tmp_path: Path) -> None:
    tablet = Tablet(tmp_path / "tablet")
    tablet.run("enroll", "--server", server.url, "--code", server.enrolment_code("ion.popescu"))
    tablet.run("pull")
    tablet.fill(tmp_path, "case_intake", answers.intake("Sealed To A Retired Key"))
    # Before the tablet syncs, the key it sealed to is rotated out and retired.
    server.admin("keys", "rotate")
    retired = [line.split()[0] for line in server.admin("keys", "list").splitlines()
               if "decrypt only" in line and "mlkem768x25519" in line]
    assert len(retired) == 1
    server.admin("keys", "retire", retired[0])
    before = server.snapshot()
    result = tablet.run("push", ok=False)
    assert "0 accepted, 0 duplicate, 1 rejected" in result.stdout
    assert "unknown_key" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: 1 submission(s) rejected")
    assert server.snapshot() == before
    status = tablet.run("status").stdout
    assert "outbox:    0 waiting" in status
    assert "rejected:  1" in status and "unknown_key" in status
    [rejected] = tablet.json("status")["rejected"]
    assert rejected["code"] == "unknown_key" and rejected["form_id"] == "case_intake"
