"""Counter for human-readable case numbers

Case numbers were derived from 8 hex digits of the intake's submission id, which collide
(about 69% likely somewhere in 100,000 cases) and then fail the unique constraint. They now
come from a counter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COUNTERS = sa.table("counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger))


def upgrade() -> None:
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM cases")).scalar_one()
    op.bulk_insert(COUNTERS, [{"name": "case_number", "value": int(count)}])


def downgrade() -> None:
    op.execute(COUNTERS.delete().where(COUNTERS.c.name == "case_number"))
