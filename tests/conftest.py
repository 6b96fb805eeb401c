"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``FIELDSYNC_TEST_POSTGRES_URL`` (default: the local server at
127.0.0.1:5432 as user ``postgres``). Each test session creates its own database and drops it at
the end; each test starts from empty tables. Off CI, PostgreSQL tests skip when no server answers;
with ``CI=true`` they fail instead, and any skipped test fails the run.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from fieldsync import create_app
from fieldsync.extensions import db

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("FIELDSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin_conninfo() -> str:
    return PG_URL.replace("postgresql+psycopg://", "postgresql://")


class PostgresDatabase:
    """One throw-away database for this test session, migrated once, emptied between tests."""

    def __init__(self) -> None:
        self.name = f"fieldsync_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.error: str | None = None
        self.url: str | None = None
        self.tables: list[str] = []

    def create(self) -> None:
        try:
            with psycopg.connect(_pg_admin_conninfo(), autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
        except psycopg.Error as exc:
            self.error = str(exc).strip().splitlines()[0]
            return
        base = _pg_admin_conninfo().rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"

    def drop(self) -> None:
        if self.url is None:
            return
        with psycopg.connect(_pg_admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase]:
    database = PostgresDatabase()
    database.create()
    yield database
    database.drop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is faster)."""
    directory = tmp_path_factory.mktemp("sqlite-template")
    app = create_app({"DATA_DIR": str(directory), "RECOVERY_INTERVAL": 0})
    with app.app_context():
        from fieldsync import database

        database.upgrade(db.engine)
        db.engine.dispose()
    return directory / "fieldsync.db"


_pg_migrated: set[str] = set()


def _reset_postgres(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            tables = [
                row[0]
                for row in conn.execute(text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                ))
            ]
            if tables:
                conn.execute(text("SET session_replication_role = replica"))
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                conn.execute(text("SET session_replication_role = DEFAULT"))
                conn.execute(text(
                    "INSERT INTO counters (name, value) VALUES ('sync', 0), ('received', 0), "
                    "('case_number', 0)"
                ))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> str:
    """URL of an empty, migrated database of the parametrised kind."""
    if request.param == "sqlite":
        target = tmp_path / "data" / "fieldsync.db"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(sqlite_template, target)
        return f"sqlite:///{target}"
    pg: PostgresDatabase = request.getfixturevalue("postgres_database")
    if pg.url is None:
        message = f"PostgreSQL not reachable at {PG_URL}: {pg.error}"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    if pg.url not in _pg_migrated:
        app = create_app({"DATABASE_URL": pg.url, "DATA_DIR": str(tmp_path / "pgmigrate")})
        with app.app_context():
            from fieldsync import database

            database.upgrade(db.engine)
            db.engine.dispose()
        _pg_migrated.add(pg.url)
    else:
        _reset_postgres(pg.url)
    return pg.url


@pytest.fixture
def app_config(database_url: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": "test-secret",
        "RECOVERY_INTERVAL": 0,
        "TESTING": True,
    }


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    application = create_app(app_config)
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_client()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres_only`` need real concurrent writers: their SQLite variant is
    deselected (not skipped, so CI's no-skip rule holds)."""
    keep, drop = [], []
    for item in items:
        param = getattr(item, "callspec", None)
        backend = param.params.get("database_url") if param else None
        if item.get_closest_marker("postgres_only") and backend == "sqlite":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On CI a skipped test is a failure: PostgreSQL and browser tests must run."""
    if not ON_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        if reporter:
            reporter.write_line(f"CI=true: {skipped} test(s) skipped; skips are failures on CI",
                                red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
