"""Scenario 4, peer: the same ingest and incremental-pull workload against Kinto.

Kinto (a JSON record store built for offline-first sync) is installed on demand into its own
virtual environment, ``bench/.kinto-venv`` (never into the project's), and run as its own
process on loopback: basic auth, ``batch_max_requests = 100`` so its batches are FieldSync's,
logging at WARNING, memory and PostgreSQL storage (``kinto migrate`` into a database of its own).
Kinto stores plain JSON: no encryption, no signature, no validation, no merging -- every figure
line says so.

* ingest: the first ``--kinto-n`` submissions of the FieldSync plan (same devices, same outbox
  batches), their plaintext payloads pushed as client-id creates (``PUT .../records/<id>`` with
  ``If-None-Match: *``) in ``/v1/batch`` requests, one collection per officer caseload.
* pull (PostgreSQL): the same store sizes; the officer's caseload is a collection of 120
  records among the others; records are seeded into Kinto's ``objects`` table directly (the
  HTTP API loads about 50 records/s), 50 in-scope and 5,000 out-of-scope changes are applied
  with SQL (Kinto's trigger stamps them), then ``GET .../records?_since=<etag>`` is timed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import pickle
import random
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench.clients import ClientPool
from bench.figures import Report, log, percentile
from bench.server import free_port, stop_process, wait_http
from bench.stores import pg_admin, pg_url
from bench.workload import build_org, build_plan

VENV = Path(__file__).resolve().parent / ".kinto-venv"
KINTO = VENV / "bin" / "kinto"
AUTH = "Basic " + base64.b64encode(b"bench:bench-password").decode()
BUCKET = "bench"
PLAIN = "Kinto: plain JSON, no encryption, validation or merging"
FOCUS = "bench-officer"

INI = """\
[server:main]
use = egg:waitress#main
host = 127.0.0.1
port = %(http_port)s
threads = {threads}

[app:main]
use = egg:kinto
kinto.storage_backend = kinto.core.storage.{backend}
kinto.storage_url = {url}
kinto.cache_backend = kinto.core.cache.memory
kinto.permission_backend = kinto.core.permission.{backend}
kinto.permission_url = {url}
kinto.userid_hmac_secret = {secret}
multiauth.policies = basicauth
kinto.bucket_create_principals = system.Authenticated
kinto.batch_max_requests = 100

[loggers]
keys = root, kinto

[handlers]
keys = console

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers = console

[logger_kinto]
level = WARNING
handlers = console
qualname = kinto
propagate = 0

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = plain

