"""Part 5: profile the ingest path.

The same prepared workload as ``ingest`` is pushed through the real application in this
process (Flask test client: no socket, one thread) under pyinstrument when it is installed,
cProfile otherwise. The profile goes to ``bench/results/profile-<db>.txt`` and the in-process
rate is printed as a figure, so before/after figures of an optimisation come from one command.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pickle
import pstats
import time
from pathlib import Path

from bench.figures import Report, log
from bench.ingest import prepare

RESULTS = Path(__file__).resolve().parent / "results"


def run(report: Report, backend: str, args: argparse.Namespace) -> None:
    from bench.__main__ import ingest_settings

    prefix = f"profile.{backend}"
    prepared = prepare(backend, ingest_settings(args), prefix)
    store = prepared.store
    try:
        app = store.app
        client = app.test_client()
        requests = []
        for tasks in prepared.rounds:
            for task in tasks:
                data = pickle.loads(task.path.read_bytes())
                requests.append([(data["url"], body, data["authorization"])
                                 for body in data["bodies"]])

        def push_all() -> int:
            accepted = 0
            for batch in requests:
                for url, body, authorization in batch:
                    response = client.post(url, data=body, headers={
                        "Authorization": authorization, "Content-Type": "application/json"})
                    accepted += sum(r["status"] == "accepted" for r in response.json["results"])
            return accepted

        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"profile-{backend}.txt"
        tool = getattr(args, "profiler", "pyinstrument")
        if tool == "pyinstrument":
            try:
                from pyinstrument import Profiler
            except ImportError:
                tool = "cprofile"
        started = time.perf_counter()
        if tool == "none":
            accepted = push_all()
            elapsed = time.perf_counter() - started
        elif tool == "pyinstrument":
            profiler = Profiler(interval=0.001)
            profiler.start()
            accepted = push_all()
            profiler.stop()
            elapsed = time.perf_counter() - started
            out.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        else:
            profile = cProfile.Profile()
            profile.enable()
            accepted = push_all()
            profile.disable()
            elapsed = time.perf_counter() - started
            text = io.StringIO()
            stats = pstats.Stats(profile, stream=text)
            stats.sort_stats("cumulative").print_stats(150)
            stats.sort_stats("tottime").print_stats(60)  # where the time is spent itself
            out.write_text(text.getvalue())
            profile.dump_stats(out.with_suffix(".pstats"))  # for pstats: callers, callees
        n = len(prepared.plan.submissions)
        report.add(f"{prefix}.inprocess_submissions_per_s", accepted / elapsed, "sub/s",
                   f"{accepted}/{n} accepted, one thread, no socket, "
                   + ("no profiler" if tool == "none" else f"under {tool}"))
        if tool != "none":
            log(f"{prefix}: profile written to {out}")
    finally:
        store.destroy()
