"""The two floors printed beside the ingest figure.

* crypto floor: parse, verify and open the same envelopes in one process (no HTTP, no
  database) -- the cost no server can avoid;
* physical reference: the same number of rows (submission id, case id, the envelope bytes)
  written by the fastest plain path of the database: one ``executemany`` transaction on
  SQLite (same pragmas as FieldSync), ``COPY`` on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg

from bench.workload import DeviceCredential


def crypto_floor(sealed: list[tuple[str, str]], credentials: dict[str, DeviceCredential],
                 keyring_path: Path) -> float:
    """Envelopes per second for parse + verify + decrypt; ``sealed`` is (device_id, text)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from fieldsync.core import envelopes as env
    from fieldsync.core.keys import KeyRing

    ring = KeyRing.load(keyring_path)
    public = {device_id: load_pem_private_key(c.signing_key_pem, None).public_key()
              for device_id, c in credentials.items()}
    started = time.perf_counter()
    for device_id, text in sealed:
        envelope = env.Envelope.from_text(text)
        env.verify_signature(envelope, public[device_id])  # type: ignore[arg-type]
        env.open_envelope(envelope, ring.private_key)
    return len(sealed) / (time.perf_counter() - started)


def plain_insert_sqlite(rows: list[tuple[str, str, bytes]], path: Path) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE plain (id TEXT PRIMARY KEY, case_id TEXT, raw BLOB)")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO plain VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - started)
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return rate


def plain_insert_postgresql(rows: list[tuple[str, str, bytes]], url: str) -> float:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE plain_reference (id text PRIMARY KEY, case_id text, "
                     "raw bytea)")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
                "COPY plain_reference (id, case_id, raw) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        rate = len(rows) / (time.perf_counter() - started)
        conn.execute("DROP TABLE plain_reference")
        conn.commit()
    return rate
