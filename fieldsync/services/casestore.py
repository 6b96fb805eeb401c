"""The case store: append events to the log and keep the materialised cases in step.

Every change to a case goes through :class:`CaseWriter` inside one transaction:

1. ``stage(incoming)`` locks the case row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
   serialises writers with ``BEGIN IMMEDIATE``), loads the case's events, checks the new event
   (case exists or not, its base heads are known, the author may write to it) and merges the
   whole set with :func:`fieldsync.core.merge.merge`. A problem raises :class:`CaseRejection`
   and stages nothing.
2. ``flush()`` reserves server sequence numbers (last, so commits happen in sequence order),
   writes the event rows, the case rows, the conflict rows and scope tombstones.

Because the case is recomputed from the full set of its events, the view cannot depend on the
order in which submissions arrive, and ``rebuild`` can re-derive and compare it at any time.

A push merges its batch before it takes the locks (:func:`rehearse`, no row locked); under the
locks the writer reuses a rehearsed merge only where it is exactly the merge it would do (see
:class:`Rehearsal`), so the locks are held for the checks and the writes, not for the merging.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from fieldsync.core.merge import CaseState, Event, HistoryError, merge
from fieldsync.database import IDS, core, insert_rows, update_rows
from fieldsync.errors import FieldsyncError
from fieldsync.extensions import db
from fieldsync.models import Case, CaseEvent, Conflict, ScopeTombstone, User, utcnow
from fieldsync.models.base import EncodedJSON, encode_json
from fieldsync.services import sequence
from fieldsync.services.caseload import officer_view, officer_view_without_seq, with_seq

NAME_PROPERTIES = ("full_name", "name")
PRELOAD_CHUNK = 500  # ids per IN (...) query


class CaseRejection(FieldsyncError):
    """The case store refuses an event; ``code`` is the machine-readable reason."""

    status = 409
    title = "The case store refused the submission"

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.code = code


@dataclass
class Incoming:
    """A validated event on its way into the log."""

    id: str
    case_id: str
    parents: list[str]
    base_revision: int
    hlc: str
    device_id: str
    user: User
    actor: str
    ops: list[dict[str, Any]]
    creates: bool
    form_id: str | None = None
    form_version: int | None = None
    complete: bool = True  # False: the server has operations to add (an intake's case number)


@dataclass(frozen=True)
class Rendered:
    """What a case write stores of a merged state, derived from the state alone, so that a
    rehearsed merge has it rendered before the writing transaction: the state as JSON text,
    the indexed columns, and the officer view without its sequence number."""

    state: dict[str, Any]
    state_json: EncodedJSON
    columns: dict[str, Any]
    view: str  # officer_view_without_seq
    view_hlc: str | None

    @classmethod
    def of(cls, case_id: str, state: dict[str, Any]) -> Rendered:
        columns = columns_of(state)
        view, view_hlc = officer_view_without_seq(case_id, columns, state)
        return cls(state, EncodedJSON(encode_json(state)), columns, view, view_hlc)


@dataclass
class Staged:
    incoming: Incoming
    state: CaseState
    rendered: Rendered
    seq: int = 0


@dataclass
class Merged:
    """One merge done by :meth:`CaseWriter.stage`: the event added, the ids of the events it
    was merged with, and the result."""

    new: Event
    known: frozenset[str]
    state: CaseState
    rendered: Rendered


@dataclass
class Rehearsal:
    """Merges done ahead of the transaction that writes them (:func:`rehearse`).

    ``change_seqs`` and ``events`` are the cases as read (``None``: no row), ``merges`` what
    staging each event gave, by event id. A writer given a rehearsal reuses a case's events
    when its row still has the same ``change_seq`` (every write of a case's events sets it),
    and a merge only when it would merge exactly the same events: same new event, same ids
    before it, and every event staged before it on that case reused too. Since the merged
    state is a function of the set of events, the reused result is the one it would compute.
    """

    change_seqs: dict[str, int | None] = field(default_factory=dict)
    events: dict[str, list[Event]] = field(default_factory=dict)
    merges: dict[str, Merged] = field(default_factory=dict)


def rehearse(incoming: list[Incoming]) -> Rehearsal:
    """Load and merge ``incoming`` (in the order the writing transaction will stage them) with
    no row locked, so that the writer only checks and writes. Cases with an event still to be
    completed under the lock (an intake without its case number) are left out. Run in a
    read-only transaction."""
    unfinished = {i.case_id for i in incoming if not i.complete}
    items = sorted((i for i in incoming if i.case_id not in unfinished),
                   key=lambda i: (i.case_id, i.hlc, i.id))
    writer = CaseWriter()
    writer.preload([i.case_id for i in items], lock=False)
    rehearsal = Rehearsal(
        change_seqs={case_id: row["change_seq"] if row is not None else None
                     for case_id, row in writer._rows.items()},
        events={case_id: list(events) for case_id, events in writer._events.items()},
    )
    for item in items:
        try:
            writer.stage(item)
        except CaseRejection:
            continue  # decided again under the lock
    rehearsal.merges = writer.merges
    return rehearsal


@dataclass
class CaseWriter:
    """Stages events for several cases in one transaction, then writes them in one go.

    Given a :class:`Rehearsal`, it reuses the merges done before the transaction wherever they
    are exactly the merges it would do."""

    rehearsal: Rehearsal | None = None
    staged: list[Staged] = field(default_factory=list)
    merges: dict[str, Merged] = field(default_factory=dict)
    _events: dict[str, list[Event]] = field(default_factory=dict)
    _rows: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # see lock_case
    _latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # columns once staged
    _unrehearsed: set[str] = field(default_factory=set)  # cases whose merges are not reused

    def events_of(self, case_id: str) -> list[Event]:
        if case_id not in self._events:
            self._rows[case_id] = lock_case(case_id)
            self._events[case_id] = load_events(case_id)
        return self._events[case_id]

    def preload(self, case_ids: list[str], *, lock: bool = True) -> None:
        """Lock and load several cases with two queries instead of two per case (the events
        of a case the rehearsal read unchanged are not read again).

        The rows are locked in id order, the order in which ``stage`` would lock them one by
        one when called in case order, so concurrent writers still cannot deadlock.
        """
        wanted = sorted(set(case_ids) - set(self._events))
        for start in range(0, len(wanted), PRELOAD_CHUNK):
            chunk = wanted[start:start + PRELOAD_CHUNK]
            rows = {row["id"]: row for row in core(
                _LOCK_CASES if lock else _READ_CASES, {"ids": chunk}).mappings()}
            events: dict[str, list[Event]] = {}
            for case_id in chunk:
                row = rows.get(case_id)
                self._rows[case_id] = row
                seen = self.rehearsal
                if (seen is not None and case_id in seen.change_seqs
                        and seen.change_seqs[case_id] == (row["change_seq"] if row else None)):
                    self._events[case_id] = list(seen.events[case_id])
                else:
                    events[case_id] = []
            if events:
                for event in core(_EVENTS_OF, {"ids": sorted(events)}):
                    events[event.case_id].append(to_core_event(event))
                self._events.update(events)

    def stage(self, incoming: Incoming) -> Staged:
        events = self.events_of(incoming.case_id)
        known = {e.id for e in events}
        if incoming.id in known:
            raise CaseRejection("duplicate_event", f"event {incoming.id} is already in the log")
        if incoming.creates and events:
            raise CaseRejection("case_exists", f"case {incoming.case_id} already exists; an "
                                "intake form cannot create it again")
        if not incoming.creates and not events:
            raise CaseRejection("unknown_case", f"no case {incoming.case_id}: pull first, or "
                                "fill an intake form to create it")
        unknown = sorted(set(incoming.parents) - known)
        if unknown:
            raise CaseRejection("unknown_base", f"base heads {', '.join(unknown)} are not "
                                f"events of case {incoming.case_id}")
        if incoming.actor == "device" and not incoming.creates:
            check_may_write(incoming, self.current_columns(incoming.case_id))
        new = Event(
            id=incoming.id, case_id=incoming.case_id, parents=frozenset(incoming.parents),
            hlc=incoming.hlc, device_id=incoming.device_id, user_id=incoming.user.username,
            actor=incoming.actor, ops=tuple(incoming.ops),
        )
        merged = self._rehearsed(new, known)
        if merged is None:
            try:
                state = merge([*events, new], case_id=incoming.case_id)
            except HistoryError as exc:
                raise CaseRejection("invalid_history", exc.detail) from exc
            merged = Merged(new, frozenset(known), state,
                            Rendered.of(incoming.case_id, state.to_dict()))
        self.merges[new.id] = merged
        staged = Staged(incoming, merged.state, merged.rendered)
        events.append(new)
        self.staged.append(staged)
        self._latest[incoming.case_id] = merged.rendered.columns
        return staged

    def _rehearsed(self, new: Event, known: set[str]) -> Merged | None:
        """The rehearsal's merge of ``new`` if it merged exactly these events (see
        :class:`Rehearsal`); once a case misses, its later events are merged here too."""
        if self.rehearsal is None or new.case_id in self._unrehearsed:
            return None
        merged = self.rehearsal.merges.get(new.id)
        if merged is not None and merged.new == new and merged.known == known:
            return merged
        self._unrehearsed.add(new.case_id)
        return None

    def current_columns(self, case_id: str) -> dict[str, Any] | None:
        """The case's indexed columns (owner, site, status, ...) as they stand in this writer:
        they are derived from the state, so the state itself need not be read."""
        if case_id in self._latest:
            return self._latest[case_id]
        row = self._rows.get(case_id)
        return stored_columns(row) if row is not None else None

    def flush(self) -> None:
        """Assign sequence numbers and write everything staged. The caller commits.

        Case rows are written with one INSERT and one UPDATE (executemany) of each case's last
        staged values, events with one multi-row INSERT: no ORM objects to track for either.
        """
        if not self.staged:
            return
        # One query for the conflicts of every staged case, before anything is added to the
        # session (a query per case would autoflush the pending rows one case at a time).
        conflicts = load_conflicts(sorted({s.incoming.case_id for s in self.staged}))
        first = sequence.next_value("sync", len(self.staged))
        now = utcnow()
        written: dict[str, dict[str, Any]] = {}
        for offset, staged in enumerate(self.staged):
            staged.seq = first + offset
            case_id = staged.incoming.case_id
            stored = self._rows.get(case_id)
            values = write_case(staged, stored, conflicts[case_id])
            values["updated_at"] = now
            if stored is None:
                values["created_at"] = now
            self._rows[case_id] = {**(stored or {}), **values}
            written[case_id] = {**written.get(case_id, {}), **values}
        created = [v for v in written.values() if "created_at" in v]
        changed = [v for v in written.values() if "created_at" not in v]
        insert_rows(Case, created)
        if changed:
            update_rows(Case, changed)
            for values in changed:  # a Case object loaded in this session is now out of date
                loaded = db.session.identity_map.get(db.session.identity_key(Case, values["id"]))
                if loaded is not None:
                    db.session.expire(loaded)
        insert_rows(CaseEvent, [event_row(staged) for staged in self.staged])
        self.staged = []


def load_conflicts(case_ids: list[str]) -> dict[str, dict[str, Conflict]]:
    """The conflict rows of these cases, by case id and conflict id."""
    out: dict[str, dict[str, Conflict]] = {case_id: {} for case_id in case_ids}
    for start in range(0, len(case_ids), PRELOAD_CHUNK):
        chunk = case_ids[start:start + PRELOAD_CHUNK]
        for row in db.session.scalars(_CONFLICTS_OF, {"ids": chunk}):
            out[row.case_id][row.id] = row
    return out


#: What a writer reads of a case row (not the state: the merge recomputes it from the events).
ROW_COLUMNS = (Case.id, Case.change_seq, Case.status, Case.owner_service, Case.owner_officer,
               Case.site, Case.case_number, Case.display_name, Case.revision,
               Case.open_conflicts)


def lock_case(case_id: str) -> dict[str, Any] | None:
    """Lock a case row; its :data:`ROW_COLUMNS` by name, or None if there is no such case."""
    row = core(_LOCK_CASES, {"ids": [case_id]}).mappings().first()
    return dict(row) if row is not None else None


def load_events(case_id: str) -> list[Event]:
    return [to_core_event(row) for row in core(_EVENTS_OF, {"ids": [case_id]})]


#: What the merge needs of an event row (read as plain rows: no ORM object per event).
EVENT_COLUMNS = (CaseEvent.id, CaseEvent.case_id, CaseEvent.parents, CaseEvent.hlc,
                 CaseEvent.device_id, CaseEvent.user_id, CaseEvent.actor, CaseEvent.ops,
                 CaseEvent.seq)


# The statements of every push, built once: building a statement and its cache key costs
# ~50-70 us, a dozen times per push.
_READ_CASES = select(*ROW_COLUMNS).where(Case.id.in_(IDS)).order_by(Case.id)
_LOCK_CASES = _READ_CASES.with_for_update()
_EVENTS_OF = select(*EVENT_COLUMNS).where(CaseEvent.case_id.in_(IDS))
_CONFLICTS_OF = select(Conflict).where(Conflict.case_id.in_(IDS))


def to_core_event(row: Any) -> Event:
    """The merge's event from a :class:`CaseEvent` or a row of :data:`EVENT_COLUMNS`."""
    return Event(
        id=row.id, case_id=row.case_id, parents=frozenset(row.parents), hlc=row.hlc,
        device_id=row.device_id, user_id=row.user_id, actor=row.actor, ops=tuple(row.ops),
        seq=row.seq,
    )


