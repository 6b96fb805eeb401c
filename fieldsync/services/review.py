"""Central review: search and read cases, resolve conflicts, transfer, set ``server`` properties.

Every read of case data and every change is written to the audit log in the same transaction.
Changes are staff events in the same log as device submissions (see ``casestore``): their
parents are the heads the reviewer acted on, so they supersede exactly what the reviewer saw.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select

from fieldsync.core.forms.model import Field
from fieldsync.core.forms.values import Invalid, check_static, normalise
from fieldsync.core.hlc import Timestamp, format_timestamp, wall_clock_millis
from fieldsync.errors import Forbidden, InvalidInput, NotFound, StateConflict
from fieldsync.extensions import db
from fieldsync.models import Case, CaseEvent, Conflict, User
from fieldsync.services import audit
from fieldsync.services import forms as forms_service
from fieldsync.services.casestore import CaseRejection, CaseWriter, Incoming
from fieldsync.services.users import find_service

MAX_PAGE = 200


@dataclass(frozen=True)
class Actor:
    """Who is acting, and from where (for the audit log)."""

    user: User
    remote_addr: str | None = None
    via: str = "api"


def audit_action(actor: Actor, action: str, target_type: str, target_id: str,
           detail: dict[str, Any] | None = None) -> None:
    audit.record(actor.user.username, action, target_type, target_id, detail=detail,
                 remote_addr=actor.remote_addr, via=actor.via)


def summary(case: Case) -> dict[str, Any]:
    return {
        "case_id": case.id,
        "case_number": case.case_number,
        "name": case.display_name,
        "status": case.status,
        "owner_service": case.owner_service,
        "owner_officer": case.owner_officer,
        "site": case.site,
        "revision": case.revision,
        "open_conflicts": case.open_conflicts,
        "updated_at": case.updated_at.isoformat(),
    }


def search_cases(actor: Actor, *, service: str | None = None, officer: str | None = None,
                 status: str | None = None, conflicts: bool | None = None,
                 text: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise InvalidInput("offset must not be negative")
    query = select(Case)
    if service:
        query = query.where(Case.owner_service == service)
    if officer:
        query = query.where(Case.owner_officer == officer)
    if status:
        query = query.where(Case.status == status)
    if conflicts is True:
        query = query.where(Case.open_conflicts > 0)
    elif conflicts is False:
        query = query.where(Case.open_conflicts == 0)
    if text:
        pattern = f"%{text.lower()}%"
        query = query.where(or_(func.lower(Case.display_name).like(pattern),
                                func.lower(Case.case_number).like(pattern)))
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = list(db.session.scalars(
        query.order_by(Case.updated_at.desc(), Case.id).limit(limit).offset(offset)))
    filters = {"service": service, "officer": officer, "status": status,
               "conflicts": conflicts, "text": text, "limit": limit, "offset": offset}
    audit_action(actor, "case.search", "case", "*",
           {"filters": filters, "returned": [c.id for c in rows]})
    db.session.commit()
    return {"total": total, "cases": [summary(c) for c in rows]}


def get_case(case_id: str) -> Case:
    case = db.session.get(Case, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    return case


def history(case_id: str) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq))
    return [
        {
            "event_id": e.id, "seq": e.seq, "hlc": e.hlc, "actor": e.actor,
            "user": e.user_id, "device_id": e.device_id or None,
            "form": f"{e.form_id} v{e.form_version}" if e.form_id else None,
            "base_revision": e.base_revision, "parents": e.parents, "operations": e.ops,
            "recorded_at": e.recorded_at.isoformat(),
        }
        for e in rows
    ]


def case_detail(actor: Actor, case_id: str) -> dict[str, Any]:
    case = get_case(case_id)
    body = {**summary(case), "state": case.state, "history": history(case_id)}
    audit_action(actor, "case.read", "case", case_id)
    db.session.commit()
    return body


def describe_conflict(conflict: Conflict) -> dict[str, Any]:
    return {
        "conflict_id": conflict.id,
        "case_id": conflict.case_id,
        "property": conflict.property,
        "status": conflict.status,
        "candidates": conflict.candidates,
        "provisional": conflict.provisional,
        "resolution": conflict.resolution,
        "opened_at": conflict.opened_at.isoformat(),
        "closed_at": conflict.closed_at.isoformat() if conflict.closed_at else None,
    }


def list_conflicts(actor: Actor, status: str | None = "open",
                   case_id: str | None = None) -> list[dict[str, Any]]:
    query = select(Conflict).order_by(Conflict.opened_at, Conflict.id)
    if status:
        if status not in ("open", "resolved", "superseded"):
            raise InvalidInput(f"unknown conflict status {status!r}: open, resolved, superseded")
        query = query.where(Conflict.status == status)
    if case_id:
        query = query.where(Conflict.case_id == case_id)
    rows = list(db.session.scalars(query))
    audit_action(actor, "conflict.list", "conflict", "*",
           {"status": status, "case_id": case_id, "returned": [c.id for c in rows]})
    db.session.commit()
    return [describe_conflict(c) for c in rows]


def staff_hlc() -> str:
    return format_timestamp(Timestamp(wall_clock_millis(), 0, "staff"))


def _staff_event(actor: Actor, case_id: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Append a staff event acting on the case as it is now; returns the new case summary."""
    writer = CaseWriter()
    events = writer.events_of(case_id)  # locks the case row
    if not events:
        raise NotFound(f"no case {case_id}")
    heads = sorted({e.id for e in events} - {p for e in events for p in e.parents})
    incoming = Incoming(
        id=str(uuid.uuid4()), case_id=case_id, parents=heads, base_revision=len(events),
        hlc=staff_hlc(), device_id="", user=actor.user, actor="staff", ops=ops, creates=False,
    )
    try:
        staged = writer.stage(incoming)
    except CaseRejection as exc:
        raise StateConflict(exc.detail) from exc
    held = [h for h in staged.state.held if h.event_id == incoming.id]
    if held:
        reasons = ", ".join(sorted({str(h.reason) for h in held}))
        raise StateConflict(f"the change cannot apply to case {case_id}: {reasons}")
    writer.flush()
    return {"event_id": incoming.id, "state": staged.state.to_dict()}


