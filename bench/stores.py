"""Throw-away FieldSync stores: a SQLite data directory or a fresh PostgreSQL database.

A store is initialised the way an operator does it (``fieldsync init``: migrations, key ring,
form library) and removed at the end of the scenario.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask

PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


def pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


@dataclass
class Store:
    backend: str
    data_dir: Path
    database_url: str | None = None
    pg_name: str | None = None
    _app: Flask | None = field(default=None, repr=False)

    @classmethod
    def create(cls, backend: str, label: str) -> Store:
        data_dir = Path(tempfile.mkdtemp(prefix=f"fieldsync-bench-{label}-"))
        if backend == "sqlite":
            return cls(backend, data_dir)
        name = f"bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        pg_admin(f'CREATE DATABASE "{name}"')
        return cls(backend, data_dir, pg_url(name), name)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "fieldsync.db"

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"DATA_DIR": str(self.data_dir), "RECOVERY_INTERVAL": 0}
        if self.database_url:
            config["DATABASE_URL"] = self.database_url
        return config

    def env(self) -> dict[str, str]:
        """Environment for a server process over this store."""
        env = {"FIELDSYNC_DATA_DIR": str(self.data_dir)}
        if self.database_url:
            env["FIELDSYNC_DATABASE_URL"] = self.database_url
        return env

    @property
    def app(self) -> Flask:
        if self._app is None:
            from fieldsync import create_app

            self._app = create_app(self.config())
        return self._app

    def initialise(self) -> None:
        from fieldsync.services import setup

        setup.initialise(self.app, demo=False)

    def analyze(self) -> None:
        """Refresh planner statistics after bulk loading."""
        from fieldsync.extensions import db

        with self.app.app_context():
            with db.engine.connect() as conn:
                if self.backend == "postgresql":
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    conn.exec_driver_sql("ANALYZE")
                else:
                    conn.exec_driver_sql("ANALYZE")
                    conn.commit()

    def dispose(self) -> None:
        if self._app is not None:
            from fieldsync.extensions import db

            with self._app.app_context():
                db.session.remove()
                db.engine.dispose()
            self._app = None

    def destroy(self) -> None:
        self.dispose()
        if self.pg_name:
            pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def size_mb(self) -> float:
        if self.pg_name:
            with psycopg.connect(self.database_url or "", autocommit=True) as conn:
                row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
                return float(row[0]) / 2**20 if row else 0.0
        return sum(p.stat().st_size for p in self.data_dir.glob("fieldsync.db*")) / 2**20


def backends(choice: str) -> list[str]:
    return list(BACKENDS) if choice == "both" else [choice]
