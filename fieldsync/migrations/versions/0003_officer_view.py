"""Stored officer view of each case

An officer's pull decoded every changed case's stored state, projected it and encoded it again
(most of a pull's time on PostgreSQL). The projection is now written as JSON text with the case,
together with the newest property timestamp in it, and a pull sends the text. Rows written
before this migration keep NULL and are projected at pull time as before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch_op:
        batch_op.add_column(sa.Column("officer_view", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("officer_view_hlc", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch_op:
        batch_op.drop_column("officer_view_hlc")
        batch_op.drop_column("officer_view")
