"""Micro-benchmark of the merge alone, for before/after comparisons of merge changes that the
end-to-end figures are too noisy to show (this machine drifts by 10-20% over minutes).

300 synthetic cases of 2-6 events with 8 operations each (sets with lww/manual policies,
appends, adds; one event in five concurrent with its predecessor), merged and turned into
dicts; prints the best of 9 rounds. Run each checkout in turn, alternating:
``PYTHONPATH=<checkout> python -m bench merge``.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from bench.figures import Report
from fieldsync.core.merge import Event, merge

CASES = 300
ROUNDS = 9


def random_op(rnd: random.Random, p: int) -> dict[str, Any]:
    kind = rnd.choice(["set", "set", "append", "add"])
    if kind == "set":
        return {"type": "set", "property": f"p{p}",
                "value": rnd.choice(["a", "b", 3, None, {"x": [1, 2]}]),
                "policy": rnd.choice(["lww", "manual"]) if p < 4 else "lww",
                "sensitivity": "restricted"}
    if kind == "append":
        return {"type": "append", "property": f"log{p}", "value": {"note": "visit", "h": 1},
                "sensitivity": "confidential"}
    return {"type": "add", "property": f"sum{p}", "value": 1.5, "sensitivity": "public"}


def histories(seed: int = 1) -> list[list[Event]]:
    rnd = random.Random(seed)
    cases = []
    for _ in range(CASES):
        case_id = str(uuid.UUID(int=rnd.getrandbits(128)))
        events: list[Event] = []
        heads: list[str] = []
        for k in range(rnd.randint(2, 6)):
            ops = [{"type": "create"}] if k == 0 else []
            ops += [random_op(rnd, p) for p in range(8)]
            event_id = str(uuid.UUID(int=rnd.getrandbits(128)))
            parents = heads if rnd.random() < 0.8 or not events else [events[0].id]
            device = f"d{rnd.randint(0, 3)}"
            millis = 1_700_000_000_000 + k * 1000 + rnd.randint(0, 5)
            events.append(Event(id=event_id, case_id=case_id, parents=frozenset(parents),
                                hlc=f"{millis:015d}-0000-{device}", device_id=device,
                                user_id="u", actor="device", ops=tuple(ops)))
            heads = [event_id]
        cases.append(events)
    return cases


def run(report: Report) -> None:
    cases = histories()
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for events in cases:
            merge(events).to_dict()
        best = min(best, time.perf_counter() - started)
    report.add("merge_micro.per_case", best * 1e6 / len(cases), "us",
               f"merge + to_dict, best of {ROUNDS} rounds over {len(cases)} cases")


if __name__ == "__main__":
    run(Report())