[formatter_plain]
format = %(asctime)s %(levelname)s %(name)s %(message)s
"""


def ensure_kinto() -> Path:
    """Install Kinto into ``bench/.kinto-venv`` the first time it is needed."""
    if KINTO.exists():
        return KINTO
    log(f"installing Kinto into {VENV} (first run only)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "kinto", "kinto[postgresql]"], check=True)
    return KINTO


class Kinto:
    """One Kinto process over the memory or PostgreSQL backend."""

    def __init__(self, backend: str, workdir: Path, threads: int) -> None:
        self.backend = backend
        self.workdir = workdir
        self.port = free_port()
        self.db_name: str | None = None
        self.url = ""
        if backend == "postgresql":
            self.db_name = f"bench_kinto_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            pg_admin(f'CREATE DATABASE "{self.db_name}"')
            self.url = pg_url(self.db_name)
        self.ini = workdir / f"kinto-{backend}.ini"
        self.ini.write_text(INI.format(backend=backend, url=self.url, threads=threads,
                                       secret=secrets.token_hex(16)))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Kinto:
        kinto = ensure_kinto()
        log_file = open(self.workdir / f"kinto-{self.backend}.log", "ab")  # noqa: SIM115
        if self.backend == "postgresql":
            subprocess.run([str(kinto), "migrate", "--ini", str(self.ini)], check=True,
                           stdout=log_file, stderr=subprocess.STDOUT)
        self.process = subprocess.Popen(
            [str(kinto), "start", "--ini", str(self.ini), "--port", str(self.port)],
            stdout=log_file, stderr=subprocess.STDOUT, cwd=self.workdir)
        wait_http(self.port, "/v1/", 60, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        if self.db_name:
            pg_admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            self.db_name = None

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, data, {"Authorization": AUTH,
                                          "Content-Type": "application/json",
                                          **(headers or {})})
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        return response.status, payload, {k.lower(): v for k, v in response.getheaders()}

    def create_collections(self, names: list[str]) -> None:
        status, body, _ = self.request("PUT", f"/v1/buckets/{BUCKET}", {"data": {}})
        assert status in (200, 201), body
        for start in range(0, len(names), 100):
            requests = [{"method": "PUT", "path": f"/buckets/{BUCKET}/collections/{name}",
                         "body": {"data": {}}} for name in names[start:start + 100]]
            status, body, _ = self.request("POST", "/v1/batch", {"requests": requests})
            assert status == 200, body


def collection(officer: int) -> str:
    return f"officer-{officer:04d}"


def ingest(report: Report, backend: str, args: argparse.Namespace, workdir: Path) -> float:
    org = build_org(args.devices)
    plan = build_plan(org, args.n, args.cases, seed=args.seed)
    subset = plan.submissions[:args.kinto_n]
    owner = {c.case_id: c.officer for c in plan.cases}
    kinto = Kinto(backend, workdir, args.kinto_threads)
    try:
        kinto.start()
        kinto.create_collections(sorted({collection(owner[s.case_id]) for s in subset}))
        tasks_dir = workdir / f"kinto-tasks-{backend}"
        tasks_dir.mkdir(exist_ok=True)
        grouped: dict[tuple[int, int], list[Any]] = {}
        for s in subset:
            grouped.setdefault((s.round, s.device), []).append(s)
        rounds: dict[int, list[Any]] = {}
        from bench.workload import PUSH_BATCH, Task

        for (rnd, device), subs in grouped.items():
            bodies = []
            for i in range(0, len(subs), PUSH_BATCH):
                requests = [{"path": f"/buckets/{BUCKET}/collections/"
                                     f"{collection(owner[s.case_id])}/records/{s.submission_id}",
                             "body": {"data": s.payload()}} for s in subs[i:i + PUSH_BATCH]]
                bodies.append(json.dumps({"defaults": {"method": "PUT",
                                                       "headers": {"If-None-Match": "*"}},
                                          "requests": requests}).encode())
            path = tasks_dir / f"r{rnd}-d{device}.pkl"
            path.write_bytes(pickle.dumps({"authorization": AUTH, "url": "/v1/batch",
                                           "bodies": bodies, "count": len(subs)}))
            rounds.setdefault(rnd, []).append(Task(rnd, device, path, len(subs)))
        log(f"peer.kinto.{backend}: pushing {len(subset)} records with {args.clients} clients")
        with ClientPool(kinto.port, args.clients) as pool:
            outcome = pool.run([rounds[r] for r in sorted(rounds)])
        accepted = outcome.statuses.get("accepted", 0)
        if accepted != len(subset) or outcome.errors:
            log(f"peer.kinto.{backend}: WARNING {accepted}/{len(subset)} stored; "
                f"{dict(outcome.rejections)} {outcome.errors[:3]}")
        rate = accepted / outcome.seconds
        report.add(f"peer.kinto.{backend}.ingest_per_s", rate, "rec/s",
                   f"{PLAIN}; {accepted} records in {outcome.seconds:.1f} s")
        report.add(f"peer.kinto.{backend}.batch_p50", percentile(outcome.latencies, 50) * 1000,
                   "ms", PLAIN)
        report.add(f"peer.kinto.{backend}.batch_p99", percentile(outcome.latencies, 99) * 1000,
                   "ms", PLAIN)
        return rate
    finally:
        kinto.stop()


def pull(report: Report, args: argparse.Namespace, workdir: Path) -> dict[int, float]:
    """``_since`` pulls on Kinto/PostgreSQL at each store size."""
    from bench.pull import CASELOAD, IN_SCOPE, OUT_OF_SCOPE, label

    rng = random.Random(args.seed)
    kinto = Kinto("postgresql", workdir, args.kinto_threads)
    medians: dict[int, float] = {}
    try:
        kinto.start()
        sizes = sorted(args.pull_sizes)
        others = [f"caseload-{i:03d}" for i in range(max(10, min(200, sizes[-1] // 500)))]
        kinto.create_collections([FOCUS, *others])
        template = case_like_record(rng)
        focus_ids: list[str] = []
        other_ids: list[tuple[str, str]] = []
        total = 0
        for size in sizes:
            prefix = f"peer.kinto.postgresql.{label(size)}"
            started = time.perf_counter()
            rows = []
            for i in range(size - total):
                record_id = str(uuid.uuid4())
                if total == 0 and i % max(1, size // CASELOAD) == 0 and \
                        len(focus_ids) < CASELOAD:
                    focus_ids.append(record_id)
                    name = FOCUS
                else:
                    name = rng.choice(others)
                    other_ids.append((record_id, name))
                rows.append((record_id, f"/buckets/{BUCKET}/collections/{name}",
                             json.dumps({**template, "id": record_id})))
            seed_objects(kinto.url, rows)
            total = size
            log(f"{prefix}: {size} records seeded in {time.perf_counter() - started:.0f} s")
            status, body, headers = kinto.request(
                "GET", f"/v1/buckets/{BUCKET}/collections/{FOCUS}/records")
            assert status == 200 and len(json.loads(body)["data"]) == CASELOAD
            since = headers["etag"].strip('"')
            outside = min(OUT_OF_SCOPE, len(other_ids))
            change_objects(kinto.url, rng, focus_ids, other_ids, IN_SCOPE, outside)
            incremental = time_get(kinto, f"/v1/buckets/{BUCKET}/collections/{FOCUS}/records"
                                          f"?_since={since}", args.repeat)
            full = time_get(kinto, f"/v1/buckets/{BUCKET}/collections/{FOCUS}/records",
                            args.repeat)
            assert incremental[3] == IN_SCOPE, incremental[3]
            report.add(f"{prefix}.since_p50", incremental[0], "ms",
                       f"{PLAIN}; {IN_SCOPE} changes in scope, {outside} outside")
            report.add(f"{prefix}.since_p99", incremental[1], "ms", PLAIN)
            report.add(f"{prefix}.since_bytes", incremental[2], "bytes", PLAIN)
            report.add(f"{prefix}.full_p50", full[0], "ms", f"{PLAIN}; {full[3]} records")
            report.add(f"{prefix}.full_bytes", full[2], "bytes", PLAIN)
            medians[size] = incremental[0]
    finally:
        kinto.stop()
    return medians


def case_like_record(rng: random.Random) -> dict[str, Any]:
    """A record the size and shape of a case as FieldSync's pull returns it."""
    from bench.seed import intake_templates

    ops = intake_templates(rng, 1)[0]
    return {"properties": {op["property"]: {"value": op["value"], "policy": op.get("policy"),
                                            "sensitivity": op.get("sensitivity"),
                                            "hlc": "001732412345678-000000-bench"}
                           for op in ops if op.get("property")},
            "status": "active", "revision": 1}


