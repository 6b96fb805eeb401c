"""The case store: the append-only event log, the materialised cases, conflicts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fieldsync.models.base import Base, utcnow


class CaseEvent(Base):
    """One accepted submission or staff action on one case. Never updated, never deleted."""

    __tablename__ = "case_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    parents: Mapped[list[Any]]
    base_revision: Mapped[int] = mapped_column(default=0)
    hlc: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(36), default="")
    user_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(16))
    form_id: Mapped[str | None] = mapped_column(String(64))
    form_version: Mapped[int | None]
    ops: Mapped[list[Any]]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Case(Base):
    """Materialised view of a case's events (see ``fieldsync.core.merge``)."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_officer_change", "owner_officer", "change_seq"),
        Index("ix_cases_site_change", "site", "change_seq"),
        Index("ix_cases_service_status", "owner_service", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(24))
    owner_service: Mapped[str | None] = mapped_column(String(32))
    owner_officer: Mapped[str | None] = mapped_column(String(64))
    site: Mapped[str | None] = mapped_column(String(32))
    revision: Mapped[int] = mapped_column(default=0)
    open_conflicts: Mapped[int] = mapped_column(default=0)
    state: Mapped[dict[str, Any]]
    change_seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The case as an officer's tablet receives it (JSON text), written with the state so that
    #: a pull sends stored text; NULL for rows written before it existed (pulls then derive it).
    officer_view: Mapped[str | None] = mapped_column(Text)
    officer_view_hlc: Mapped[str | None] = mapped_column(String(64))


class Conflict(Base):
    """A conflict on a ``manual`` property, open until a resolution supersedes it."""

    __tablename__ = "conflicts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    property: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    candidates: Mapped[list[Any]]
    provisional: Mapped[dict[str, Any] | None]
    resolution: Mapped[dict[str, Any] | None]
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Append-only record of every read and change of case data by staff."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[dict[str, Any] | None]
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    via: Mapped[str] = mapped_column(Text, default="api")
