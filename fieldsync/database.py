"""Engine set-up (SQLite pragmas) and schema migrations with Alembic.

There is no ``create_all`` outside tests: :func:`upgrade` is the only way the schema is made.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import BindParameter, bindparam, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from fieldsync.errors import DatabaseUnavailable
from fieldsync.extensions import db

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_READ_ONLY: ContextVar[bool] = ContextVar("fieldsync_read_only", default=False)
_NO_SYNC: ContextVar[bool] = ContextVar("fieldsync_no_sync", default=False)


@contextmanager
def unsynced_commits() -> Iterator[None]:
    """Transactions that begin inside commit without waiting for the disk (SQLite
    ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``).

    Only for writes that no answer acknowledges on their own, such as storing a push's
    envelopes before they are processed: a crash of the server process loses nothing (the
    commit is in the log), and after a power loss the last such commits may be gone, but the
    tablet got no receipt for them and still has them. Every later synchronous commit makes
    them durable with itself: both databases write their log in order and flush all of it.
    """
    token = _NO_SYNC.set(True)
    try:
        yield
    finally:
        _NO_SYNC.reset(token)


@contextmanager
def read_only() -> Iterator[None]:
    """Run the enclosed queries in a transaction that only reads, and end it on leaving.

    On SQLite such a transaction starts with a plain ``BEGIN`` (a snapshot of the last commit:
    WAL readers never wait for the writer) instead of taking the write lock, with ``PRAGMA
    query_only`` on, so that a write attempted in it fails at once rather than racing with the
    writer. Entered inside an open transaction, it simply reads in that one. Objects loaded in
    it stay loaded (:func:`end_transaction`).
    """
    session = db.session()
    if session.in_transaction():
        yield
        return
    token = _READ_ONLY.set(True)
    try:
        yield
    except BaseException:
        _READ_ONLY.reset(token)
        session.rollback()
        raise
    _READ_ONLY.reset(token)
    end_transaction()


def end_transaction() -> None:
    """Commit, keeping loaded objects loaded: reading an expired attribute would open a new
    transaction, and on SQLite take the write lock. Queries that lock rows to change them
    re-read them (``populate_existing``)."""
    session = db.session()
    previous = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = previous


#: The expanding ``IN (...)`` parameter of the statements built once at import:
#: ``core(statement, {"ids": [...]})``.
IDS: BindParameter[Any] = bindparam("ids", expanding=True)


def core(statement: Any, parameters: Any = None) -> Any:
    """Execute a Core statement (no ORM entities) on the session's connection, in its
    transaction: the session's ORM execution layer costs ~80 us per statement even for Core
    ones (139 vs 58 us for the case-row preload). No autoflush: pending ORM objects are not
    written first, so use it only where none are pending or none matter to the statement."""
    return db.session.connection().execute(statement, parameters)


_TABLE_STATEMENTS: dict[tuple[str, str], Any] = {}


def _table_statement(model: type, kind: str) -> Any:
    key = (model.__name__, kind)
    statement = _TABLE_STATEMENTS.get(key)
    if statement is None:
        table = model.__table__  # type: ignore[attr-defined]
        if kind == "insert":
            statement = table.insert()
        else:  # update by primary key; the SET columns come from the parameters
            statement = table.update().where(
                *(column == bindparam(f"key_{column.name}") for column in table.primary_key))
        _TABLE_STATEMENTS[key] = statement
    return statement


def insert_rows(model: type, rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` (column name -> value, the same columns in each) in one executemany.

    A Core statement on the model's table: SQLAlchemy's ORM bulk path does the same SQL with
    per-row Python bookkeeping that cost ~1 ms per call in the push profile. Pending ORM
    objects are not flushed first: write the rows these depend on before, or with, them.
    """
    if rows:
        core(_table_statement(model, "insert"), rows)


def update_rows(model: type, rows: list[dict[str, Any]]) -> None:
    """UPDATE rows by primary key in one executemany: each dict holds the key column(s) and
    the columns to set (the same ones in each). Loaded ORM objects are not refreshed."""
    if not rows:
        return
    keys = [column.name for column in model.__table__.primary_key]  # type: ignore[attr-defined]
    core(_table_statement(model, "update"), [
        {**{f"key_{k}": row[k] for k in keys}, **{c: v for c, v in row.items() if c not in keys}}
        for row in rows])


FULL_SYNC = "PRAGMA synchronous=FULL"
#: What a transaction may have changed on its SQLite connection, and how to undo it.
RESETS = (("fieldsync_query_only", "PRAGMA query_only=OFF"), ("fieldsync_no_sync", FULL_SYNC))