def seed_objects(url: str, rows: list[tuple[str, str, str]]) -> None:
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            for start in range(0, len(rows), 5000):
                cur.executemany(
                    "INSERT INTO objects (id, parent_id, resource_name, last_modified, data, "
                    "deleted) VALUES (%s, %s, 'record', NULL, %s::jsonb, false)",
                    rows[start:start + 5000])
                conn.commit()
        conn.execute("ANALYZE")
        conn.commit()


def change_objects(url: str, rng: random.Random, focus_ids: list[str],
                   other_ids: list[tuple[str, str]], in_scope: int, outside: int) -> None:
    targets = [(i, f"/buckets/{BUCKET}/collections/{FOCUS}")
               for i in rng.sample(focus_ids, in_scope)]
    targets += [(i, f"/buckets/{BUCKET}/collections/{name}")
                for i, name in rng.sample(other_ids, outside)]
    rng.shuffle(targets)
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE objects SET data = data || jsonb_build_object('last_visit', "
                "clock_timestamp()::text), last_modified = NULL WHERE id = %s AND parent_id = %s "
                "AND resource_name = 'record'", targets)
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()


def time_get(kinto: Kinto, path: str, repeat: int) -> tuple[float, float, int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", kinto.port, timeout=60)
    times, body = [], b""
    for i in range(repeat + 3):
        started = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": AUTH})
        response = conn.getresponse()
        body = response.read()
        if i >= 3:
            times.append(time.perf_counter() - started)
        assert response.status == 200, body[:200]
    conn.close()
    return (percentile(times, 50) * 1000, percentile(times, 99) * 1000, len(body),
            len(json.loads(body)["data"]))


def run(report: Report, args: argparse.Namespace) -> None:
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="fieldsync-bench-kinto-"))
    try:
        ensure_kinto()
        rates = {}
        for backend in [b.strip() for b in args.kinto_backends.split(",") if b.strip()]:
            rates[backend] = ingest(report, backend, args, workdir)
        since = pull(report, args, workdir) if "postgresql" in args.kinto_backends else {}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # Kinto's configuration, logs and tasks
    pairs = [("sqlite", "memory"), ("postgresql", "postgresql")]
    for ours, theirs in pairs:
        mine = report.get(f"ingest.{ours}.submissions_per_s")
        if mine is not None and theirs in rates:
            report.add(f"peer.ingest.fieldsync_{ours}_over_kinto_{theirs}", mine / rates[theirs],
                       "x", f"target >= 20x; FieldSync seals, verifies, validates and merges, "
                       f"{PLAIN.lower()}")
            # What 20x the peer leaves per submission in CPU, everything included, against
            # what opening an envelope alone costs and what FieldSync used in this run.
            floor = report.get(f"ingest.{ours}.crypto_floor_per_s")
            bound = report.get(f"ingest.{ours}.cpu_bound_rate")
            if floor and bound:
                cores = os.cpu_count() or 1
                report.add(f"peer.ingest.cpu_budget_for_20x_kinto_{theirs}",
                           1000 * cores / (20 * rates[theirs]), "ms",
                           f"CPU per submission on {cores} cores at 20 x {rates[theirs]:.0f} "
                           f"rec/s, server, database, clients and OS included; opening and "
                           f"verifying one envelope alone takes {1000 / floor:.2f} ms; "
                           f"FieldSync on {ours} used {1000 * cores / bound:.2f} ms")
    if since:
        from bench.pull import label

        size = max(since)
        for ours in ("sqlite", "postgresql"):
            mine = report.get(f"pull.{ours}.{label(size)}.incremental_p50")
            if mine is not None:
                report.add(f"peer.pull.fieldsync_{ours}_over_kinto_postgresql", mine / since[size],
                           "x", f"incremental p50 / _since p50 at {label(size)} (<= 1 meets the "
                           f"target); {PLAIN.lower()}")
