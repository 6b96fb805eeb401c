"""Quarantine: envelopes a revoked device sealed before its revocation, held for review.

Nothing in quarantine is applied. A reviewer releases an envelope (it is then processed like
any other) or discards it (it stays stored, never applied). Both are audited.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fieldsync.core.envelopes import Envelope
from fieldsync.errors import InvalidInput, NotFound, StateConflict
from fieldsync.extensions import db
from fieldsync.models import StoredEnvelope
from fieldsync.services.review import Actor, audit_action


def describe_envelope(row: StoredEnvelope) -> dict[str, Any]:
    header = Envelope.from_bytes(row.raw).header
    return {
        "submission_id": row.submission_id, "device_id": row.device_id,
        "form_id": header.form_id, "form_version": header.form_version,
        "sealed_hlc": header.hlc, "state": row.state,
        "received_at": row.received_at.isoformat(), "detail": row.reject_detail,
    }


def list_quarantine(actor: Actor) -> list[dict[str, Any]]:
    """Envelopes from revoked devices, held unapplied (their content stays sealed here)."""
    rows = list(db.session.scalars(select(StoredEnvelope).where(
        StoredEnvelope.state == "quarantined").order_by(StoredEnvelope.received_seq)))
    audit_action(actor, "quarantine.list", "envelope", "*", {"returned": [r.submission_id
                                                                    for r in rows]})
    db.session.commit()
    return [describe_envelope(r) for r in rows]


def _quarantined(submission_id: str) -> StoredEnvelope:
    row = db.session.get(StoredEnvelope, submission_id)
    if row is None:
        raise NotFound(f"no envelope {submission_id}")
    if row.state != "quarantined":
        raise StateConflict(f"envelope {submission_id} is {row.state}, not quarantined")
    return row


def release_envelope(actor: Actor, submission_id: str, reason: str) -> dict[str, Any]:
    """Apply a quarantined envelope as if its device were still active."""
    from fieldsync.services import ingest

    if not reason or not reason.strip():
        raise InvalidInput("a release needs a reason", errors={"reason": ["required"]})
    row = _quarantined(submission_id)
    row.state = "received"
    audit_action(actor, "quarantine.release", "envelope", submission_id, {"reason": reason.strip()})
    db.session.commit()
    result = ingest.process_submissions([submission_id])[submission_id]
    return result.to_dict()


def discard_envelope(actor: Actor, submission_id: str, reason: str) -> dict[str, Any]:
    """Keep a quarantined envelope stored but never apply it."""
    if not reason or not reason.strip():
        raise InvalidInput("discarding needs a reason", errors={"reason": ["required"]})
    row = _quarantined(submission_id)
    row.state = "discarded"
    row.reject_detail = {"detail": "discarded by review", "reason": reason.strip(),
                         "by": actor.user.username}
    audit_action(actor, "quarantine.discard", "envelope", submission_id, {"reason": reason.strip()})
    db.session.commit()
    return describe_envelope(row)
