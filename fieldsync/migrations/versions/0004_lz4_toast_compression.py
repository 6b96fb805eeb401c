"""lz4 for the large values PostgreSQL compresses

PostgreSQL compresses a row's large values (over ~2 kB: a case's state and officer view, an
envelope, the operations of a long form) before storing them. With its default method, pglz,
the database used 0.41-0.60 ms of CPU per submission in the ingest benchmark, with lz4 0.33 ms;
lz4 compresses these values about as small (bench/README.md has the figures). Only values written
after the migration use it; older ones stay readable as they are. Nothing changes on SQLite,
or on a PostgreSQL older than 14 or built without lz4 (the columns keep pglz).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

#: The columns whose values are often over PostgreSQL's ~2 kB compression threshold.
COLUMNS = (("cases", "state"), ("cases", "officer_view"), ("case_events", "ops"),
           ("envelopes", "raw"))


def lz4_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    # The setting lists the methods this server was built with (pglz always, lz4 if any).
    methods = bind.execute(sa.text(
        "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")).scalar()
    return methods is not None and "lz4" in methods


def set_compression(method: str) -> None:
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    if lz4_available():
        set_compression("lz4")
    elif op.get_bind().dialect.name == "postgresql":
        log.info("this PostgreSQL has no lz4: large values stay compressed with pglz")


def downgrade() -> None:
    if lz4_available():
        set_compression("default")
