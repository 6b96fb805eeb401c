"""The state of a case as a deterministic function of the SET of its events.

``merge(events)`` applies the merge policies of DESIGN section 5 to every event of one case and
returns a :class:`CaseState`. The result depends only on the set of events: not on the order they
are given in, not on duplicates, not on ``Event.seq``. Causality comes from ``Event.parents``
(see :mod:`fieldsync.core.events`); ``(hlc, device_id, id)`` only orders concurrent writes.
The rules, the output shape and the reasons an operation is held are in ``docs/merge.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fieldsync.core.canonical import canonical_json, content_hash
from fieldsync.core.events import (
    DEFAULT_SENSITIVITY,
    RESERVED,
    SENSITIVITIES,
    CyclicHistory,
    Event,
    EventMismatch,
    History,
    HistoryError,
    InvalidEvent,
    MixedCases,
    UnknownParent,
    is_json,
    operation_problem,
)

__all__ = [
    "CaseState",
    "Candidate",
    "Closure",
    "Conflict",
    "CyclicHistory",
    "Event",
    "EventMismatch",
    "HeldOp",
    "HeldReason",
    "History",
    "HistoryError",
    "InvalidEvent",
    "LogEntry",
    "MixedCases",
    "PendingTransfer",
    "PropertyState",
    "Provenance",
    "ResolvedConflict",
    "UnknownParent",
    "conflict_id",
    "merge",
]

_KIND_OF_POLICY = {"lww": "set", "manual": "set", "server": "set", "append": "append",
                   "sum": "add"}
_POLICY_OF_KIND = {"append": "append", "add": "sum"}
_RANK = {label: rank for rank, label in enumerate(SENSITIVITIES)}


class HeldReason(StrEnum):
    """Why an operation was not applied (the first that applies, in this order)."""

    NO_CREATE = "no_create"
    INVALID_OP = "invalid_op"
    STAFF_ONLY = "staff_only"
    RESERVED_PROPERTY = "reserved_property"
    DUPLICATE_CREATE = "duplicate_create"
    CASE_CLOSED = "case_closed"
    SERVER_PROPERTY = "server_property"
    UNKNOWN_PROPERTY = "unknown_property"
    POLICY_MISMATCH = "policy_mismatch"


class _Record:
    """Base of the result types: ``to_dict()`` gives JSON-ready data, fields in declared order,
    nested records as objects and tuples as lists."""

    def to_dict(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in self.__dataclass_fields__}

    __dataclass_fields__: dict[str, Any]


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:  # most values; exact types, so a StrEnum still becomes str
        return value
    if isinstance(value, _Record):
        return value.to_dict()
    # Scalars are tested inline below: the state of a case has thousands of them.
    if isinstance(value, tuple | list):
        return [v if type(v) in _SCALARS else _plain(v) for v in value]
    if isinstance(value, dict):
        return {k: v if type(v) in _SCALARS else _plain(v) for k, v in value.items()}
    if isinstance(value, StrEnum):
        return str(value)
    return value


@dataclass(frozen=True)
class Provenance(_Record):
    event_id: str
    device_id: str
    user_id: str
    hlc: str

    @classmethod
    def of(cls, event: Event) -> Provenance:
        return cls(event.id, event.device_id, event.user_id, event.hlc)

    def to_dict(self) -> dict[str, Any]:  # the generic one, spelt out: called most often
        event_id, device_id, user_id, hlc = self.event_id, self.device_id, self.user_id, self.hlc
        if type(event_id) is type(device_id) is type(user_id) is type(hlc) is str:
            return {"event_id": event_id, "device_id": device_id, "user_id": user_id,
                    "hlc": hlc}
        return {"event_id": _plain(event_id), "device_id": _plain(device_id),
                "user_id": _plain(user_id), "hlc": _plain(hlc)}


@dataclass(frozen=True)
class Candidate(_Record):
    """One competing value of a conflict, with where it came from."""

    value: Any
    provenance: Provenance

    def to_dict(self) -> dict[str, Any]:
        return {"value": _plain(self.value), "provenance": self.provenance.to_dict()}


@dataclass(frozen=True)
class LogEntry(_Record):
    """One entry of an ``append`` property; ``entry_id`` is ``"<event id>:<op index>"``."""

    entry_id: str
    value: Any
    provenance: Provenance

    def to_dict(self) -> dict[str, Any]:
        entry_id, value = self.entry_id, self.value
        return {"entry_id": entry_id if type(entry_id) is str else _plain(entry_id),
                "value": value if type(value) in _SCALARS else _plain(value),
                "provenance": self.provenance.to_dict()}


@dataclass(frozen=True)
class PropertyState(_Record):
    """A property's merged value.

    ``value`` is the winning value (``lww``, ``manual``, ``server``), a tuple of
    :class:`LogEntry` (``append``) or the total (``sum``). ``count`` is the number of entries for
    ``append`` and ``sum``, ``None`` otherwise. ``provenance`` is the winning write, or the last
    entry in key order. ``conflict_id`` names the open conflict on a ``manual`` property.
    """

    value: Any
    policy: str
    sensitivity: str
    provenance: Provenance
    conflict_id: str | None = None
    count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        value, policy, sensitivity = self.value, self.policy, self.sensitivity
        conflict, count = self.conflict_id, self.count
        scalars = _SCALARS
        return {"value": value if type(value) in scalars else _plain(value),
                "policy": policy if type(policy) in scalars else _plain(policy),
                "sensitivity": sensitivity if type(sensitivity) in scalars
                else _plain(sensitivity),
                "provenance": self.provenance.to_dict(),
                "conflict_id": conflict if type(conflict) in scalars else _plain(conflict),
                "count": count if type(count) in scalars else _plain(count)}


@dataclass(frozen=True)
class Conflict(_Record):
    """An open conflict: the causally-maximal writes of a ``manual`` property disagree."""

    id: str
    property: str
    candidates: tuple[Candidate, ...]
    provisional: Candidate


@dataclass(frozen=True)
class ResolvedConflict(_Record):
    """A staff ``resolve`` operation: what it saw (``candidates``) and what it decided."""

    id: str
    property: str
    candidates: tuple[Candidate, ...]
    resolution: Candidate
    reason: Any


@dataclass(frozen=True)
class HeldOp(_Record):
    """An operation that was recorded but not applied."""

    event_id: str
    op_index: int
    op: Any
    reason: HeldReason


@dataclass(frozen=True)
class PendingTransfer(_Record):
    service: str | None
    reason: Any
    provenance: Provenance


@dataclass(frozen=True)
class Closure(_Record):
    reason: Any
    date: Any
    provenance: Provenance


@dataclass(frozen=True)
class CaseState(_Record):
    case_id: str
    exists: bool
    status: str | None
    revision: int
    heads: tuple[str, ...]
    created: Provenance | None = None
    properties: dict[str, PropertyState] = field(default_factory=dict)
    conflicts: tuple[Conflict, ...] = ()
    resolved_conflicts: tuple[ResolvedConflict, ...] = ()
    held: tuple[HeldOp, ...] = ()
    pending_transfer: PendingTransfer | None = None
    closure: Closure | None = None


def conflict_id(case_id: str, prop: str, event_ids: Iterable[str]) -> str:
    """Deterministic id of the conflict between these events' writes to ``prop``."""
    digest = content_hash({"case_id": case_id, "property": prop, "events": sorted(event_ids)})
    return "cf-" + digest.removeprefix("sha256:")[:32]


