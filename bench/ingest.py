"""Scenario 1, ingest: sealed submissions from many devices, pushed over HTTP to reconciled.

Timed window: from the first push of round 0 to the last answer of the last round; every
answer is sent only after the server committed the reconciled case (``docs/protocol.md``), so
the rate is end to end. Sealing happens before the window (devices seal offline).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from bench import floors
from bench.clients import ClientPool
from bench.figures import Report, log, percentile
from bench.org import create_org
from bench.server import Server, machine_cpu_seconds
from bench.stores import Store
from bench.workload import (
    DeviceCredential,
    Plan,
    Task,
    build_org,
    build_plan,
    check_plan,
    seal_plan,
    write_tasks,
)


@dataclass
class Settings:
    n: int = 50_000
    devices: int = 500
    cases: int = 20_000
    clients: int = 8
    threads: int = 8
    server: str = "waitress"
    workers: int = 2
    seed: int = 1
    quick: bool = False
    gc_threshold: int = 0


@dataclass
class IngestRun:
    """What a later scenario (rebuild, peer) may reuse from an ingest run."""

    store: Store
    plan: Plan
    rate: float


@dataclass
class Prepared:
    store: Store
    plan: Plan
    credentials: list[DeviceCredential]
    sealed: dict[str, str]
    rounds: list[list[Task]]


def prepare(backend: str, settings: Settings, prefix: str) -> Prepared:
    """Plan, store, organisation, sealed envelopes and task files (nothing timed)."""
    org = build_org(settings.devices)
    plan = build_plan(org, settings.n, settings.cases, seed=settings.seed)
    n = len(plan.submissions)
    log(f"{prefix}: {n} submissions, {len(plan.cases)} cases, {len(org.devices)} devices, "
        f"{plan.pairs} concurrent manual-property pairs, {plan.rounds} update rounds")
    check_plan(plan, None if settings.quick else 40)
    store = Store.create(backend, "ingest")
    try:
        store.initialise()
        credentials, server_key = create_org(store, org)
        log(f"{prefix}: sealing {n} envelopes (not timed)")
        sealed = seal_plan(plan, credentials, server_key)
        rounds = write_tasks(plan, sealed, credentials, store.data_dir / "tasks")
    except BaseException:
        store.destroy()
        raise
    return Prepared(store, plan, credentials, sealed, rounds)


def run(report: Report, backend: str, settings: Settings, *, keep: bool = False
        ) -> IngestRun | None:
    prefix = f"ingest.{backend}"
    prepared = prepare(backend, settings, prefix)
    store, plan, credentials, sealed, rounds = (prepared.store, prepared.plan,
                                                prepared.credentials, prepared.sealed,
                                                prepared.rounds)
    n = len(plan.submissions)
    try:
        device_ids = {c.device_id: c for c in credentials}
        by_index = {c.index: c.device_id for c in credentials}
        pairs = [(by_index[s.device], sealed[s.submission_id]) for s in plan.submissions]
        log(f"{prefix}: crypto floor over {n} envelopes")
        crypto = floors.crypto_floor(pairs, device_ids, store.data_dir / "keyring.json")

        server = Server(store, kind=settings.server, threads=settings.threads,
                        workers=settings.workers, gc_threshold=settings.gc_threshold)
        log(f"{prefix}: pushing with {settings.clients} client processes to "
            f"{server.description}")
        with server, ClientPool(server.port, settings.clients) as pool:
            cpu_before = (server.cpu_seconds(), pool.cpu_seconds(), machine_cpu_seconds())
            outcome = pool.run(rounds, on_round=server.rss_mb)
            cpu_after = (server.cpu_seconds(), pool.cpu_seconds(), machine_cpu_seconds())
            peak = server.peak_rss_mb()
        # "duplicate" with a receipt is also reconciled: the server's recovery job (every 60 s)
        # may finish a stored envelope before the request that stored it does.
        accepted = outcome.statuses.get("accepted", 0) + outcome.statuses.get("duplicate", 0)
        if accepted != n or outcome.errors:
            log(f"{prefix}: WARNING {accepted}/{n} reconciled; statuses "
                f"{dict(outcome.statuses)}; rejections {dict(outcome.rejections)}; "
                f"errors {outcome.errors[:3]}")
        rate = accepted / outcome.seconds
        report.add(f"{prefix}.submissions_per_s", rate, "sub/s",
                   f"{accepted}/{n} reconciled in {outcome.seconds:.1f} s "
                   f"({outcome.statuses.get('duplicate', 0)} answered duplicate), seal excluded")
        report.add(f"{prefix}.batch_p50", percentile(outcome.latencies, 50) * 1000, "ms")
        report.add(f"{prefix}.batch_p99", percentile(outcome.latencies, 99) * 1000, "ms")
        report.add(f"{prefix}.batches", len(outcome.latencies), "requests",
                   f"at most 100 envelopes each, mean {n / max(1, len(outcome.latencies)):.0f}")
        report.add(f"{prefix}.server_peak_rss", peak, "MiB", server.description)
        if outcome.rss_after_round:
            report.add(f"{prefix}.server_rss_first_round", outcome.rss_after_round[0], "MiB")
            report.add(f"{prefix}.server_rss_last_round", outcome.rss_after_round[-1], "MiB")
        # Where the two cores went during the timed window: the server's own processes, the
        # client processes, and everything else (the database server, the OS).
        server_cpu = cpu_after[0] - cpu_before[0]
        client_cpu = cpu_after[1] - cpu_before[1]
        busy = cpu_after[2][0] - cpu_before[2][0]
        wall_cores = cpu_after[2][1] - cpu_before[2][1]
        report.add(f"{prefix}.server_cpu_per_submission", 1000 * server_cpu / max(1, accepted),
                   "ms", f"{server_cpu:.1f} CPU s in the server processes")
        report.add(f"{prefix}.client_cpu_per_submission", 1000 * client_cpu / max(1, accepted),
                   "ms", f"{client_cpu:.1f} CPU s in {settings.clients} client processes")
        report.add(f"{prefix}.other_cpu_per_submission",
                   1000 * max(0.0, busy - server_cpu - client_cpu) / max(1, accepted), "ms",
                   "the rest of the machine: database server, OS")
        report.add(f"{prefix}.machine_busy", 100 * busy / max(wall_cores, 1e-9), "%",
                   f"of {os.cpu_count()} cores during the timed window")
        # The rate this CPU cost per submission allows if no core ever idled (no waiting for
        # SQLite's one writer, for the network, for a client): what CPU alone limits us to.
        cores = os.cpu_count() or 1
        report.add(f"{prefix}.cpu_bound_rate", accepted * cores / max(busy, 1e-9), "sub/s",
                   f"{cores} cores / {1000 * busy / max(1, accepted):.2f} ms of CPU per "
                   "submission (server, clients, database, OS)")
        counts = check_store(store)
        report.add(f"{prefix}.conflicts_opened", counts["conflicts"], "conflicts",
                   f"{plan.pairs} concurrent pairs planned")

        rows = [(s.submission_id, s.case_id, base64.urlsafe_b64decode(
            sealed[s.submission_id] + "=" * (-len(sealed[s.submission_id]) % 4)))
            for s in plan.submissions]
        if backend == "sqlite":
            plain = floors.plain_insert_sqlite(rows, store.data_dir / "plain.db")
            how = "one executemany transaction, WAL, synchronous=FULL"
        else:
            assert store.database_url
            plain = floors.plain_insert_postgresql(rows, store.database_url)
            how = "COPY"
        report.add(f"{prefix}.plain_insert_per_s", plain, "rows/s", f"physical reference: {how}")
        report.add(f"{prefix}.crypto_floor_per_s", crypto, "env/s",
                   "parse+verify+open in one process, no HTTP, no database")
        lower = min(plain, crypto)
        report.add(f"{prefix}.ratio_to_plain_insert", rate / plain, "x")
        report.add(f"{prefix}.ratio_to_crypto_floor", rate / crypto, "x")
        report.add(f"{prefix}.share_of_lower_floor", 100 * rate / lower, "%", "aim: 30%")
        if keep:
            return IngestRun(store, plan, rate)
        store.destroy()
        return None
    except BaseException:
        store.destroy()
        raise


def check_store(store: Store) -> dict[str, Any]:
    """Counts after the run (not timed): cases, events, open conflicts."""
    from fieldsync.extensions import db
    from fieldsync.models import Case, CaseEvent, Conflict

    with store.app.app_context():
        counts = {
            "cases": db.session.scalar(select(func.count()).select_from(Case)),
            "events": db.session.scalar(select(func.count()).select_from(CaseEvent)),
            "conflicts": db.session.scalar(
                select(func.count()).select_from(Conflict).where(Conflict.status == "open")),
        }
        db.session.remove()
    log(f"store after ingest: {counts}")
    return counts