def property_value(state: dict[str, Any] | None, name: str) -> Any:
    if not state:
        return None
    prop = state.get("properties", {}).get(name)
    return prop["value"] if prop else None


def check_may_write(incoming: Incoming, columns: dict[str, Any] | None) -> None:
    """A device may write to a case in its user's scope, or one it demonstrably had.
    ``columns`` are the case's current indexed columns (:func:`columns_of`)."""
    user = incoming.user
    columns = columns or {}
    if user.role == "officer" and columns.get("owner_officer") == user.username:
        return
    if (user.role == "supervisor" and user.site is not None
            and columns.get("site") == user.site.code):
        return
    if incoming.parents:
        # The device pulled the case while it was in scope (it knows the case's heads), and
        # edited it offline before a transfer: the record is kept, never dropped.
        return
    raise CaseRejection("case_out_of_scope", f"case {incoming.case_id} is not in the caseload "
                        f"of {user.username}")


def event_row(staged: Staged) -> dict[str, Any]:
    i = staged.incoming
    return {"id": i.id, "case_id": i.case_id, "seq": staged.seq, "parents": sorted(i.parents),
            "base_revision": i.base_revision, "hlc": i.hlc, "device_id": i.device_id,
            "user_id": i.user.username, "actor": i.actor, "form_id": i.form_id,
            "form_version": i.form_version, "ops": i.ops, "recorded_at": utcnow()}


