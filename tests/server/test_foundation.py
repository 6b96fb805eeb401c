"""The application starts, migrates, answers /healthz and renders every error as a problem."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text

from fieldsync import create_app, database
from fieldsync.cli import cli
from fieldsync.extensions import db
from tests.conftest import ON_CI, PG_URL, _pg_admin_conninfo


def test_healthz_reports_reachable_database(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ok", "database": "reachable", "schema": "0004", "schema_current": True,
    }


def test_unknown_path_is_problem_json(client) -> None:
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "not_found"
    assert response.json["status"] == 404


def test_wrong_method_is_problem_json(client) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.json["code"] == "method_not_allowed"


def test_oversized_body_is_refused(app, client) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/healthz", data=b"x" * 4096, content_type="application/json")
    assert response.status_code == 413
    assert response.json["code"] == "payload_too_large"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path):
    """A database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"fieldsync_empty_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(_pg_admin_conninfo(), autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        if ON_CI:
            pytest.fail(f"PostgreSQL not reachable at {PG_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    yield _pg_admin_conninfo().rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(_pg_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_apply_from_empty_and_are_idempotent(empty_database_url, tmp_path) -> None:
    app = create_app({"DATABASE_URL": empty_database_url, "DATA_DIR": str(tmp_path)})
    with app.app_context():
        try:
            assert database.current_revision(db.engine) is None
            assert database.upgrade(db.engine) == (None, "0004")
            tables = set(inspect(db.engine).get_table_names())
            assert {"users", "services", "sites", "cases", "case_events", "envelopes",
                    "devices", "form_versions", "audit_log", "conflicts"} <= tables
            assert database.upgrade(db.engine) == ("0004", "0004")
            with db.engine.connect() as conn:
                counters = dict(conn.execute(text("SELECT name, value FROM counters")).all())
            assert counters == {"sync": 0, "received": 0, "case_number": 0}
        finally:
            db.engine.dispose()


def test_sqlite_commits_are_durable_before_a_receipt_is_sent(tmp_path) -> None:
    # A receipt lets the tablet delete its copy, so a commit must survive a power loss: WAL
    # with synchronous=FULL (NORMAL may roll back the last commits), foreign keys enforced.
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}",
                      "DATA_DIR": str(tmp_path)})
    with app.app_context():
        try:
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        finally:
            db.engine.dispose()


def test_event_and_audit_logs_refuse_updates_and_deletes(app) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO audit_log (at, actor, action, target_type, target_id, via) "
            "VALUES (CURRENT_TIMESTAMP, 'admin', 'case.read', 'case', 'c1', 'api')"
        ))
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT actor FROM audit_log")).scalars().all() == ["admin"]


@pytest.fixture
def cli_env(monkeypatch, app_config):
    monkeypatch.setenv("FIELDSYNC_DATABASE_URL", app_config["DATABASE_URL"])
    monkeypatch.setenv("FIELDSYNC_DATA_DIR", app_config["DATA_DIR"])
    return CliRunner()


def test_cli_init_and_users(cli_env) -> None:
    result = cli_env.invoke(cli, ["init", "--demo"])
    assert result.exit_code == 0, result.output
    assert "schema is current (0004)" in result.output
    assert "demo data loaded" in result.output

    result = cli_env.invoke(cli, ["users", "add", "elena.dobre", "--role", "officer",
                                  "--service", "CJ"])
    assert result.exit_code == 0, result.output
    assert "created officer elena.dobre" in result.output

    listing = cli_env.invoke(cli, ["users", "list", "--json"])
    rows = {row["username"]: row for row in __import__("json").loads(listing.output)}
    assert rows["elena.dobre"] == {"username": "elena.dobre", "role": "officer",
                                   "service": "CJ", "site": None, "active": True}
    assert rows["dan.parc"]["site"] == "BV-PARC"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "add", "ion.popescu", "--role", "officer", "--service", "BV"],
         "Error: user 'ion.popescu' already exists"),
        (["users", "add", "someone", "--role", "boss"],
         "Error: unknown role 'boss': choose one of officer, supervisor, reviewer, admin"),
        (["users", "add", "someone", "--role", "officer"],
         "Error: an officer needs a probation service: pass --service CODE"),
        (["users", "add", "someone", "--role", "officer", "--service", "ZZ"],
         "Error: no probation service with code 'ZZ'"),
        (["users", "add", "Bad Name", "--role", "admin"], "Error: invalid user name 'Bad Name'"),
    ],
)
def test_cli_users_add_refuses_bad_input(cli_env, args, message) -> None:
    assert cli_env.invoke(cli, ["init", "--demo"]).exit_code == 0
    before = cli_env.invoke(cli, ["users", "list", "--json"]).output
    result = cli_env.invoke(cli, args)
    assert result.exit_code == 1
    assert result.output.startswith(message)
    assert len(result.output.strip().splitlines()) == 1
    assert cli_env.invoke(cli, ["users", "list", "--json"]).output == before


