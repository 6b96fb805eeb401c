"""Pull: what a device may see, changed since its cursor.

A device's scope is its user's caseload (officers: cases they own) or placements (supervisors:
cases placed at their site). The cursor is the server sequence number of the last change the
device received. Both queries are driven by an index on (scope column, change_seq) or
(scope, seq), so a pull costs in proportion to the changes since the cursor, not to the store.
Properties are projected by role: supervisors receive only ``public`` ones.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from fieldsync.core.hlc import Timestamp, format_timestamp, wall_clock_millis
from fieldsync.errors import Forbidden, InvalidInput
from fieldsync.extensions import db
from fieldsync.models import Case, ScopeTombstone, User
from fieldsync.models.base import encode_json
from fieldsync.services import forms as forms_service

VISIBLE = {
    "officer": ("public", "restricted", "confidential"),
    "supervisor": ("public",),
}


def scope_of(user: User) -> tuple[str, Any, str]:
    """(column name, value, tombstone scope) of the device user's scope."""
    if user.role == "officer":
        return "owner_officer", user.username, f"officer:{user.username}"
    if user.role == "supervisor" and user.site is not None:
        return "site", user.site.code, f"site:{user.site.code}"
    raise Forbidden(f"role {user.role} has no device caseload")


#: The columns a pull reads (not the whole row: no ORM object per case).
PULLED = (Case.id, Case.case_number, Case.status, Case.revision, Case.state, Case.change_seq)


def project(case: Any, role: str) -> dict[str, Any]:
    """The case (a :class:`Case` or a row of the ``PULLED`` columns) as a device of ``role``
    may see it."""
    visible = VISIBLE[role]
    state = case.state
    properties = {
        name: {
            "value": prop["value"],
            "policy": prop["policy"],
            "sensitivity": prop["sensitivity"],
            "hlc": prop["provenance"]["hlc"],
            "conflict": prop.get("conflict_id") is not None,
        }
        for name, prop in state["properties"].items()
        if prop["sensitivity"] in visible
    }
    body = {
        "case_id": case.id,
        "case_number": case.case_number,
        "status": case.status,
        "revision": case.revision,
        "heads": state["heads"],
        "properties": properties,
    }
    if role == "officer":
        body["open_conflicts"] = [
            {"id": c["id"], "property": c["property"]} for c in state["conflicts"]
        ]
    body["seq"] = case.change_seq  # last: see officer_view_without_seq
    return body


def officer_view(case_id: str, columns: dict[str, Any], state: dict[str, Any],
                 seq: int) -> tuple[str, str | None]:
    """What the case store writes beside a case: its officer projection as JSON text and the
    newest property timestamp in it (for ``server_hlc``)."""
    text, newest = officer_view_without_seq(case_id, columns, state)
    return with_seq(text, seq), newest


def officer_view_without_seq(case_id: str, columns: dict[str, Any],
                             state: dict[str, Any]) -> tuple[str, str | None]:
    """:func:`officer_view` without its last member ``"seq"``, which is only known in the
    writing transaction: the rest is rendered before it, and :func:`with_seq` completes it."""
    body = project(SimpleNamespace(id=case_id, case_number=columns["case_number"],
                                   status=columns["status"], revision=columns["revision"],
                                   state=state, change_seq=None), "officer")
    del body["seq"]
    return view_text(body), newest_hlc(body)


def with_seq(view: str, seq: int) -> str:
    """A view from :func:`officer_view_without_seq` with ``"seq"`` appended as its last member
    (``view`` is a JSON object with at least one member)."""
    return f'{view[:-1]},"seq":{int(seq)}}}'


def view_of(case: Any, role: str) -> tuple[str, str | None]:
    """The projection as JSON text, and the newest property timestamp in it."""
    body = project(case, role)
    return view_text(body), newest_hlc(body)


def view_text(body: Any) -> str:
    return encode_json(body)


def newest_hlc(body: dict[str, Any]) -> str | None:
    return max((p["hlc"] for p in body["properties"].values()), default=None)


def pull(user: User, cursor: int, limit: int) -> str:
    """The answer to a device's pull, as JSON text: an officer's cases are sent as the views
    stored with them (rows older than the view are projected here); a supervisor's cases are
    projected from their states."""
    if cursor < 0:
        raise InvalidInput("cursor must be a non-negative integer")
    column_name, value, scope = scope_of(user)
    column = getattr(Case, column_name)
    officer = user.role == "officer"
    wanted = ((Case.id, Case.change_seq, Case.officer_view, Case.officer_view_hlc) if officer
              else PULLED)
    cases = list(db.session.execute(
        select(*wanted)
        .where(column == value, Case.status != "closed", Case.change_seq > cursor)
        .order_by(Case.change_seq)
        .limit(limit + 1)
    ))
    tombstones = list(db.session.scalars(
        select(ScopeTombstone)
        .where(ScopeTombstone.scope == scope, ScopeTombstone.seq > cursor)
        .order_by(ScopeTombstone.seq)
        .limit(limit + 1)
    ))
    items: list[tuple[int, str, Any]] = sorted(
        [(c.change_seq, "case", c) for c in cases]
        + [(t.seq, "tombstone", t) for t in tombstones],
        key=lambda item: (item[0], item[1]),
    )
    more = len(items) > limit
    page = items[:limit]
    if more and items[limit][0] == page[-1][0]:
        # Never split one sequence number across pages: the cursor would skip the rest.
        page = [item for item in page if item[0] < page[-1][0]] or items[: limit + 1]
    next_cursor = page[-1][0] if page else cursor
    page_cases = [item for _, kind, item in page if kind == "case"]
    unviewed = {row.id for row in page_cases if not officer or row.officer_view is None}
    full = {row.id: row for row in db.session.execute(
        select(*PULLED).where(Case.id.in_(sorted(unviewed))))} if officer and unviewed else {}
    texts, stamps = [], []
    for row in page_cases:
        text, stamp = (view_of(full.get(row.id, row), user.role) if row.id in unviewed
                       else (row.officer_view, row.officer_view_hlc))
        texts.append(text)
        stamps.append(stamp)
    rest = {
        "tombstones": [{"case_id": t.case_id, "seq": t.seq, "reason": t.reason}
                       for _, kind, t in page if kind == "tombstone"],
        "cursor": next_cursor,
        "more": more,
        "server_hlc": server_hlc(stamps),
        "forms_manifest_hash": forms_service.manifest()["hash"],
    }
    return '{"cases":[' + ",".join(texts) + "]," + view_text(rest)[1:]


def server_hlc(stamps: list[str | None]) -> str:
    """A timestamp at or after everything in this page and the server's wall clock."""
    now = format_timestamp(Timestamp(wall_clock_millis(), 0, "server"))
    return max([now] + [s for s in stamps if s])