def merge(events: Iterable[Event] | History, *, case_id: str | None = None) -> CaseState:
    """Merge every event of one case into its state (see ``docs/merge.md``).

    Raises :class:`HistoryError` (an ``InvalidInput``) when the events are not a valid history:
    an unknown parent, a cycle, events of several cases, the same id with different content.
    Operations are never a reason to raise: a bad one is held with a :class:`HeldReason`.
    """
    history = events if isinstance(events, History) else History(events, case_id=case_id)
    return _Merge(history).run()


def _json(value: Any) -> bytes:
    return canonical_json(value)


@dataclass
class _Write:
    """One write to a register (a ``set``/``resolve``/``transfer``, or a status change)."""

    pos: int
    op_index: int
    value: Any
    op: dict[str, Any]
    detail: dict[str, Any] | None = None  # status writes: closure / transfer details


class _Merge:
    def __init__(self, history: History) -> None:
        self.history = history
        self.events = history.events
        self.keys = [e.key for e in self.events]  # (hlc, device_id, id), once per event
        self.anc = [history.ancestor_mask(i) for i in range(len(history))]
        self.prov = [Provenance.of(e) for e in self.events]
        self.held: list[tuple[tuple[str, str, str], int, HeldOp]] = []
        self.conflicts: list[Conflict] = []
        self.resolved: list[ResolvedConflict] = []

    def hold(self, pos: int, op_index: int, op: Any, reason: HeldReason) -> None:
        if not is_json(op):
            op = {"unreadable": repr(op)[:200]}
        self.held.append((self.keys[pos], op_index,
                          HeldOp(self.events[pos].id, op_index, op, reason)))

    def key(self, write: _Write) -> tuple[str, str, str]:
        return self.keys[write.pos]

    def run(self) -> CaseState:
        events, anc = self.events, self.anc
        creates = [i for i, e in enumerate(events)
                   if any(isinstance(op, dict) and op.get("type") == "create" for op in e.ops)]
        genesis = min(creates, key=self.keys.__getitem__) if creates else None
        create_mask = sum(1 << i for i in creates)
        status_writes: dict[int, _Write] = {}
        pending: list[tuple[int, int, dict[str, Any], str, str, Any]] = []
        for pos, event in enumerate(events):
            rooted = (anc[pos] | 1 << pos) & create_mask
            staff = event.actor == "staff"
            for k, op in enumerate(event.ops):
                reason = self._first_check(op, rooted, staff, pos == genesis)
                if reason is not None:
                    self.hold(pos, k, op, reason)
                    continue
                kind = op["type"]
                change = _status_change(op)
                if change is not None:
                    status_writes[pos] = _Write(pos, k, change[0], op, change[1])
                if kind == "transfer":
                    pending.append((pos, k, op, "set", "owner_service", op["service"]))
                    pending.append((pos, k, op, "set", "owner_officer", op.get("officer")))
                elif change is None and kind != "create":
                    pending.append((pos, k, op, kind, op["property"], op["value"]))

        properties: dict[str, PropertyState] = {}
        status: str | None = None
        closure: Closure | None = None
        pending_transfer: PendingTransfer | None = None
        closer_mask: int | None = None
        if status_writes:
            self._inherit_status_details(status_writes)
            winner = self._register("status", "manual", "public", status_writes, properties)
            status = winner.value
            detail = winner.detail or {}
            if status == "closed":
                closer_mask = anc[winner.pos] | 1 << winner.pos
                closure = Closure(detail.get("reason"), detail.get("date"), detail["provenance"])
            elif status == "transfer_pending":
                pending_transfer = PendingTransfer(detail.get("service"), detail.get("reason"),
                                                   detail["provenance"])
        self._apply_properties(pending, closer_mask, genesis, properties)
        self.held.sort(key=lambda h: (h[0], h[1]))
        return CaseState(
            case_id=self.history.case_id,
            exists=genesis is not None,
            status=status,
            revision=len(events),
            heads=self.history.heads,
            created=self.prov[genesis] if genesis is not None else None,
            properties=dict(sorted(properties.items())),
            conflicts=tuple(sorted(self.conflicts, key=lambda c: (c.property, c.id))),
            resolved_conflicts=tuple(sorted(
                self.resolved, key=lambda r: (r.property, r.resolution.provenance.hlc,
                                              r.resolution.provenance.event_id, r.id))),
            held=tuple(h[2] for h in self.held),
            pending_transfer=pending_transfer,
            closure=closure,
        )

    def _first_check(self, op: Any, rooted: int, staff: bool, genesis: bool) -> HeldReason | None:
        """Reasons decided by the operation and its event alone."""
        if not rooted:
            return HeldReason.NO_CREATE
        if operation_problem(op) is not None:
            return HeldReason.INVALID_OP
        kind = op["type"]
        if kind in ("transfer", "resolve") and not staff:
            return HeldReason.STAFF_ONLY
        if op.get("property") == "status" and (kind in ("append", "add") or
                                               (kind == "set" and not staff)):
            return HeldReason.RESERVED_PROPERTY
        if kind == "create" and not genesis:
            return HeldReason.DUPLICATE_CREATE
        return None

    def _apply_properties(self, pending: list[tuple[int, int, dict[str, Any], str, str, Any]],
                          closer_mask: int | None, genesis: int | None,
                          properties: dict[str, PropertyState]) -> None:
        events, keys = self.events, self.keys
        live = []
        for item in pending:
            pos, k, op = item[0], item[1], item[2]
            if (closer_mask is not None and events[pos].actor == "device"
                    and not closer_mask >> pos & 1):
                self.hold(pos, k, op, HeldReason.CASE_CLOSED)
            else:
                live.append(item)
        # The policy of a property is the one declared last in key order; its sensitivity the
        # most restrictive one declared.
        declared: dict[str, tuple[tuple[tuple[str, str, str], int], str]] = {}
        sensitivity: dict[str, int] = {}
        for pos, k, op, kind, prop, _ in live:
            if prop in RESERVED or kind == "resolve":
                continue
            policy = _POLICY_OF_KIND.get(kind) or op.get("policy") or "lww"
            order = (keys[pos], k)
            if prop not in declared or declared[prop][0] < order:
                declared[prop] = (order, policy)
            rank = _RANK[op.get("sensitivity") or DEFAULT_SENSITIVITY]
            sensitivity[prop] = max(sensitivity.get(prop, 0), rank)
        registers: dict[str, dict[int, _Write]] = {}
        entries: dict[str, list[tuple[int, int, Any]]] = {}
        for pos, k, op, kind, prop, value in live:
            policy = RESERVED.get(prop) or (declared[prop][1] if prop in declared else None)
            if policy is None:
                self.hold(pos, k, op, HeldReason.UNKNOWN_PROPERTY)
            elif (policy == "server" and events[pos].actor == "device" and pos != genesis):
                self.hold(pos, k, op, HeldReason.SERVER_PROPERTY)
            elif _KIND_OF_POLICY[policy] != ("set" if kind == "resolve" else kind):
                self.hold(pos, k, op, HeldReason.POLICY_MISMATCH)
            elif kind in ("set", "resolve"):
                writes = registers.setdefault(prop, {})
                if pos not in writes or writes[pos].op_index < k:
                    writes[pos] = _Write(pos, k, value, op)
            else:
                entries.setdefault(prop, []).append((pos, k, value))
        for prop, writes in registers.items():
            policy = RESERVED.get(prop) or declared[prop][1]
            label = "public" if prop in RESERVED else SENSITIVITIES[sensitivity[prop]]
            self._register(prop, policy, label, writes, properties)
        for prop, items in entries.items():
            items.sort(key=lambda e: (keys[e[0]], e[1]))
            policy = declared[prop][1]
            label = SENSITIVITIES[sensitivity[prop]]
            last = self.prov[items[-1][0]]
            if policy == "append":
                log = tuple(LogEntry(f"{events[p].id}:{k}", v, self.prov[p]) for p, k, v in items)
                properties[prop] = PropertyState(log, policy, label, last, count=len(items))
            else:
                values = [v for _, _, v in items]
                total = (sum(values) if all(isinstance(v, int) for v in values)
                         else math.fsum(values))
                properties[prop] = PropertyState(total, policy, label, last, count=len(items))

    def _frontier(self, writes: dict[int, _Write], within: int | None = None) -> list[_Write]:
        """The writes not superseded by a causally later write, in key order."""
        if within is not None:
            writes = {pos: w for pos, w in writes.items() if within >> pos & 1}
        seen = 0
        for pos in writes:
            seen |= self.anc[pos]
        return sorted((w for pos, w in writes.items() if not seen >> pos & 1), key=self.key)

    def _register(self, prop: str, policy: str, label: str, writes: dict[int, _Write],
                  properties: dict[str, PropertyState]) -> _Write:
        frontier = self._frontier(writes)
        winner = frontier[-1]
        found = None
        if (policy == "manual" and len(frontier) > 1  # one write: nothing to disagree with
                and len({_json(w.value) for w in frontier}) > 1):
            found = conflict_id(self.history.case_id, prop,
                                (self.events[w.pos].id for w in frontier))
            self.conflicts.append(Conflict(found, prop, self._candidates(frontier),
                                           self._candidate(winner)))
        for write in writes.values():
            if write.op["type"] == "resolve":
                seen = self._frontier(writes, self.anc[write.pos])
                self.resolved.append(ResolvedConflict(
                    write.op["conflict"], prop, self._candidates(seen), self._candidate(write),
                    write.op.get("reason")))
        properties[prop] = PropertyState(winner.value, policy, label, self.prov[winner.pos],
                                         conflict_id=found)
        return winner

    def _candidate(self, write: _Write) -> Candidate:
        return Candidate(write.value, self.prov[write.pos])

    def _candidates(self, writes: list[_Write]) -> tuple[Candidate, ...]:
        return tuple(self._candidate(w) for w in writes)

    def _inherit_status_details(self, writes: dict[int, _Write]) -> None:
        """Give each write its closure/transfer details; a resolution choosing a value that a
        write it saw proposed takes that write's details (e.g. the reason for closing)."""
        for pos in sorted(writes):  # topological order: what a resolution saw is done first
            write = writes[pos]
            assert write.detail is not None
            write.detail["provenance"] = self.prov[pos]
            if write.op["type"] != "resolve":
                continue
            seen = [w for w in self._frontier(writes, self.anc[pos])
                    if _json(w.value) == _json(write.value)]
            if seen:
                write.detail = seen[-1].detail


def _status_change(op: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The status an operation sets, with its details, or None."""
    kind = op["type"]
    if kind == "create":
        return "active", {"kind": "create"}
    if kind == "close":
        return "closed", {"kind": "close", "reason": op.get("reason"), "date": op.get("date")}
    if kind == "transfer_request":
        return "transfer_pending", {"kind": kind, "service": op["service"],
                                    "reason": op.get("reason")}
    if kind == "transfer":
        return "active", {"kind": kind, "service": op["service"], "officer": op.get("officer")}
    if kind in ("set", "resolve") and op["property"] == "status":
        return op["value"], {"kind": kind, "reason": op.get("reason"),
                             "service": op.get("service"), "date": op.get("date")}
    return None
