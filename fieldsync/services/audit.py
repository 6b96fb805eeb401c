"""The staff audit trail: every read and change of case data by staff, append-only."""

from __future__ import annotations

from typing import Any

from fieldsync.extensions import db
from fieldsync.models import AuditEntry


def record(
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    *,
    detail: dict[str, Any] | None = None,
    remote_addr: str | None = None,
    via: str = "api",
) -> None:
    """Add an audit entry to the current unit of work (committed with it)."""
    db.session.add(AuditEntry(
        actor=actor, action=action, target_type=target_type, target_id=target_id,
        detail=detail, remote_addr=remote_addr, via=via,
    ))
