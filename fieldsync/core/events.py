"""Case events: the event record, the operations it carries, and the causal history of a case.

An :class:`Event` is one accepted submission or staff action; its operations are checked for
shape by :func:`operation_problem` (the vocabulary is in ``docs/merge.md``). Its ``parents``
are the case heads its author had seen, so causality comes from ``parents`` alone, never from
clocks: ``a`` happened before ``b`` iff ``a`` is an ancestor of ``b``. :class:`History` checks a
set of events, puts them in a deterministic topological order and computes every event's
ancestor set once, as a Python int used as a bitset over that order.

Exceptions (``InvalidInput``, so the API renders them as 422 ``invalid_input``)::

    HistoryError
     ├── InvalidEvent    an Event field has the wrong type or value
     ├── EventMismatch   the same event id given twice with different content
     ├── MixedCases      events of more than one case
     ├── UnknownParent   a parent id that is not in the set
     └── CyclicHistory   the parents form a cycle
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fieldsync.core.canonical import canonical_json
from fieldsync.errors import InvalidInput

__all__ = [
    "ACTORS",
    "DEFAULT_SENSITIVITY",
    "POLICIES",
    "RESERVED",
    "SENSITIVITIES",
    "STATUSES",
    "CyclicHistory",
    "Event",
    "EventMismatch",
    "History",
    "HistoryError",
    "InvalidEvent",
    "MixedCases",
    "UnknownParent",
    "is_json",
    "operation_problem",
]

ACTORS = ("device", "staff")
STATUSES = ("active", "transfer_pending", "closed")
POLICIES = ("lww", "manual", "server")
#: From least to most restrictive; a property gets the most restrictive label declared for it.
SENSITIVITIES = ("public", "restricted", "confidential")
DEFAULT_SENSITIVITY = "restricted"
#: Properties with a fixed policy, whatever an operation declares.
RESERVED = {"status": "manual", "owner_service": "server", "owner_officer": "server",
            "site": "server"}


class HistoryError(InvalidInput):
    """The events do not form a valid history of one case: a caller error."""


class InvalidEvent(HistoryError):
    def __init__(self, event_id: Any, problem: str) -> None:
        super().__init__(f"event {event_id!r}: {problem}", event_id=event_id)
        self.event_id = event_id


class EventMismatch(HistoryError):
    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id!r} given twice with different content",
                         event_id=event_id)
        self.event_id = event_id


class MixedCases(HistoryError):
    def __init__(self, case_ids: Iterable[str]) -> None:
        self.case_ids = tuple(sorted(case_ids))
        super().__init__(f"events of more than one case: {', '.join(self.case_ids)}",
                         case_ids=list(self.case_ids))


class UnknownParent(HistoryError):
    def __init__(self, event_id: str, parent_id: str) -> None:
        super().__init__(f"event {event_id!r} names unknown parent {parent_id!r}",
                         event_id=event_id, parent_id=parent_id)
        self.event_id = event_id
        self.parent_id = parent_id


class CyclicHistory(HistoryError):
    def __init__(self, event_ids: Iterable[str]) -> None:
        self.event_ids = tuple(sorted(event_ids))
        super().__init__(f"the parents of these events form a cycle: {', '.join(self.event_ids)}",
                         event_ids=list(self.event_ids))


@dataclass(frozen=True)
class Event:
    """One accepted submission (or one staff action) on one case.

    ``parents`` may be given as any iterable of ids and ``ops`` as any sequence; both are
    normalised (to a frozenset and a tuple). ``seq`` is the server's arrival sequence: it is
    informational only and takes no part in equality or in the merge.
    """

    id: str
    case_id: str
    parents: frozenset[str]
    hlc: str
    device_id: str
    user_id: str
    actor: str
    ops: tuple[dict[str, Any], ...]
    seq: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidEvent(self.id, "id must be a non-empty string")
        for name in ("case_id", "hlc", "device_id", "user_id"):
            if not isinstance(getattr(self, name), str):
                raise InvalidEvent(self.id, f"{name} must be a string")
        if self.actor not in ACTORS:
            raise InvalidEvent(self.id, f"actor must be one of {ACTORS}")
        if isinstance(self.parents, str | bytes) or not isinstance(self.parents, Iterable):
            raise InvalidEvent(self.id, "parents must be a collection of event ids")
        parents = frozenset(self.parents)
        if not all(isinstance(p, str) for p in parents):
            raise InvalidEvent(self.id, "parents must be event ids (strings)")
        if isinstance(self.ops, str | bytes | Mapping) or not isinstance(self.ops, Iterable):
            raise InvalidEvent(self.id, "ops must be a sequence")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int):
            raise InvalidEvent(self.id, "seq must be an integer")
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "ops", tuple(self.ops))

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def key(self) -> tuple[str, str, str]:
        """The total order among concurrent writes: (hlc, device_id, id)."""
        return (self.hlc, self.device_id, self.id)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Build an event from a mapping with the field names (``seq`` optional)."""
        return cls(
            id=data["id"],
            case_id=data["case_id"],
            parents=data.get("parents") or frozenset(),
            hlc=data["hlc"],
            device_id=data.get("device_id") or "",
            user_id=data["user_id"],
            actor=data["actor"],
            ops=data.get("ops") or (),
            seq=data.get("seq") or 0,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "parents": sorted(self.parents),
            "hlc": self.hlc,
            "device_id": self.device_id,
            "user_id": self.user_id,
            "actor": self.actor,
            "ops": list(self.ops),
            "seq": self.seq,
        }


def _fingerprint(event: Event) -> Any:
    """The content of an event, without ``seq``, compared strictly (``1`` is not ``1.0``)."""
    body = event.to_dict()
    del body["seq"]
    try:
        return canonical_json(body)
    except (TypeError, ValueError):
        return repr(body)


