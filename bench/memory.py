"""Memory in N: the ingest workload pushed in process, round by round, counting what survives.

After each round (intakes, then update rounds) a full garbage collection runs and the number of
objects the collector tracks and the process's resident memory are printed. Python objects that
pile up across rounds (a leak, a cache without bound) show as a growing object count; a flat
count with growing RSS in the threaded server points at the allocator instead.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle

from bench.figures import Report, log
from bench.ingest import prepare
from bench.server import rss_mb


def run(report: Report, backend: str, args: argparse.Namespace) -> None:
    from bench.__main__ import ingest_settings
    from fieldsync.services.startup import tune_runtime

    prefix = f"memory.{backend}"
    prepared = prepare(backend, ingest_settings(args), prefix)
    store = prepared.store
    try:
        client = store.app.test_client()
        tune_runtime()  # as the server does at start-up
        gc.collect()
        for number, tasks in enumerate(prepared.rounds):
            for task in tasks:
                data = pickle.loads(task.path.read_bytes())
                for body in data["bodies"]:
                    client.post(data["url"], data=body, headers={
                        "Authorization": data["authorization"],
                        "Content-Type": "application/json"})
            gc.collect()
            report.add(f"{prefix}.round{number}.objects", len(gc.get_objects()), "objects",
                       "tracked by the garbage collector after a full collection")
            report.add(f"{prefix}.round{number}.rss", rss_mb(os.getpid(), "VmRSS"), "MiB",
                       "this process, which also holds the prepared workload")
        log(f"{prefix}: {len(prepared.plan.submissions)} submissions in "
            f"{len(prepared.rounds)} rounds, in process, one thread")
    finally:
        store.destroy()
