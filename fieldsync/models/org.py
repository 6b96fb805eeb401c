"""Organisation: probation services, community-work sites, users and staff API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldsync.models.base import Base, utcnow

ROLES = ("officer", "supervisor", "reviewer", "admin")


class Service(Base):
    """A probation service (organisational unit): a county service or headquarters."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class Site(Base):
    """A community-work site where people under supervision do unpaid work."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))

    service: Mapped[Service] = relationship()


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    service: Mapped[Service | None] = relationship()
    site: Mapped[Site | None] = relationship()


class StaffToken(Base):
    """A bearer token for the staff (review/admin) API; only its SHA-256 is stored."""

    __tablename__ = "staff_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()
