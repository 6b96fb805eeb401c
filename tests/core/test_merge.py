"""Unit tests of the merge rules (docs/merge.md), one rule at a time."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from fieldsync.core.events import operation_problem
from fieldsync.core.merge import (
    CaseState,
    CyclicHistory,
    Event,
    EventMismatch,
    HeldReason,
    History,
    InvalidEvent,
    MixedCases,
    UnknownParent,
    conflict_id,
    merge,
)
from fieldsync.errors import InvalidInput

CASE = "case-1"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "merge.md"


def hlc(hour: int, minute: int = 0, counter: int = 0) -> str:
    millis = 1_700_000_000_000 + (hour * 60 + minute) * 60_000
    return f"{millis:015d}-{counter:06d}-node"


def event(
    id: str,
    parents: tuple[str, ...] = (),
    *ops: dict[str, Any],
    at: str | None = None,
    device: str = "dev-a",
    user: str = "officer-a",
    actor: str = "device",
    case: str = CASE,
    seq: int = 0,
) -> Event:
    if actor == "staff":
        device = ""
    return Event(id=id, case_id=case, parents=frozenset(parents), hlc=at or hlc(9),
                 device_id=device, user_id=user, actor=actor, ops=ops, seq=seq)


def staff(id: str, parents: tuple[str, ...], *ops: dict[str, Any], at: str | None = None) -> Event:
    return event(id, parents, *ops, at=at, user="reviewer", actor="staff")


def create(id: str = "c0", *extra: dict[str, Any], at: str | None = None,
           device: str = "dev-a") -> Event:
    return event(id, (), {"type": "create"},
                 {"type": "set", "property": "owner_service", "value": "S01", "policy": "server"},
                 {"type": "set", "property": "owner_officer", "value": "officer-a",
                  "policy": "server"},
                 *extra, at=at or hlc(8), device=device)


def lww(prop: str, value: Any, sensitivity: str = "restricted") -> dict[str, Any]:
    return {"type": "set", "property": prop, "value": value, "policy": "lww",
            "sensitivity": sensitivity}


def manual(prop: str, value: Any) -> dict[str, Any]:
    return {"type": "set", "property": prop, "value": value, "policy": "manual",
            "sensitivity": "restricted"}


def add(prop: str, value: float) -> dict[str, Any]:
    return {"type": "add", "property": prop, "value": value, "sensitivity": "public"}


def append(prop: str, value: Any) -> dict[str, Any]:
    return {"type": "append", "property": prop, "value": value, "sensitivity": "restricted"}


def resolve(conflict: str, prop: str, value: Any) -> dict[str, Any]:
    return {"type": "resolve", "conflict": conflict, "property": prop, "value": value,
            "reason": "checked with the officer"}


def merged_every_way(events: list[Event]) -> CaseState:
    """Merge in many orders and check the result is always the same."""
    rng = random.Random(len(events))
    orders = [events, events[::-1]] + [rng.sample(events, len(events)) for _ in range(30)]
    results = {json.dumps(merge(order).to_dict(), sort_keys=True) for order in orders}
    assert len(results) == 1
    return merge(events)


def held(state: CaseState) -> list[tuple[str, int, str]]:
    return [(h.event_id, h.op_index, str(h.reason)) for h in state.held]


# --- history -------------------------------------------------------------------------------


def test_history_orders_and_relates_events():
    a, b, c, d = create("a"), event("b", ("a",)), event("c", ("a",)), event("d", ("b", "c"))
    history = History([d, c, b, a])
    assert [e.id for e in history][0] == "a" and [e.id for e in history][-1] == "d"
    assert history.happened_before("a", "d") and not history.happened_before("d", "a")
    assert history.concurrent("b", "c") and not history.concurrent("b", "b")
    assert history.ancestors("d") == {"a", "b", "c"}
    assert history.heads == ("d",)
    assert len(history) == 4 and "c" in history and history["b"] is b


def test_heads_and_revision():
    state = merge([create("a"), event("b", ("a",)), event("c", ("a",))])
    assert state.heads == ("b", "c")
    assert state.revision == 3
    assert state.case_id == CASE


def test_unknown_parent_is_a_caller_error():
    with pytest.raises(UnknownParent) as caught:
        merge([create("a"), event("b", ("a", "ghost"))])
    assert (caught.value.event_id, caught.value.parent_id) == ("b", "ghost")
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.to_problem()["parent_id"] == "ghost"


def test_cycle_is_a_caller_error():
    with pytest.raises(CyclicHistory):
        merge([create("a"), event("b", ("a", "c")), event("c", ("b",))])


def test_events_of_two_cases_are_refused():
    with pytest.raises(MixedCases):
        merge([create("a"), event("b", ("a",), case="case-2")])
    with pytest.raises(MixedCases):
        merge([create("a")], case_id="case-2")


def test_invalid_event_fields_are_refused():
    with pytest.raises(InvalidEvent):
        event("a", actor="robot")
    with pytest.raises(InvalidEvent):
        Event("a", CASE, "b", hlc(1), "d", "u", "device", ())  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent):
        merge([{"id": "a"}])  # type: ignore[list-item]


def test_event_normalises_and_round_trips():
    e = Event("a", CASE, ["p"], hlc(1), "d", "u", "device", [{"type": "create"}], seq=7)  # type: ignore[arg-type]
    assert e.parents == frozenset({"p"}) and e.ops == ({"type": "create"},)
    assert Event.from_dict(e.to_dict()) == e
    assert e == Event("a", CASE, frozenset({"p"}), hlc(1), "d", "u", "device",
                      ({"type": "create"},), seq=99)  # seq takes no part
    assert len({e, e}) == 1


def test_empty_input():
    state = merge([], case_id=CASE)
    assert (state.exists, state.status, state.revision, state.heads) == (False, None, 0, ())


# --- lww -----------------------------------------------------------------------------------


def test_causality_beats_clocks():
    # dev-b pulled dev-a's edit, then edited offline with a clock five hours behind.
    events = [
        create("c0", at=hlc(8)),
        event("a1", ("c0",), lww("phone", "0111"), at=hlc(14), device="dev-a"),
        event("b1", ("a1",), lww("phone", "0222"), at=hlc(9), device="dev-b"),
    ]
    state = merged_every_way(events)
    assert state.properties["phone"].value == "0222"
    assert state.properties["phone"].provenance.event_id == "b1"
    assert state.conflicts == ()


def test_concurrent_lww_takes_greatest_key():
    base = create("c0")
    later = event("a1", ("c0",), lww("phone", "late"), at=hlc(15), device="dev-a")
    earlier = event("b1", ("c0",), lww("phone", "early"), at=hlc(10), device="dev-z")
    assert merged_every_way([base, later, earlier]).properties["phone"].value == "late"
    # same clock: device id breaks the tie, then the event id
    x = event("x", ("c0",), lww("phone", "from-b"), at=hlc(10), device="dev-b")
    y = event("y", ("c0",), lww("phone", "from-a"), at=hlc(10), device="dev-a")
    assert merged_every_way([base, x, y]).properties["phone"].value == "from-b"
    y2 = event("y2", ("c0",), lww("phone", "from-y2"), at=hlc(10), device="dev-b")
    assert merged_every_way([base, x, y2]).properties["phone"].value == "from-y2"


def test_last_write_in_one_event_wins():
    state = merge([create("c0"), event("a1", ("c0",), lww("phone", "1"), lww("phone", "2"))])
    assert state.properties["phone"].value == "2"


# --- manual --------------------------------------------------------------------------------


def conflicting() -> list[Event]:
    return [
        create("c0"),
        event("a1", ("c0",), manual("risk", "high"), at=hlc(10), device="dev-a"),
        event("b1", ("c0",), manual("risk", "medium"), at=hlc(11), device="dev-b",
              user="officer-b"),
    ]


def test_concurrent_manual_edits_open_a_conflict():
    state = merged_every_way(conflicting())
    [conflict] = state.conflicts
    assert conflict.id == conflict_id(CASE, "risk", ["b1", "a1"])
    assert re.fullmatch(r"cf-[0-9a-f]{32}", conflict.id)
    assert conflict.property == "risk"
    assert [(c.value, c.provenance.event_id, c.provenance.device_id, c.provenance.user_id)
            for c in conflict.candidates] == [("high", "a1", "dev-a", "officer-a"),
                                              ("medium", "b1", "dev-b", "officer-b")]
    assert conflict.provisional.value == "medium"
    risk = state.properties["risk"]
    assert (risk.value, risk.conflict_id, risk.policy) == ("medium", conflict.id, "manual")


def test_concurrent_equal_manual_values_do_not_conflict():
    events = [create("c0"),
              event("a1", ("c0",), manual("risk", "high"), at=hlc(10), device="dev-a"),
              event("b1", ("c0",), manual("risk", "high"), at=hlc(11), device="dev-b")]
    state = merged_every_way(events)
    assert state.conflicts == () and state.properties["risk"].conflict_id is None


def test_values_compare_strictly():
    events = [create("c0"),
              event("a1", ("c0",), manual("count", 1), device="dev-a"),
              event("b1", ("c0",), manual("count", 1.0), device="dev-b")]
    assert len(merge(events).conflicts) == 1


def test_causally_later_manual_edit_does_not_conflict():
    events = [create("c0"),
              event("a1", ("c0",), manual("risk", "high"), at=hlc(10)),
              event("b1", ("a1",), manual("risk", "low"), at=hlc(7), device="dev-b")]
    state = merged_every_way(events)
    assert state.conflicts == () and state.properties["risk"].value == "low"


def test_resolution_supersedes_the_conflict():
    events = conflicting()
    cid = merge(events).conflicts[0].id
    events.append(staff("r1", ("a1", "b1"), resolve(cid, "risk", "high"), at=hlc(6)))
    state = merged_every_way(events)
    assert state.conflicts == ()
    risk = state.properties["risk"]
    assert (risk.value, risk.conflict_id, risk.provenance.event_id) == ("high", None, "r1")
    [done] = state.resolved_conflicts
    assert (done.id, done.property, done.resolution.value, done.reason) == (
        cid, "risk", "high", "checked with the officer")
    assert [c.provenance.event_id for c in done.candidates] == ["a1", "b1"]


def test_late_concurrent_write_reopens_a_new_conflict():
    events = conflicting()
    cid = merge(events).conflicts[0].id
    events.append(staff("r1", ("a1", "b1"), resolve(cid, "risk", "high"), at=hlc(12)))
    # dev-c edited offline from the create, never saw the conflict or the resolution
    events.append(event("c1", ("c0",), manual("risk", "low"), at=hlc(13), device="dev-c"))
    state = merged_every_way(events)
    [reopened] = state.conflicts
    assert reopened.id != cid
    assert reopened.id == conflict_id(CASE, "risk", ["r1", "c1"])
    assert [c.value for c in reopened.candidates] == ["high", "low"]
    assert state.properties["risk"].value == "low"  # provisional: greatest key
    assert [r.id for r in state.resolved_conflicts] == [cid]


def test_late_write_that_agrees_with_the_resolution_does_not_reopen():
    events = conflicting()
    events.append(staff("r1", ("a1", "b1"), resolve("cf-x", "risk", "high"), at=hlc(12)))
    events.append(event("c1", ("c0",), manual("risk", "high"), at=hlc(13), device="dev-c"))
    assert merged_every_way(events).conflicts == ()


def test_edit_after_pulling_the_resolution_wins_without_conflict():
    events = conflicting()
    events.append(staff("r1", ("a1", "b1"), resolve("cf-x", "risk", "high"), at=hlc(12)))
    events.append(event("a2", ("r1",), manual("risk", "low"), at=hlc(5)))
    state = merged_every_way(events)
    assert state.conflicts == () and state.properties["risk"].value == "low"


def test_resolve_of_a_property_never_declared_is_held():
    state = merge([create("c0"), staff("r1", ("c0",), resolve("cf-x", "ghost", 1))])
    assert held(state) == [("r1", 0, "unknown_property")]


# --- append / sum ----------------------------------------------------------------------------


def test_sum_and_append_merge_as_sets():
    events = [
        create("c0"),
        event("a1", ("c0",), add("hours", 3), append("visits", "home visit"), at=hlc(10)),
        event("b1", ("c0",), add("hours", 2), add("hours", 1.5), append("visits", "phone call"),
              at=hlc(9), device="dev-b"),
    ]
    state = merged_every_way(events + events[1:])  # duplicates count once
    hours = state.properties["hours"]
    assert (hours.value, hours.count, hours.policy, hours.conflict_id) == (6.5, 3, "sum", None)
    visits = state.properties["visits"]
    assert visits.count == 2
    assert [(e.entry_id, e.value) for e in visits.value] == [("b1:2", "phone call"),
                                                            ("a1:1", "home visit")]
    assert state.conflicts == ()


def test_integer_sums_stay_integers_and_float_sums_are_exact():
    events = [create("c0")] + [event(f"e{i}", ("c0",), add("hours", 0.1), device=f"d{i}")
                               for i in range(10)]
    assert merge(events).properties["hours"].value == 1.0
    ints = [create("c0"), event("a", ("c0",), add("hours", 2), add("hours", 5))]
    assert merge(ints).properties["hours"].value == 7
    assert isinstance(merge(ints).properties["hours"].value, int)


def test_same_id_with_different_content_is_refused():
    first = event("a1", ("c0",), add("hours", 3))
    with pytest.raises(EventMismatch):
        merge([create("c0"), first, event("a1", ("c0",), add("hours", 4))])
    with pytest.raises(EventMismatch):  # 3 is not 3.0
        merge([create("c0"), first, event("a1", ("c0",), add("hours", 3.0))])
    # the same event again, with another arrival sequence: counted once
    again = event("a1", ("c0",), add("hours", 3), seq=42)
    assert merge([create("c0"), first, again]).properties["hours"].count == 1


def test_seq_does_not_matter():
    events = conflicting()
    renumbered = [event(e.id, tuple(e.parents), *e.ops, at=e.hlc, device=e.device_id,
                        user=e.user_id, seq=100 - i) for i, e in enumerate(events)]
    assert merge(events).to_dict() == merge(renumbered).to_dict()


# --- server properties ------------------------------------------------------------------------


def test_server_properties_set_at_intake_and_by_staff_only():
    intake = create("c0", {"type": "set", "property": "court_hours", "value": 120,
                           "policy": "server", "sensitivity": "restricted"})
    events = [
        intake,
        event("a1", ("c0",), {"type": "set", "property": "court_hours", "value": 80,
                              "policy": "server"}, lww("site", "X"), at=hlc(10)),
    ]
    state = merged_every_way(events)
    assert state.properties["court_hours"].value == 120
    assert state.properties["owner_service"].value == "S01"
    assert held(state) == [("a1", 0, "server_property"), ("a1", 1, "server_property")]
    events.append(staff("s1", ("c0",), {"type": "set", "property": "court_hours", "value": 150,
                                        "policy": "server"}, at=hlc(9)))
    state = merged_every_way(events)
    assert state.properties["court_hours"].value == 150
    assert state.properties["court_hours"].provenance.event_id == "s1"


def test_device_write_with_a_stale_policy_is_still_held():
    events = [create("c0", {"type": "set", "property": "court_hours", "value": 120,
                            "policy": "server"}, at=hlc(11)),
              event("a1", ("c0",), lww("court_hours", 1), at=hlc(9))]
    state = merge(events)
    assert state.properties["court_hours"].value == 120
    assert held(state) == [("a1", 0, "server_property")]


# --- status, close, transfer -------------------------------------------------------------------


def test_closed_case_holds_concurrent_and_later_device_edits():
    events = [
        create("c0"),
        event("a1", ("c0",), lww("phone", "before")),
        event("a2", ("a1",), lww("notes", "closing"),
              {"type": "close", "reason": "order completed", "date": "2025-01-31"}, at=hlc(12)),
        event("b1", ("c0",), lww("phone", "concurrent"), add("hours", 2), at=hlc(13),
              device="dev-b"),
        event("a3", ("a2",), lww("phone", "after")),
        staff("s1", ("a2",), lww("notes", "archived by staff"), at=hlc(14)),
    ]
    state = merged_every_way(events)
    assert state.status == "closed"
    assert state.closure is not None
    assert (state.closure.reason, state.closure.date, state.closure.provenance.event_id) == (
        "order completed", "2025-01-31", "a2")
    assert state.properties["phone"].value == "before"
    assert state.properties["notes"].value == "archived by staff"
    assert "hours" not in state.properties
    assert held(state) == [("a3", 0, "case_closed"), ("b1", 0, "case_closed"),
                           ("b1", 1, "case_closed")]


def test_reopening_releases_held_edits():
    events = [
        create("c0"),
        event("a1", ("c0",), {"type": "close", "reason": "done"}, at=hlc(12)),
        event("b1", ("c0",), lww("phone", "concurrent"), at=hlc(13), device="dev-b"),
        staff("s1", ("a1",), {"type": "set", "property": "status", "value": "active",
                              "reason": "closed by mistake"}, at=hlc(14)),
    ]
    state = merged_every_way(events)
    assert state.status == "active" and state.closure is None
    assert state.properties["phone"].value == "concurrent" and state.held == ()


def test_concurrent_status_changes_conflict_and_the_provisional_decides_holding():
    events = [
        create("c0"),
        event("a1", ("c0",), {"type": "close", "reason": "moved abroad"}, at=hlc(10)),
        event("b1", ("c0",), {"type": "transfer_request", "service": "S07", "reason": "moved"},
              lww("phone", "new"), at=hlc(11), device="dev-b"),
    ]
    state = merged_every_way(events)
    [conflict] = state.conflicts
    assert conflict.property == "status"
    assert [c.value for c in conflict.candidates] == ["closed", "transfer_pending"]
    assert state.status == "transfer_pending"
    assert state.pending_transfer is not None
    assert (state.pending_transfer.service, state.pending_transfer.reason) == ("S07", "moved")
    assert state.properties["phone"].value == "new"
    # the reviewer chooses the close: the closure keeps the officer's reason
    events.append(staff("r1", ("a1", "b1"), resolve(conflict.id, "status", "closed"),
                        at=hlc(12)))
    state = merged_every_way(events)
    assert state.status == "closed" and state.conflicts == () and state.pending_transfer is None
    assert state.closure is not None
    assert (state.closure.reason, state.closure.provenance.event_id) == ("moved abroad", "a1")
    # b1 is an ancestor of the resolution, so its edit stays applied
    assert state.properties["phone"].value == "new" and state.held == ()


def test_two_devices_closing_concurrently_do_not_conflict():
    events = [create("c0"),
              event("a1", ("c0",), {"type": "close", "reason": "r1"}, at=hlc(10)),
              event("b1", ("c0",), {"type": "close", "reason": "r2"}, at=hlc(11), device="dev-b")]
    state = merged_every_way(events)
    assert state.conflicts == () and state.status == "closed"
    assert state.closure is not None and state.closure.reason == "r2"


def test_transfer_request_then_staff_transfer():
    events = [create("c0"),
              event("a1", ("c0",), {"type": "transfer_request", "service": "S07",
                                    "reason": "moved"})]
    state = merge(events)
    assert state.status == "transfer_pending"
    events.append(staff("s1", ("a1",), {"type": "transfer", "service": "S07",
                                        "officer": "officer-z"}))
    state = merged_every_way(events)
    assert state.status == "active" and state.pending_transfer is None
    assert state.properties["owner_service"].value == "S07"
    assert state.properties["owner_officer"].value == "officer-z"
    assert state.properties["owner_officer"].provenance.event_id == "s1"


def test_device_cannot_send_staff_operations():
    events = [create("c0"),
              event("a1", ("c0",), {"type": "transfer", "service": "S07", "officer": None},
                    resolve("cf-x", "risk", "low"),
                    {"type": "set", "property": "status", "value": "active"},
                    append("status", "x"))]
    state = merge(events)
    assert held(state) == [("a1", 0, "staff_only"), ("a1", 1, "staff_only"),
                           ("a1", 2, "reserved_property"), ("a1", 3, "reserved_property")]
    assert state.status == "active"


# --- create, bad operations, policy disagreements ------------------------------------------------


def test_events_without_a_create_are_held():
    events = [event("a1", (), lww("phone", "1")), event("a2", ("a1",), add("hours", 1))]
    state = merged_every_way(events)
    assert (state.exists, state.status, state.properties) == (False, None, {})
    assert held(state) == [("a1", 0, "no_create"), ("a2", 0, "no_create")]
    assert state.created is None


def test_event_not_descending_from_the_create_is_held():
    state = merge([create("c0"), event("x", (), lww("phone", "1"))])
    assert state.exists and held(state) == [("x", 0, "no_create")]


def test_second_create_is_held():
    events = [create("c0", at=hlc(8)), create("c1", at=hlc(9), device="dev-b")]
    state = merged_every_way(events)
    assert state.created is not None and state.created.event_id == "c0"
    assert held(state) == [("c1", 0, "duplicate_create"), ("c1", 1, "server_property"),
                           ("c1", 2, "server_property")]


def test_invalid_operations_are_held_not_raised():
    bad: list[Any] = [
        "not an object", {"type": "explode"}, {"type": "set", "value": 1},
        {"type": "set", "property": "x", "value": 1, "policy": "whatever"},
        {"type": "add", "property": "hours", "value": "2"},
        {"type": "add", "property": "hours", "value": True},
        {"type": "set", "property": "x", "value": float("nan")},
        {"type": "set", "property": "x", "value": {1, 2}},
        {"type": "set", "property": "x", "value": 1, "sensitivity": "secret"},
        {"type": "transfer_request"},
    ]
    state = merge([create("c0"), event("a1", ("c0",), *bad)])
    assert held(state) == [("a1", i, "invalid_op") for i in range(len(bad))]
    json.dumps(state.to_dict())  # still serialisable
    assert all(operation_problem(op) for op in bad)


def test_policy_disagreement_is_decided_by_the_latest_declaration():
    events = [create("c0"),
              event("a1", ("c0",), lww("risk", "low", "public"), at=hlc(10)),
              event("b1", ("c0",), manual("risk", "high"), at=hlc(11), device="dev-b")]
    state = merged_every_way(events)
    risk = state.properties["risk"]
    assert (risk.policy, risk.sensitivity, len(state.conflicts)) == ("manual", "restricted", 1)
    events.append(event("a2", ("c0",), append("risk", "note"), at=hlc(12), device="dev-c"))
    state = merged_every_way(events)
    assert state.properties["risk"].policy == "append"
    assert held(state) == [("a1", 0, "policy_mismatch"), ("b1", 0, "policy_mismatch")]


def test_sensitivity_is_the_most_restrictive_declared():
    events = [create("c0"),
              event("a1", ("c0",), lww("phone", "1", "confidential"), at=hlc(10)),
              event("a2", ("a1",), lww("phone", "2", "public"), at=hlc(11))]
    assert merge(events).properties["phone"].sensitivity == "confidential"


# --- output shape --------------------------------------------------------------------------------


def test_to_dict_shape_is_stable_and_json():
    events = conflicting() + [event("a2", ("a1",), append("visits", {"kind": "home"}),
                                    add("hours", 2))]
    data = merge(events).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert list(data) == ["case_id", "exists", "status", "revision", "heads", "created",
                          "properties", "conflicts", "resolved_conflicts", "held",
                          "pending_transfer", "closure"]
    assert list(data["properties"]) == sorted(data["properties"])
    assert data["properties"]["visits"]["value"] == [{
        "entry_id": "a2:0", "value": {"kind": "home"},
        "provenance": {"event_id": "a2", "device_id": "dev-a", "user_id": "officer-a",
                       "hlc": hlc(9)}}]
    assert set(data["properties"]["risk"]) == {"value", "policy", "sensitivity", "provenance",
                                               "conflict_id", "count"}
    assert set(data["conflicts"][0]) == {"id", "property", "candidates", "provisional"}


def test_merge_accepts_a_history():
    events = conflicting()
    assert merge(History(events)) == merge(events)


def test_docs_list_every_held_reason():
    text = DOCS.read_text(encoding="utf-8")
    for reason in HeldReason:
        assert f"`{reason}`" in text, reason