def _field_for(case_id: str, prop: str) -> Field | None:
    """The form field that writes ``prop`` in the newest form version used on this case."""
    rows = db.session.execute(
        select(CaseEvent.form_id, CaseEvent.form_version)
        .where(CaseEvent.case_id == case_id, CaseEvent.form_id.is_not(None),
               CaseEvent.form_version.is_not(None))
        .distinct()
    ).all()
    for form_id, version in sorted(rows, key=lambda r: (r[1], r[0]), reverse=True):
        assert form_id is not None and version is not None  # the query excludes them
        form = forms_service.compiled(form_id, version)
        if form is None:
            continue
        for item in form.walk():
            if item.case_property == prop:
                return item
    return None


def check_value(case_id: str, prop: str, value: Any) -> Any:
    """Normalise ``value`` as the form field that writes ``prop`` would; InvalidInput if not."""
    item = _field_for(case_id, prop)
    if item is None:
        return value
    try:
        value = normalise(item, value)
    except Invalid as exc:
        raise InvalidInput(f"invalid value for {prop}: {exc}",
                           errors={"value": [str(exc)]}) from exc
    problems = check_static(item, value)
    if problems:
        raise InvalidInput(f"invalid value for {prop}: {'; '.join(problems)}",
                           errors={"value": problems})
    return value