def columns_of(state: dict[str, Any]) -> dict[str, Any]:
    """The indexed columns of the case row, derived from the merged state."""
    name = next((property_value(state, p) for p in NAME_PROPERTIES
                 if property_value(state, p)), "")
    return {
        "status": state["status"] or "unknown",
        "owner_service": property_value(state, "owner_service"),
        "owner_officer": property_value(state, "owner_officer"),
        "site": property_value(state, "site"),
        "case_number": property_value(state, "case_number"),
        "display_name": str(name)[:200],
        "revision": state["revision"],
        "open_conflicts": len(state["conflicts"]),
    }


def stored_columns(row: Any) -> dict[str, Any]:
    """The indexed columns of a stored case row, a mapping of :data:`ROW_COLUMNS` (what
    :func:`columns_of` gave when it was written)."""
    return {key: row[key] for key in COLUMNS}


COLUMNS = ("status", "owner_service", "owner_officer", "site", "case_number", "display_name",
           "revision", "open_conflicts")


def scopes_of(columns: dict[str, Any]) -> set[str]:
    """The device scopes a case belongs to: its officer's caseload and its site."""
    if columns["status"] == "closed":
        return set()
    scopes = set()
    if columns["owner_officer"]:
        scopes.add(f"officer:{columns['owner_officer']}")
    if columns["site"]:
        scopes.add(f"site:{columns['site']}")
    return scopes


