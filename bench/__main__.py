"""``python -m bench {ingest,pull,rebuild,peer,profile,all} [options]``; see bench/README.md."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.figures import Report, log
from bench.server import NO_GUNICORN, gunicorn_path
from bench.stores import PG_ADMIN_URL, backends, pg_admin

QUICK = {"n": 500, "devices": 20, "cases": 200, "pull_sizes": [1_000, 5_000],
         "rebuild_cases": 200, "kinto_n": 200, "clients": 4, "repeat": 10}
FULL = {"n": 50_000, "devices": 500, "cases": 20_000, "pull_sizes": [10_000, 100_000],
        "rebuild_cases": 20_000, "kinto_n": 2_000, "clients": 8, "repeat": 50}


KINTO_BACKENDS = ("memory", "postgresql")


def positive(text: str) -> int:
    """An integer of at least 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def sizes(text: str) -> list[int]:
    """Comma-separated positive integers, e.g. ``10000,100000``."""
    return [positive(part.strip()) for part in text.split(",")]


def kinto_backends(text: str) -> str:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(KINTO_BACKENDS))
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(KINTO_BACKENDS)}, not {text!r}")
    return ",".join(chosen)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", choices=["ingest", "pull", "rebuild", "peer", "profile",
                                             "memory", "merge", "all"])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--n", type=positive, help="submissions to ingest (default 50000)")
    parser.add_argument("--devices", type=positive, help="simulated devices (default 500)")
    parser.add_argument("--cases", type=positive, help="cases the ingest works on (default 20000)")
    parser.add_argument("--pull-sizes", type=sizes,
                        help="case store sizes for the pull scenario (default 10000,100000)")
    parser.add_argument("--rebuild-cases", type=positive, help="cases to rebuild (default 20000)")
    parser.add_argument("--kinto-n", type=positive,
                        help="records pushed to Kinto (default 2000: Kinto takes ~20 ms each)")
    parser.add_argument("--kinto-backends", type=kinto_backends, default="memory,postgresql",
                        help="Kinto storage backends to run (default memory,postgresql)")
    parser.add_argument("--kinto-threads", type=positive, default=8,
                        help="threads of Kinto's waitress server, its one process (default 8; "
                             "independent of --threads, which is FieldSync's)")
    parser.add_argument("--clients", type=positive, help="client processes pushing (default 8)")
    parser.add_argument("--threads", type=positive, default=8,
                        help="FieldSync server threads, per worker with gunicorn (default 8)")
    parser.add_argument("--server", choices=["waitress", "gunicorn"], default="waitress",
                        help="WSGI server (gunicorn must be installed)")
    parser.add_argument("--workers", type=positive, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--gc-threshold", type=int, default=0,
                        help="experiment: start the server with gc.set_threshold(N, 20, 20)")
    parser.add_argument("--profiler", choices=["pyinstrument", "cprofile", "none"],
                        default="pyinstrument",
                        help="profile scenario: the profiler (none: just the in-process rate)")
    parser.add_argument("--repeat", type=positive,
                        help="pull requests timed per figure (default 50)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small smoke run (seconds)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def ingest_settings(args: argparse.Namespace) -> Any:
    from bench.ingest import Settings

    return Settings(n=args.n, devices=args.devices, cases=args.cases, clients=args.clients,
                    threads=args.threads, server=args.server, workers=args.workers,
                    seed=args.seed, quick=args.quick, gc_threshold=args.gc_threshold)


#: The scenarios that start a FieldSync server (``--server``).
SERVED = ("ingest", "pull", "all", "peer")


def preflight(args: argparse.Namespace) -> str | None:
    """What would stop the run, found before minutes of sealing: a missing gunicorn, an
    unreachable PostgreSQL. None if nothing."""
    if args.server == "gunicorn" and args.scenario in SERVED and gunicorn_path() is None:
        return NO_GUNICORN
    kinto_on_postgresql = (args.scenario in ("peer", "all")
                           and "postgresql" in args.kinto_backends)
    uses_postgresql = args.scenario != "merge" and "postgresql" in backends(args.db)
    if uses_postgresql or kinto_on_postgresql:
        try:
            pg_admin("SELECT 1")
        except Exception as exc:  # psycopg's errors, and a malformed BENCH_POSTGRES_URL
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return (f"PostgreSQL not reachable at {PG_ADMIN_URL} ({first}); set "
                    "BENCH_POSTGRES_URL, or run with --db sqlite")
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    problem = preflight(args)
    if problem is not None:
        print(f"bench: {problem}", file=sys.stderr)
        return 2
    report = Report(args={k: v for k, v in vars(args).items()})
    scenario = args.scenario
    try:
        for backend in backends(args.db):
            kept = None
            if scenario in ("ingest", "all", "peer"):
                from bench import ingest

                kept = ingest.run(report, backend, ingest_settings(args),
                                  keep=scenario == "all")
            if scenario in ("pull", "all", "peer"):
                from bench import pull

                pull.run(report, backend, args)
            if scenario in ("rebuild", "all"):
                from bench import rebuild

                rebuild.run(report, backend, args, store=kept.store if kept else None)
            if kept is not None:
                kept.store.destroy()
        if scenario in ("peer", "all"):
            from bench import peer

            peer.run(report, args)
        if scenario == "memory":
            from bench import memory

            for backend in backends(args.db):
                memory.run(report, backend, args)
        if scenario == "merge":  # no database: the merge alone, for before/after comparisons
            from bench import merge_micro

            merge_micro.run(report)
        if scenario == "profile":
            from bench import profile

            for backend in backends(args.db):
                profile.run(report, backend, args)
    finally:
        if args.json:
            report.write_json(args.json)
            log(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