def test_cli_unreachable_database_is_one_line(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FIELDSYNC_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("FIELDSYNC_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: database unreachable:")
    assert len(result.output.strip().splitlines()) == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_initialises_a_new_database_and_answers_healthz(tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "FIELDSYNC_DATA_DIR": str(tmp_path / "data")}
    env.pop("FIELDSYNC_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "fieldsync", "serve", "--port", str(port), "--demo"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "server did not start in 30 s"
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["database"] == "reachable"
        assert response.headers["server"] == "fieldsync"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "schema upgraded from empty to 0004" in output
    assert f"FieldSync listening on http://127.0.0.1:{port}" in output
    assert "log in: admin / " in output


def test_serve_on_a_port_in_use_says_so_in_one_line_and_prints_no_logins(tmp_path) -> None:
    env = {**os.environ, "FIELDSYNC_DATA_DIR": str(tmp_path / "data")}
    env.pop("FIELDSYNC_DATABASE_URL", None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "fieldsync", "serve", "--port", str(port), "--demo"],
            env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; is another server "
        "running there? Stop it or choose another --port")
    assert "log in" not in done.stdout and "enrolment code" not in done.stdout


def test_init_refuses_form_settings_of_the_wrong_type(cli_env, monkeypatch) -> None:
    monkeypatch.setenv("FIELDSYNC_FORM_SETTINGS", '{"hours_per_day": "eight"}')
    result = cli_env.invoke(cli, ["init"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: FORM_SETTINGS does not fit form case_intake v1: setting 'hours_per_day' of "
        "form 'case_intake' v1 expects an integer, got 'eight'")


def sqlite_app(tmp_path: Path, **extra: Any):  # type: ignore[no-untyped-def]
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
                      "DATA_DIR": str(tmp_path), **extra})
    with app.app_context():
        database.upgrade(db.engine)
    return app


def test_sqlite_writers_take_turns_and_the_next_starts_when_the_first_commits(tmp_path) -> None:
    app = sqlite_app(tmp_path)
    events: list[str] = []
    first_has_lock = threading.Event()

    def first() -> None:
        with app.app_context():
            db.session.execute(text("INSERT INTO counters (name, value) VALUES ('a', 1)"))
            events.append("first began")
            first_has_lock.set()
            time.sleep(0.3)
            events.append("first commits")
            db.session.commit()
            db.session.remove()

    def second() -> None:
        first_has_lock.wait(5)
        with app.app_context():
            db.session.execute(text("INSERT INTO counters (name, value) VALUES ('b', 2)"))
            events.append("second began")
            db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    with app.app_context():
        try:
            names = set(db.session.scalars(text("SELECT name FROM counters")))
        finally:
            db.session.remove()
            db.engine.dispose()
    assert events == ["first began", "first commits", "second began"]
    assert {"a", "b"} <= names


