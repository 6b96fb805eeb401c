"""Scenario 2, pull: an officer's tablet pulling its caseload from a large case store.

The store holds ``size`` cases (10,000 and 100,000 by default); the officer's caseload is 120 of
them, spread over the whole sequence range. After the tablet's first full pull, 50 of its cases
change and 5,000 cases outside its scope change (interleaved). Timed: the HTTP requests only --
the first full pull (cursor 0) and the incremental pull from the tablet's cursor, each repeated
(pulls are reads, so repeating one is measuring the same work). Bytes are response bodies.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import time
from dataclasses import dataclass

from bench.figures import Report, log, percentile
from bench.seed import Seeded, apply_changes, create_officers, seed_cases
from bench.server import Server
from bench.stores import Store

FOCUS = "bench.officer"
CASELOAD = 120
IN_SCOPE = 50
OUT_OF_SCOPE = 5_000


@dataclass
class Timing:
    p50_ms: float
    p99_ms: float
    bytes: int
    cases: int


def label(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def enrol_focus(store: Store) -> str:
    from fieldsync.core.keys import encode_signing_public_key, generate_signing_key
    from fieldsync.services import devices as devices_service

    with store.app.app_context():
        code = devices_service.issue_code(FOCUS, 3600).code
        response = store.app.test_client().post("/api/v1/devices/enroll", json={
            "code": code,
            "public_key": encode_signing_public_key(generate_signing_key().public_key())})
        assert response.status_code == 201, response.json
        assert response.json is not None
        token: str = response.json["device_token"]
    store.dispose()
    return token


def get(conn: http.client.HTTPConnection, path: str, token: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"pull answered {response.status}: {body[:300]!r}")
    return elapsed, body


def time_pull(port: int, token: str, cursor: int, repeat: int) -> Timing:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    path = f"/api/v1/sync/pull?cursor={cursor}"
    for _ in range(3):
        get(conn, path, token)  # warm-up
    times, body = [], b""
    for _ in range(repeat):
        elapsed, body = get(conn, path, token)
        times.append(elapsed)
    conn.close()
    cases = len(json.loads(body)["cases"])
    return Timing(percentile(times, 50) * 1000, percentile(times, 99) * 1000, len(body), cases)


def run(report: Report, backend: str, args: argparse.Namespace) -> dict[int, float]:
    rng = random.Random(args.seed)
    store = Store.create(backend, "pull")
    medians: dict[int, float] = {}
    try:
        store.initialise()
        sizes = sorted(args.pull_sizes)
        seeded = Seeded(officers=create_officers(store, max(10, min(1000, sizes[-1] // 120)),
                                                 FOCUS))
        token = enrol_focus(store)
        total = 0
        for size in sizes:
            prefix = f"pull.{backend}.{label(size)}"
            started = time.perf_counter()
            seed_cases(store, seeded, size - total, focus=FOCUS,
                       focus_count=CASELOAD if total == 0 else 0, rng=rng)
            total = size
            store.analyze()
            log(f"{prefix}: {size} cases seeded in {time.perf_counter() - started:.0f} s")
            with Server(store, threads=args.threads, gc_threshold=args.gc_threshold) as server:
                _, body = get(http.client.HTTPConnection("127.0.0.1", server.port),
                              "/api/v1/sync/pull?cursor=0&limit=1000", token)
                first = json.loads(body)
                cursor = first["cursor"]
                assert len(first["cases"]) == CASELOAD and not first["more"], \
                    (len(first["cases"]), first["more"])
                outside = min(OUT_OF_SCOPE, len(seeded.other_cases))
                changed = time.perf_counter()
                apply_changes(store, seeded, IN_SCOPE, outside, rng)
                log(f"{prefix}: {IN_SCOPE}+{outside} changes through CaseWriter in "
                    f"{time.perf_counter() - changed:.0f} s")
                store.analyze()
                incremental = time_pull(server.port, token, cursor, args.repeat)
                full = time_pull(server.port, token, 0, args.repeat)
            assert incremental.cases == IN_SCOPE, incremental.cases
            note = f"{IN_SCOPE} changes in scope, {outside} outside, {size} cases"
            if args.gc_threshold:
                note += f", server gc threshold {args.gc_threshold}"
            report.add(f"{prefix}.incremental_p50", incremental.p50_ms, "ms", note)
            report.add(f"{prefix}.incremental_p99", incremental.p99_ms, "ms")
            report.add(f"{prefix}.incremental_bytes", incremental.bytes, "bytes")
            report.add(f"{prefix}.full_p50", full.p50_ms, "ms", f"{full.cases} cases")
            report.add(f"{prefix}.full_p99", full.p99_ms, "ms")
            report.add(f"{prefix}.full_bytes", full.bytes, "bytes")
            medians[size] = incremental.p50_ms
        if len(sizes) > 1:
            report.add(f"pull.{backend}.incremental_growth", medians[sizes[-1]] / medians[sizes[0]],
                       "x", f"p50 at {label(sizes[-1])} / p50 at {label(sizes[0])} (flat = 1)")
    finally:
        store.destroy()
    return medians


