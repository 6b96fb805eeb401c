"""The tablet's local store: one SQLite file whose sensitive content is encrypted at rest.

Layout of ``<home>/store.db`` (see "Tablet store" in ``docs/protocol.md``):

* ``meta`` (clear): the store format, the scrypt salt and parameters, and a *verifier* blob.
* ``state`` (name -> encrypted JSON): the enrolment (device id, device private key, device
  token, server address), the server keys, the manifest, the pull cursor, the HLC, last syncs.
* ``forms`` (form id, version -> encrypted definition), ``cases`` (case id -> encrypted case).
* ``outbox`` (submission id, form id/version, created time in clear -> encrypted envelope).
* ``rejected`` (submission id, form id/version, times in clear -> encrypted envelope, code,
  detail and errors).

The key is ``scrypt(passphrase, salt, n, r, p)`` (32 bytes); every blob is
``nonce (12 bytes) || AES-256-GCM(key, nonce, plaintext, aad = table || 0x00 || row id)``, so a
blob moved to another row or table does not decrypt. The verifier is a known text encrypted
the same way: a passphrase that cannot open it is reported as wrong before anything is read.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from sync_client.errors import StoreError, WrongPassphrase

FILENAME = "store.db"
FORMAT = "fieldsync-client-store/1"
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAX_N = 2**20
NONCE_LENGTH = 12
VERIFIER_TEXT = b"fieldsync-client store verifier v1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS forms (
    form_id TEXT NOT NULL, version INTEGER NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (form_id, version));
CREATE TABLE IF NOT EXISTS cases (case_id TEXT PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    position INTEGER PRIMARY KEY AUTOINCREMENT, submission_id TEXT NOT NULL UNIQUE,
    form_id TEXT NOT NULL, form_version INTEGER NOT NULL, created_at TEXT NOT NULL,
    blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    submission_id TEXT PRIMARY KEY, form_id TEXT NOT NULL, form_version INTEGER NOT NULL,
    created_at TEXT NOT NULL, rejected_at TEXT NOT NULL, blob BLOB NOT NULL);
"""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def derive_key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