def write_case(staged: Staged, stored: dict[str, Any] | None,
               conflicts: dict[str, Conflict]) -> dict[str, Any]:
    """Write what the case row does not hold (scope tombstones, conflict rows) and return the
    values of the case row after ``staged``. ``stored`` is the row as it stands before it
    (:data:`ROW_COLUMNS` by name; None for a new case)."""
    case_id = staged.incoming.case_id
    rendered = staged.rendered
    state, columns = rendered.state, rendered.columns
    before = scopes_of(stored_columns(stored)) if stored is not None else set()
    for scope in sorted(before - scopes_of(columns)):
        reason = "closed" if columns["status"] == "closed" else "left_scope"
        db.session.add(ScopeTombstone(scope=scope, case_id=case_id, seq=staged.seq,
                                      reason=reason))
    sync_conflicts(case_id, state, conflicts)
    return {"id": case_id, "state": rendered.state_json, "change_seq": staged.seq,
            "officer_view": with_seq(rendered.view, staged.seq),
            "officer_view_hlc": rendered.view_hlc, **columns}


def sync_conflicts(case_id: str, state: dict[str, Any],
                   existing: dict[str, Conflict] | None = None) -> None:
    """Mirror the merged state's conflicts into the conflicts table (open/resolved/superseded).

    ``existing`` is the case's conflict rows loaded beforehand (see :func:`load_conflicts`);
    rows added here are put into it, so it stays what the query would return.
    """
    if existing is None:
        existing = {c.id: c for c in db.session.scalars(
            select(Conflict).where(Conflict.case_id == case_id))}
    open_ids = set()
    for conflict in state["conflicts"]:
        open_ids.add(conflict["id"])
        row = existing.get(conflict["id"])
        if row is None:
            row = Conflict(
                id=conflict["id"], case_id=case_id, property=conflict["property"],
                status="open", candidates=conflict["candidates"],
                provisional=conflict["provisional"],
            )
            db.session.add(row)
            existing[row.id] = row
        else:
            row.status = "open"
            row.candidates = conflict["candidates"]
            row.provisional = conflict["provisional"]
            row.resolution = None
            row.closed_at = None
    resolutions = {r["id"]: r for r in state["resolved_conflicts"]}
    for conflict_id, row in existing.items():
        if conflict_id in open_ids or row.status != "open":
            continue
        row.closed_at = utcnow()
        if conflict_id in resolutions:
            row.status = "resolved"
            row.resolution = resolutions[conflict_id]
        else:
            row.status = "superseded"


