"""Sync bookkeeping: stored envelopes (the inbox), the global sequence, scope tombstones."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from fieldsync.models.base import Base, utcnow

ENVELOPE_STATES = ("received", "accepted", "rejected", "quarantined", "discarded")


class StoredEnvelope(Base):
    """An envelope exactly as received, stored before it is opened.

    ``state`` is ``received`` until processing finishes; a crash leaves it there and the
    recovery job finishes the work.
    """

    __tablename__ = "envelopes"
    __table_args__ = (Index("ix_envelopes_state_received", "state", "received_seq"),)

    submission_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_seq: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="received")
    seq: Mapped[int | None] = mapped_column(BigInteger)
    case_id: Mapped[str | None] = mapped_column(String(36))
    reject_code: Mapped[str | None] = mapped_column(String(48))
    reject_detail: Mapped[dict[str, Any] | None]
    receipt: Mapped[dict[str, Any] | None]
    processed_at: Mapped[datetime | None]


class Counter(Base):
    """Named monotonic counters. Incrementing one locks its row until commit, so values of
    ``sync`` are committed in order and a pull cursor can never skip a change."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class ScopeTombstone(Base):
    """A case left a scope (an officer's caseload or a site's placements) at ``seq``."""

    __tablename__ = "scope_tombstones"
    __table_args__ = (Index("ix_scope_tombstones_scope_seq", "scope", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(32))
