"""Device clients as separate processes: each takes device outboxes from a queue and pushes
them batch by batch over one keep-alive HTTP connection, timing every request."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import pickle
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.workload import Task


def outcomes(payload: bytes) -> list[tuple[str, str]]:
    """(status, code) per item of a FieldSync push answer or a Kinto batch answer."""
    body = json.loads(payload)
    if "results" in body:
        return [(r["status"], str(r.get("code"))) for r in body["results"]]
    return [("accepted" if r["status"] in (200, 201) else "rejected", str(r["status"]))
            for r in body["responses"]]


def _worker(port: int, tasks: Any, results: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    while True:
        item = tasks.get()
        if item is None:
            return
        task_id, path = item
        with open(path, "rb") as handle:
            data = pickle.load(handle)
        headers = {"Authorization": data["authorization"], "Content-Type": "application/json"}
        url = data["url"]
        latencies: list[float] = []
        statuses: Counter[str] = Counter()
        rejections: Counter[str] = Counter()
        errors: list[str] = []
        for body in data["bodies"]:
            started = time.perf_counter()
            try:
                conn.request("POST", url, body, headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - started)
            if response.status != 200:
                errors.append(f"HTTP {response.status}: {payload[:300]!r}")
                continue
            for status, code in outcomes(payload):
                statuses[status] += 1
                if status != "accepted":
                    rejections[code] += 1
        results.put((task_id, latencies, dict(statuses), dict(rejections), errors[:3]))


@dataclass
class PushOutcome:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    round_seconds: list[float] = field(default_factory=list)
    rss_after_round: list[float] = field(default_factory=list)


class ClientPool:
    """``size`` client processes; :meth:`run` pushes rounds of tasks with a barrier between
    rounds (a round's outboxes all land before the next round's devices push)."""

    def __init__(self, port: int, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.tasks = context.Queue()
        self.results = context.Queue()
        self.processes = [context.Process(target=_worker, args=(port, self.tasks, self.results),
                                          daemon=True) for _ in range(size)]
        for process in self.processes:
            process.start()

    def run(self, rounds: list[list[Task]], on_round: Any = None) -> PushOutcome:
        outcome = PushOutcome()
        started = time.perf_counter()
        for tasks in rounds:
            round_started = time.perf_counter()
            for i, task in enumerate(tasks):
                self.tasks.put((i, str(task.path)))
            for _ in tasks:
                _, latencies, statuses, rejections, errors = self.results.get(timeout=900)
                outcome.latencies.extend(latencies)
                outcome.statuses.update(statuses)
                outcome.rejections.update(rejections)
                outcome.errors.extend(errors)
            outcome.round_seconds.append(time.perf_counter() - round_started)
            if on_round is not None:
                outcome.rss_after_round.append(on_round())
        outcome.seconds = time.perf_counter() - started
        return outcome

    def cpu_seconds(self) -> float:
        from bench.server import cpu_seconds

        return cpu_seconds([p.pid for p in self.processes if p.pid is not None])

    def close(self) -> None:
        for _ in self.processes:
            self.tasks.put(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