@dataclass
class RebuildReport:
    checked: int = 0
    differences: dict[str, list[str]] = field(default_factory=dict)


def diff_states(stored: dict[str, Any], derived: dict[str, Any], prefix: str = "") -> list[str]:
    """Paths at which two JSON values differ (at most a few per case)."""
    if isinstance(stored, dict) and isinstance(derived, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(derived), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored or key not in derived:
                out.append(path)
            else:
                out.extend(diff_states(stored[key], derived[key], path))
        return out
    return [] if stored == derived else [prefix or "(root)"]


def rebuild(case_ids: list[str] | None = None, *, apply: bool = False,
            progress: Any = None) -> RebuildReport:
    """Re-derive cases from the event log and compare with the stored view.

    With ``apply`` a differing case is rewritten from the log (the log is the truth).
    ``progress(done, total)`` is called now and then on long runs.
    """
    report = RebuildReport()
    if case_ids is None:
        case_ids = list(db.session.scalars(select(Case.id).order_by(Case.id)))
    total = len(case_ids)
    for start in range(0, total, 500):
        chunk = case_ids[start:start + 500]
        events: dict[str, list[Event]] = {case_id: [] for case_id in chunk}
        for row in core(_EVENTS_OF, {"ids": chunk}):
            events[row.case_id].append(to_core_event(row))
        cases = {c.id: c for c in db.session.scalars(select(Case).where(Case.id.in_(chunk)))}
        for case_id in chunk:
            report.checked += 1
            derived = merge(events[case_id], case_id=case_id).to_dict()
            case = cases.get(case_id)
            if case is None:
                report.differences[case_id] = ["(case row missing)"]
                continue
            differences = diff_states(case.state, derived)
            derived_columns = columns_of(derived)
            differences += [f"column {key}" for key, value in derived_columns.items()
                            if getattr(case, key) != value]
            view = officer_view(case_id, derived_columns, derived, case.change_seq)
            if case.officer_view is not None and (
                    json.loads(case.officer_view) != json.loads(view[0])  # not the key order
                    or case.officer_view_hlc != view[1]):
                differences.append("officer_view")
            if differences:
                report.differences[case_id] = differences[:10]
                if apply:
                    case.state = derived
                    for key, value in derived_columns.items():
                        setattr(case, key, value)
                    case.officer_view, case.officer_view_hlc = view
                    sync_conflicts(case_id, derived)
        if apply:
            db.session.commit()
        else:
            db.session.rollback()
        if progress is not None:
            progress(min(start + 500, total), total)
    return report