def test_sqlite_writer_held_by_another_process_times_out_as_locked_and_recovers(tmp_path) -> None:
    import fcntl

    app = sqlite_app(tmp_path, SQLITE_BUSY_TIMEOUT=0.3)
    lock_file = tmp_path / "w.db-writelock"
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another server process is writing
    try:
        with app.app_context(), pytest.raises(Exception, match="database is locked"):
            db.session.execute(text("SELECT 1"))
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    with app.app_context():
        try:
            db.session.execute(text("INSERT INTO counters (name, value) VALUES ('c', 3)"))
            db.session.commit()
            # A failed transaction gives the lock back: the next one goes ahead.
            with pytest.raises(Exception, match="UNIQUE"):
                db.session.execute(text("INSERT INTO counters (name, value) VALUES ('c', 4)"))
            db.session.rollback()
            assert db.session.scalar(text("SELECT value FROM counters WHERE name = 'c'")) == 3
        finally:
            db.session.remove()
            db.engine.dispose()


def test_sqlite_read_only_transactions_do_not_wait_for_the_writer_and_cannot_write(
        tmp_path) -> None:
    import fcntl

    app = sqlite_app(tmp_path, SQLITE_BUSY_TIMEOUT=0.3)
    fd = os.open(tmp_path / "w.db-writelock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another server process is writing
    try:
        with app.app_context():
            try:
                with database.read_only():
                    names = set(db.session.scalars(text("SELECT name FROM counters")))
                assert {"sync", "received", "case_number"} <= names
                with pytest.raises(Exception, match="readonly"), database.read_only():
                    db.session.execute(text("INSERT INTO counters (name, value) VALUES ('r', 1)"))
            finally:
                db.session.remove()
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    with app.app_context():
        try:  # the connection is writable again once the read-only transaction ended
            db.session.execute(text("INSERT INTO counters (name, value) VALUES ('w', 1)"))
            db.session.commit()
            assert db.session.scalar(text("SELECT value FROM counters WHERE name = 'w'")) == 1
            assert db.session.scalar(text("SELECT count(*) FROM counters WHERE name = 'r'")) == 0
        finally:
            db.session.remove()
            db.engine.dispose()


def test_only_unsynced_transactions_commit_without_flushing_the_log(app) -> None:
    """The receive transaction of a push commits without waiting for the disk; every other
    transaction, and the next one on the same connection, still flushes (a receipt promises
    that the write survives a power loss)."""
    sqlite = app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    flushed, unflushed = (2, 1) if sqlite else ("on", "off")  # FULL / NORMAL on SQLite

    def setting() -> object:
        query = "PRAGMA synchronous" if sqlite else "SHOW synchronous_commit"
        return db.session.scalar(text(query))

    with app.app_context():
        try:
            assert setting() == flushed
            db.session.commit()
            with database.unsynced_commits():
                db.session.execute(text("INSERT INTO counters (name, value) VALUES ('u', 1)"))
                assert setting() == unflushed
                db.session.commit()
            assert setting() == flushed
            db.session.commit()
            with database.unsynced_commits():
                assert setting() == unflushed
                db.session.rollback()
            assert setting() == flushed
            assert db.session.scalar(text("SELECT value FROM counters WHERE name = 'u'")) == 1
            db.session.rollback()
        finally:
            db.session.remove()


def test_cli_passwords_read_from_stdin_are_the_ones_that_log_in(cli_env, client) -> None:
    """``users add --password-stdin`` and ``users passwd --password-stdin`` take the first line
    of standard input as the password, print no password, and the old one stops working."""
    assert cli_env.invoke(cli, ["init", "--demo"]).exit_code == 0
    added = cli_env.invoke(cli, ["users", "add", "vera.staff", "--role", "reviewer",
                                 "--service", "BV", "--password-stdin"],
                           input="first-password-123\nignored second line\n")
    assert added.exit_code == 0, added.output
    assert "first-password-123" not in added.output

    def login(password: str) -> int:
        response = client.post("/api/v1/auth/login",
                               json={"username": "vera.staff", "password": password})
        db.session.remove()  # SQLite has one writer: end this side's transaction
        return response.status_code

    assert login("first-password-123") == 200
    changed = cli_env.invoke(cli, ["users", "passwd", "vera.staff", "--password-stdin"],
                             input="second-password-456\n")
    assert changed.exit_code == 0, changed.output
    assert "second-password-456" not in changed.output
    assert login("first-password-123") == 401
    assert login("second-password-456") == 200