class Store:
    """An open store. Build with :meth:`create` or :meth:`open`; close with :meth:`close`.

    Safe to share between threads (one connection behind a lock). Writes happen inside
    :meth:`transaction`, which commits durably (WAL, ``synchronous=FULL``) or rolls back.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection, key: bytes) -> None:
        self.path = path
        self._db = connection
        self._aead = AESGCM(key)
        self._lock = threading.RLock()
        self._depth = 0

    # -- opening ------------------------------------------------------------------------

    @staticmethod
    def exists(home: str | os.PathLike[str]) -> bool:
        return (Path(home) / FILENAME).is_file()

    @classmethod
    def create(cls, home: str | os.PathLike[str], passphrase: str, *,
               scrypt_n: int = SCRYPT_N) -> Store:
        """Make a new, empty store in ``home`` (created with mode 0700)."""
        _check_passphrase(passphrase)
        home = Path(home)
        path = home / FILENAME
        if path.exists():
            raise StoreError(f"a store already exists in {home}")
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        salt = secrets.token_bytes(16)
        params = {"n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt.hex()}
        key = derive_key(passphrase, salt, scrypt_n, SCRYPT_R, SCRYPT_P)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        store = cls(path, _connect(path), key)
        with store.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    store._db.execute(statement)
            verifier = store.seal("meta", "verifier", VERIFIER_TEXT).hex()
            for name, value in (("format", FORMAT), ("kdf", json.dumps(params)),
                                ("verifier", verifier), ("created_at", utc_now())):
                store._db.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (name, value))
        return store

    @classmethod
    def open(cls, home: str | os.PathLike[str], passphrase: str) -> Store:
        """Open an existing store; :class:`WrongPassphrase` if the passphrase does not fit."""
        _check_passphrase(passphrase)
        path = Path(home) / FILENAME
        if not path.is_file():
            raise StoreError(f"no client store in {home}: run 'fieldsync-client enroll' first")
        connection = _connect(path)
        try:
            meta = dict(connection.execute("SELECT name, value FROM meta").fetchall())
            if meta.get("format") != FORMAT:
                raise StoreError(f"{path} is not a FieldSync client store of format {FORMAT}")
            params = json.loads(meta["kdf"])
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
            if not (2 <= n <= SCRYPT_MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
                raise StoreError(f"{path}: unsupported scrypt parameters")
            key = derive_key(passphrase, bytes.fromhex(params["salt"]), n, r, p)
            verifier = bytes.fromhex(meta["verifier"])
        except (sqlite3.DatabaseError, KeyError, ValueError, TypeError) as exc:
            connection.close()
            raise StoreError(f"{path} is damaged or not a client store ({exc})") from None
        except StoreError:
            connection.close()
            raise
        store = cls(path, connection, key)
        try:
            if store.open_blob("meta", "verifier", verifier) != VERIFIER_TEXT:
                raise WrongPassphrase(f"wrong passphrase for {home}")
        except StoreError:
            store.close()
            raise WrongPassphrase(f"wrong passphrase for {home}") from None
        return store

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- encryption -----------------------------------------------------------------------

    def seal(self, table: str, row: str, plaintext: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_LENGTH)
        return nonce + self._aead.encrypt(nonce, plaintext, _aad(table, row))

    def open_blob(self, table: str, row: str, blob: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_LENGTH], blob[NONCE_LENGTH:], _aad(table, row))
        except (InvalidTag, ValueError):
            raise StoreError(f"{self.path}: the {table} entry {row} does not decrypt "
                             "(the file was altered)") from None

    def _seal_json(self, table: str, row: str, value: Any) -> bytes:
        return self.seal(table, row, json.dumps(value, separators=(",", ":")).encode("utf-8"))

    def _open_json(self, table: str, row: str, blob: bytes) -> Any:
        return json.loads(self.open_blob(table, row, blob))

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together (nested calls join the outer transaction)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self.transaction():
            return self._db.execute(sql, args).rowcount

    # -- state (small named values) -------------------------------------------------------

    def get(self, name: str, default: Any = None) -> Any:
        rows = self._rows("SELECT blob FROM state WHERE name = ?", (name,))
        return self._open_json("state", name, rows[0][0]) if rows else default

    def put(self, name: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO state (name, blob) VALUES (?, ?)",
                    (name, self._seal_json("state", name, value)))

    # -- forms ------------------------------------------------------------------------------

    def put_form(self, form_id: str, version: int, record: dict[str, Any]) -> None:
        row = f"{form_id}/{version}"
        self._write("INSERT OR REPLACE INTO forms (form_id, version, blob) VALUES (?, ?, ?)",
                    (form_id, version, self._seal_json("forms", row, record)))

    def get_form(self, form_id: str, version: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT blob FROM forms WHERE form_id = ? AND version = ?",
                          (form_id, version))
        return self._open_json("forms", f"{form_id}/{version}", rows[0][0]) if rows else None

    def form_versions(self) -> list[tuple[str, int]]:
        return [(r[0], r[1]) for r in
                self._rows("SELECT form_id, version FROM forms ORDER BY form_id, version")]

    def delete_form(self, form_id: str, version: int) -> None:
        self._write("DELETE FROM forms WHERE form_id = ? AND version = ?", (form_id, version))

    # -- cases ------------------------------------------------------------------------------

    def put_case(self, case: dict[str, Any]) -> None:
        case_id = case["case_id"]
        self._write("INSERT OR REPLACE INTO cases (case_id, blob) VALUES (?, ?)",
                    (case_id, self._seal_json("cases", case_id, case)))

    def delete_case(self, case_id: str) -> bool:
        return self._write("DELETE FROM cases WHERE case_id = ?", (case_id,)) > 0

    def get_case(self, case_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT blob FROM cases WHERE case_id = ?", (case_id,))
        return self._open_json("cases", case_id, rows[0][0]) if rows else None

    def cases(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT case_id, blob FROM cases ORDER BY case_id")
        return [self._open_json("cases", case_id, blob) for case_id, blob in rows]

    # -- outbox -----------------------------------------------------------------------------

    def add_outbox(self, submission_id: str, form_id: str, form_version: int,
                   envelope: bytes) -> None:
        self._write(
            "INSERT INTO outbox (submission_id, form_id, form_version, created_at, blob) "
            "VALUES (?, ?, ?, ?, ?)",
            (submission_id, form_id, form_version, utc_now(),
             self.seal("outbox", submission_id, envelope)),
        )

    def outbox(self) -> list[OutboxItem]:
        rows = self._rows("SELECT submission_id, form_id, form_version, created_at, blob "
                          "FROM outbox ORDER BY position")
        return [OutboxItem(sid, form_id, version, created,
                           self.open_blob("outbox", sid, blob))
                for sid, form_id, version, created, blob in rows]

    def in_outbox(self, submission_id: str) -> bool:
        rows = self._rows("SELECT 1 FROM outbox WHERE submission_id = ?", (submission_id,))
        return bool(rows)

    def outbox_size(self) -> int:
        return int(self._rows("SELECT count(*) FROM outbox")[0][0])

    def remove_outbox(self, submission_id: str) -> None:
        self._write("DELETE FROM outbox WHERE submission_id = ?", (submission_id,))

    def move_to_rejected(self, item: OutboxItem, code: str, detail: str, errors: Any) -> None:
        """Take ``item`` out of the outbox into the rejected list (kept, with the reason)."""
        record = {"envelope": item.envelope.hex(), "code": code, "detail": detail,
                  "errors": errors}
        with self.transaction():
            self._db.execute("DELETE FROM outbox WHERE submission_id = ?", (item.submission_id,))
            self._db.execute(
                "INSERT OR REPLACE INTO rejected (submission_id, form_id, form_version, "
                "created_at, rejected_at, blob) VALUES (?, ?, ?, ?, ?, ?)",
                (item.submission_id, item.form_id, item.form_version, item.created_at,
                 utc_now(), self._seal_json("rejected", item.submission_id, record)),
            )

    def rejected(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT submission_id, form_id, form_version, created_at, "
                          "rejected_at, blob FROM rejected ORDER BY rejected_at, submission_id")
        items = []
        for sid, form_id, version, created, rejected_at, blob in rows:
            record = self._open_json("rejected", sid, blob)
            items.append({"submission_id": sid, "form_id": form_id, "form_version": version,
                          "created_at": created, "rejected_at": rejected_at,
                          "code": record["code"], "detail": record["detail"],
                          "errors": record["errors"]})
        return items


class OutboxItem:
    """A sealed envelope waiting for its receipt."""

    __slots__ = ("created_at", "envelope", "form_id", "form_version", "submission_id")

    def __init__(self, submission_id: str, form_id: str, form_version: int, created_at: str,
                 envelope: bytes) -> None:
        self.submission_id = submission_id
        self.form_id = form_id
        self.form_version = form_version
        self.created_at = created_at
        self.envelope = envelope


def _aad(table: str, row: str) -> bytes:
    return table.encode() + b"\x00" + row.encode()


def _check_passphrase(passphrase: str) -> None:
    if not isinstance(passphrase, str) or not passphrase:
        raise StoreError("the store passphrase must not be empty")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                     timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} cannot be opened as SQLite: {exc}") from None
    return connection