def resolve_conflict(actor: Actor, conflict_id: str, value: Any, reason: str) -> dict[str, Any]:
    if not reason or not reason.strip():
        raise InvalidInput("a resolution needs a reason", errors={"reason": ["required"]})
    conflict = db.session.get(Conflict, conflict_id)
    if conflict is None:
        raise NotFound(f"no conflict {conflict_id}")
    if conflict.status != "open":
        raise StateConflict(f"conflict {conflict_id} is already {conflict.status}")
    value = check_value(conflict.case_id, conflict.property, value)
    result = _staff_event(actor, conflict.case_id, [{
        "type": "resolve", "conflict": conflict_id, "property": conflict.property,
        "value": value, "reason": reason.strip(),
    }])
    audit_action(actor, "conflict.resolve", "conflict", conflict_id,
           {"case_id": conflict.case_id, "property": conflict.property, "value": value,
            "reason": reason.strip(), "event_id": result["event_id"]})
    db.session.commit()
    return describe_conflict(conflict) | {"event_id": result["event_id"]}


def transfer_case(actor: Actor, case_id: str, service: str, officer: str | None,
                  reason: str) -> dict[str, Any]:
    if not reason or not reason.strip():
        raise InvalidInput("a transfer needs a reason", errors={"reason": ["required"]})
    find_service(service)
    if officer is not None:
        user = db.session.scalar(select(User).where(User.username == officer))
        if user is None or user.role != "officer":
            raise InvalidInput(f"{officer!r} is not an officer", errors={"officer": ["unknown"]})
        if user.service is None or user.service.code != service:
            raise InvalidInput(f"officer {officer} does not belong to service {service}",
                               errors={"officer": ["not in the receiving service"]})
    get_case(case_id)
    result = _staff_event(actor, case_id, [{
        "type": "transfer", "service": service, "officer": officer, "reason": reason.strip(),
    }])
    audit_action(actor, "case.transfer", "case", case_id,
           {"service": service, "officer": officer, "reason": reason.strip(),
            "event_id": result["event_id"]})
    db.session.commit()
    return summary(get_case(case_id)) | {"event_id": result["event_id"]}


def set_server_property(actor: Actor, case_id: str, prop: str, value: Any,
                        reason: str) -> dict[str, Any]:
    if not reason or not reason.strip():
        raise InvalidInput("a change needs a reason", errors={"reason": ["required"]})
    case = get_case(case_id)
    current = case.state["properties"].get(prop)
    if current is None or current["policy"] != "server" or prop in (
            "owner_service", "owner_officer", "case_number"):
        raise Forbidden(f"{prop!r} is not a property central staff set directly on this case; "
                        "server properties here: " + ", ".join(sorted(
                            name for name, p in case.state["properties"].items()
                            if p["policy"] == "server" and name not in (
                                "owner_service", "owner_officer", "case_number"))))
    value = check_value(case_id, prop, value)
    result = _staff_event(actor, case_id, [{
        "type": "set", "property": prop, "value": value, "policy": "server",
        "sensitivity": current["sensitivity"], "reason": reason.strip(),
    }])
    audit_action(actor, "case.set_property", "case", case_id,
           {"property": prop, "value": value, "previous": current["value"],
            "reason": reason.strip(), "event_id": result["event_id"]})
    db.session.commit()
    return summary(get_case(case_id)) | {"event_id": result["event_id"]}


def place_at_site(actor: Actor, case_id: str, site: str | None, reason: str) -> dict[str, Any]:
    """Place a case at a community-work site (or remove the placement with ``None``)."""
    from fieldsync.services.users import find_site

    if not reason or not reason.strip():
        raise InvalidInput("a placement needs a reason", errors={"reason": ["required"]})
    if site is not None:
        find_site(site)
    get_case(case_id)
    result = _staff_event(actor, case_id, [{
        "type": "set", "property": "site", "value": site, "policy": "server",
        "sensitivity": "public", "reason": reason.strip(),
    }])
    audit_action(actor, "case.place", "case", case_id,
           {"site": site, "reason": reason.strip(), "event_id": result["event_id"]})
    db.session.commit()
    return summary(get_case(case_id)) | {"event_id": result["event_id"]}