class History:
    """A checked set of events of one case, in a deterministic topological order.

    The same event may be given more than once (it counts once). The order puts every event
    after its parents and breaks ties by ``Event.key``, so it depends only on the set.
    ``case_id`` names the case when ``events`` may be empty.
    """

    def __init__(self, events: Iterable[Event], *, case_id: str | None = None) -> None:
        unique: dict[str, Event] = {}
        mismatched: set[str] = set()
        for event in events:
            if not isinstance(event, Event):
                raise InvalidEvent(getattr(event, "id", None), "not an Event")
            seen = unique.get(event.id)
            if seen is None:
                unique[event.id] = event
            elif seen is not event and _fingerprint(seen) != _fingerprint(event):
                mismatched.add(event.id)
        if mismatched:
            raise EventMismatch(min(mismatched))
        case_ids = {e.case_id for e in unique.values()}
        if case_id is not None:
            case_ids.add(case_id)
        if len(case_ids) > 1:
            raise MixedCases(case_ids)
        self.case_id: str = case_ids.pop() if case_ids else ""
        for event_id in sorted(unique):
            for parent in sorted(unique[event_id].parents):
                if parent not in unique:
                    raise UnknownParent(event_id, parent)
        self.events: tuple[Event, ...] = _topological_order(unique)
        self._index = {e.id: i for i, e in enumerate(self.events)}
        index = self._index
        ancestors: list[int] = []
        referenced = 0
        for event in self.events:
            mask = 0
            for parent in event.parents:
                i = index[parent]
                mask |= ancestors[i] | (1 << i)
            referenced |= mask
            ancestors.append(mask)
        self._ancestors = ancestors
        self.heads: tuple[str, ...] = tuple(
            sorted(e.id for i, e in enumerate(self.events) if not referenced >> i & 1)
        )

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._index

    def __getitem__(self, event_id: str) -> Event:
        return self.events[self._index[event_id]]

    def index(self, event_id: str) -> int:
        """Position of the event in the topological order (its bit in the masks)."""
        return self._index[event_id]

    def ancestor_mask(self, position: int) -> int:
        """Bitset of the strict ancestors of the event at ``position``."""
        return self._ancestors[position]

    def ancestors(self, event_id: str) -> frozenset[str]:
        """Ids of the strict ancestors of an event."""
        mask = self._ancestors[self._index[event_id]]
        return frozenset(e.id for i, e in enumerate(self.events) if mask >> i & 1)

    def happened_before(self, a: str, b: str) -> bool:
        """True iff event ``a`` is a (strict) ancestor of event ``b``."""
        return bool(self._ancestors[self._index[b]] >> self._index[a] & 1)

    def concurrent(self, a: str, b: str) -> bool:
        """True iff ``a`` and ``b`` are different events and neither happened before the other."""
        return a != b and not self.happened_before(a, b) and not self.happened_before(b, a)


def _topological_order(events: Mapping[str, Event]) -> tuple[Event, ...]:
    """Kahn's algorithm, smallest ``Event.key`` first among the events that are ready."""
    waiting = {event_id: len(e.parents) for event_id, e in events.items()}
    children: dict[str, list[str]] = {event_id: [] for event_id in events}
    for event_id, event in events.items():
        for parent in event.parents:
            children[parent].append(event_id)
    ready = [events[i].key for i, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[Event] = []
    while ready:
        event = events[heapq.heappop(ready)[2]]
        order.append(event)
        for child in children[event.id]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, events[child].key)
    if len(order) < len(events):
        raise CyclicHistory(i for i, n in waiting.items() if n > 0)
    return tuple(order)


def operation_problem(op: Any) -> str | None:
    """What is wrong with an operation (a short phrase), or None if it is well formed.

    Checks the shape only: who may send it and whether it applies is the merge's business.
    """
    if not isinstance(op, dict):
        return "not an object"
    if not is_json(op):
        return "not JSON"
    kind = op.get("type")
    if kind in ("create", "close"):
        return None
    if kind == "transfer_request":
        return None if isinstance(op.get("service"), str) and op["service"] else "service"
    if kind == "transfer":
        if not isinstance(op.get("service"), str) or not op["service"]:
            return "service"
        return None if isinstance(op.get("officer"), str | None) else "officer"
    if kind not in ("set", "append", "add", "resolve"):
        return "type"
    prop = op.get("property")
    if not isinstance(prop, str) or not prop or "value" not in op:
        return "property or value"
    if op.get("sensitivity") is not None and op["sensitivity"] not in SENSITIVITIES:
        return "sensitivity"
    if kind == "set" and (op.get("policy") or "lww") not in POLICIES:
        return "policy"
    value = op["value"]
    if kind == "add" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "value"
    if kind == "resolve" and not isinstance(op.get("conflict"), str):
        return "conflict"
    if prop == "status" and kind in ("set", "resolve") and value not in STATUSES:
        return "value"
    return None


_PLAIN_TYPES = frozenset({str, int, bool, type(None)})


def is_json(value: Any) -> bool:
    """True if ``value`` is plain JSON data (finite numbers, string keys); tuples count as
    arrays. Cheaper than encoding it."""
    kind = type(value)  # exact types first: the common case, without isinstance chains
    if kind in _PLAIN_TYPES:
        return True
    if kind is dict:  # loops, not all(<generator>): called for every operation of every merge
        for k, v in value.items():
            if type(k) is not str or (type(v) not in _PLAIN_TYPES and not is_json(v)):
                return _is_json(value)
        return True
    if kind is list:
        for v in value:
            if type(v) not in _PLAIN_TYPES and not is_json(v):
                return False
        return True
    return _is_json(value)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json(v) for k, v in value.items())
    return False
