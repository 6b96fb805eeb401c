"""``fieldsync-client`` error handling and output, with click's runner (and once for real)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from flask import Flask

from sync_client import Client
from sync_client.cli import cli
from tests.client import answers
from tests.client.conftest import PASSPHRASE

CLIENT_SCRIPT = str(Path(sys.executable).with_name("fieldsync-client"))


def run(home: Path, *args: str, passphrase: str | None = PASSPHRASE,
        stdin: str | None = None) -> Result:
    env = {"FIELDSYNC_CLIENT_PASSPHRASE": passphrase}
    return CliRunner().invoke(cli, ["--home", str(home), "--retries", "1", *args], env=env,
                              input=stdin)


def error_line(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture
def tablet(make_tablet: Callable[..., Client]) -> Client:
    """An enrolled, pulled tablet with one case of its own."""
    client = make_tablet()
    client.fill("case_intake", answers.intake("Cli Case"))
    client.push()
    client.pull()
    client.close()  # the CLI opens the store itself
    return client


def case_of(tablet: Client) -> str:
    return str(next(c["case_id"] for c in json.loads(run(tablet.home, "cases", "--json").stdout)
                    if c["properties"]["name"]["value"] == "Cli Case"))


def test_fill_lists_every_field_error_and_stores_nothing(tablet: Client, tmp_path: Path) -> None:
    bad = {**answers.home_visit(), "notes": "short", "concerns": ["none", "weapons"]}
    del bad["outcome"]
    path = tmp_path / "visit.json"
    path.write_text(json.dumps(bad))
    result = run(tablet.home, "fill", "home_visit", "--case", case_of(tablet), "--answers",
                 str(path))
    lines = result.stderr.strip().splitlines()
    assert "outcome: required" in lines
    assert any(line.startswith("notes: ") for line in lines)
    assert error_line(result).startswith("Error: the answers do not pass form home_visit v1")
    assert result.stdout == ""
    assert json.loads(run(tablet.home, "status", "--json").stdout)["outbox"] == []


def test_fill_reads_answers_from_stdin(tablet: Client) -> None:
    result = run(tablet.home, "fill", "home_visit", "--case", case_of(tablet), "--answers", "-",
                 stdin=json.dumps(answers.home_visit()))
    assert result.exit_code == 0, result.stderr
    assert "1 in the outbox" in result.stdout
    assert "Seen at home" not in result.stdout + result.stderr  # answers are never echoed


@pytest.mark.parametrize(("args", "message"), [
    (["fill", "home_visit"], "Error: form home_visit updates an existing case: give --case"),
    (["fill", "home_visit", "--case", "00000000-0000-4000-8000-000000000000"],
     "Error: case 00000000-0000-4000-8000-000000000000 is not on this tablet"),
    (["fill", "unknown_form"], "Error: form unknown_form is not on this tablet"),
])
def test_fill_usage_errors_are_one_line(tablet: Client, tmp_path: Path, args: list[str],
                                        message: str) -> None:
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(answers.home_visit()))
    assert error_line(run(tablet.home, *args, "--answers", str(path))).startswith(message)


def test_bad_answer_files(tablet: Client, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert error_line(run(tablet.home, "fill", "case_intake", "--answers", str(broken))) \
        .startswith(f"Error: {broken}: not valid JSON")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    assert error_line(run(tablet.home, "fill", "case_intake", "--answers", str(listed))) \
        == f"Error: {listed}: the answers must be a JSON object"


def test_unreachable_server_is_one_line_and_keeps_the_outbox(tablet: Client) -> None:
    run(tablet.home, "fill", "case_intake", "--answers", "-", stdin=json.dumps(answers.intake()))
    line = error_line(run(tablet.home, "push"))
    assert line.startswith("Error: cannot reach http://127.0.0.1:9: ConnectError")
    assert len(json.loads(run(tablet.home, "status", "--json").stdout)["outbox"]) == 1
    assert error_line(run(tablet.home, "pull")).startswith("Error: cannot reach")


def test_wrong_passphrase_and_missing_store(tablet: Client, tmp_path: Path) -> None:
    assert error_line(run(tablet.home, "status", passphrase="guess")) == \
        f"Error: wrong passphrase for {tablet.home}"
    assert error_line(run(tmp_path / "none", "cases")) == (
        f"Error: no client store in {tmp_path / 'none'}: run 'fieldsync-client enroll' first")


def test_passphrase_prompt_when_not_in_the_environment(tablet: Client) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tablet.home), "status", "--json"],
                                input=f"{PASSPHRASE}\n", env={"FIELDSYNC_CLIENT_PASSPHRASE": None})
    assert result.exit_code == 0, result.stderr
    assert PASSPHRASE not in result.output  # hidden input
    assert json.loads(result.stdout)["user"]["username"] == "ion.popescu"


def test_listings_and_status(server_app: Flask, tablet: Client) -> None:
    forms = json.loads(run(tablet.home, "forms", "--json").stdout)
    assert {"form_id": "case_intake", "version": 1, "mode": "create", "title": "Case intake"} \
        .items() <= next(f for f in forms if f["form_id"] == "case_intake").items()
    table = run(tablet.home, "forms").stdout.splitlines()
    assert table[0].split() == ["FORM", "VERSION", "MODE", "TITLE"]
    cases = run(tablet.home, "cases").stdout
    assert "Cli Case" in cases
    # A rejection shows up in status with its code, detail and field errors.
    run(tablet.home, "fill", "home_visit", "--case", case_of(tablet), "--answers", "-",
        stdin=json.dumps(answers.home_visit()))
    server_app.config["FORM_SETTINGS"] = {"max_days_to_next_contact": 7}
    with Client(tablet.home, PASSPHRASE, transport=httpx.WSGITransport(app=server_app)) as client:
        assert [r["code"] for r in client.push().rejected] == ["invalid_answers"]
    status = run(tablet.home, "status").stdout
    assert "rejected:  1" in status
    assert "invalid_answers: the answers do not pass the form's validation" in status
    assert "    next_contact_date: " in status


def test_the_console_script(tmp_path: Path) -> None:
    result = subprocess.run([CLIENT_SCRIPT, "--home", str(tmp_path / "none"), "status"],
                            capture_output=True, text=True, timeout=60,
                            env={"FIELDSYNC_CLIENT_PASSPHRASE": "x", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (f"Error: no client store in {tmp_path / 'none'}: run "
                             "'fieldsync-client enroll' first\n")


def test_sync_client_never_imports_the_server() -> None:
    code = ("import json, sys, sync_client, sync_client.cli\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('flask', 'sqlalchemy', 'flask_sqlalchemy', 'werkzeug', 'alembic') "
            "or m.startswith(('fieldsync.models', 'fieldsync.services', 'fieldsync.api', "
            "'fieldsync.app', 'fieldsync.extensions')))\n"
            "print(json.dumps(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert json.loads(result.stdout) == []