def configure_engine(app: Flask) -> None:
    """Turn on WAL, foreign keys and a busy timeout for SQLite connections; on every
    database, honour :func:`unsynced_commits`."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            server = db.engine

        @event.listens_for(server, "begin")
        def _postgresql_begin(connection) -> None:  # type: ignore[no-untyped-def]
            if _NO_SYNC.get():  # for this transaction only
                connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        return
    busy_ms = int(float(app.config["SQLITE_BUSY_TIMEOUT"]) * 1000)
    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy issue BEGIN itself (pysqlite's own handling defers it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL, not NORMAL: in WAL mode NORMAL may roll back the last commits on power loss,
        # and a receipt tells the tablet it may delete its copy (see unsynced_commits for the
        # one exception).
        cursor.execute(FULL_SYNC)
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    lock = WriteLock(sqlite_path(engine), busy_ms / 1000)

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
        if _READ_ONLY.get():  # see read_only()
            connection.exec_driver_sql("BEGIN")
            connection.exec_driver_sql("PRAGMA query_only=ON")
            connection.info["fieldsync_query_only"] = True
            return
        # Take the write lock at BEGIN so that read-then-write transactions cannot deadlock.
        try:
            lock.acquire(connection.connection.dbapi_connection)
        except sqlite3.OperationalError as exc:  # as SQLite's own timeout would be reported
            raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
        try:
            if _NO_SYNC.get():  # outside the transaction; finish() puts FULL back
                connection.info["fieldsync_no_sync"] = True
                connection.exec_driver_sql("PRAGMA synchronous=NORMAL")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            lock.release(connection.connection.dbapi_connection)
            raise

    def finish(connection, statement: str) -> None:  # type: ignore[no-untyped-def]
        # The commit/rollback events come before SQLAlchemy's own call; finishing the
        # transaction here lets the next writer in at once (the later call finds no transaction
        # open and does nothing).
        dbapi_connection = connection.connection.dbapi_connection
        try:
            if dbapi_connection.in_transaction:
                dbapi_connection.execute(statement)
        finally:
            try:
                if connection.info.pop("fieldsync_query_only", False):
                    dbapi_connection.execute("PRAGMA query_only=OFF")
                if connection.info.pop("fieldsync_no_sync", False):
                    dbapi_connection.execute(FULL_SYNC)
            finally:
                lock.release(dbapi_connection)

    def returned(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        resets = [statement for key, statement in RESETS
                  if record is not None and record.info.pop(key, False)]
        if resets and dbapi_connection is not None:
            try:  # a transaction the pool rolled back: the next one may write, durably
                for statement in resets:
                    dbapi_connection.execute(statement)
            except sqlite3.Error:
                record.invalidate()
        lock.release(dbapi_connection)  # never leave the lock with a pooled or closed connection

    event.listen(engine, "commit", lambda connection: finish(connection, "COMMIT"))
    event.listen(engine, "rollback", lambda connection: finish(connection, "ROLLBACK"))
    event.listen(engine, "checkin", returned)
    event.listen(engine, "close", returned)


def sqlite_path(engine: Engine) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


class WriteLock:
    """Hands SQLite's write lock from one transaction to the next without delay.

    Every transaction takes SQLite's write lock (``BEGIN IMMEDIATE``). Waiters in SQLite's own
    busy handler sleep in steps of up to 100 ms, so the lock sat idle after each commit while
    8 server threads slept. Here the threads of a process queue on a mutex, and the server
    processes on an ``flock`` of ``<database>-writelock`` (polled every 0.2 ms), so the
    next writer starts when the previous one commits. Waiting longer than the busy timeout
    raises ``database is locked``, as SQLite would. A process that dies loses its ``flock``.
    This only decides who waits how: SQLite's own lock still guards every write.
    """

    def __init__(self, database: Path | None, timeout: float) -> None:
        self.timeout = timeout
        self.path = None if database is None else database.with_name(database.name + "-writelock")
        self._reset()

    def _reset(self) -> None:
        # Per process: a forked worker (gunicorn --preload) must not share the parent's mutex
        # or its open lock file (an flock is per open file, so the two would not exclude).
        self.pid = os.getpid()
        self.mutex = threading.Lock()
        self.holder: Any = None
        self.fd: int | None = None

    def acquire(self, dbapi_connection: Any) -> None:
        if self.pid != os.getpid():
            self._reset()
        deadline = time.monotonic() + self.timeout
        if not self.mutex.acquire(timeout=self.timeout):
            raise sqlite3.OperationalError("database is locked")
        try:
            if self.path is not None:
                self._lock_file(deadline)
        except BaseException:
            self.mutex.release()
            raise
        self.holder = dbapi_connection

    def _lock_file(self, deadline: float) -> None:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # type: ignore[arg-type]
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                # The next writer starts up to one interval after the commit: with two busy
                # workers 0.2 ms instead of 1 ms gave 3.7% more pushes; a poll costs ~22 us.
                time.sleep(0.0002)

    def release(self, dbapi_connection: Any) -> None:
        if self.holder is not dbapi_connection or dbapi_connection is None:
            return
        self.holder = None
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.mutex.release()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Bring the schema to the newest migration; returns (before, after) revisions."""
    try:
        before = current_revision(engine)
        command.upgrade(alembic_config(engine), "head")
        return before, current_revision(engine)
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(f"cannot migrate the database: {first_line(exc)}") from exc


def ping(engine: Engine) -> None:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(f"database unreachable: {first_line(exc)}") from exc


def first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__
