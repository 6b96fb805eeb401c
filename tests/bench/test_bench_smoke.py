"""Smoke test of ``python -m bench``: the quick scenarios run and print their documented
figure lines. Performance itself is never asserted here (DESIGN section 6): see bench/README.md.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURE = re.compile(r"^(?P<name>[a-z0-9_.]+) (?P<value>-?[0-9]+(\.[0-9]+)?) (?P<unit>\S+)"
                    r"(  # .+)?$")


def run_bench(*args: str) -> dict[str, tuple[float, str]]:
    done = subprocess.run([sys.executable, "-m", "bench", *args, "--quick", "--db", "sqlite"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines, done.stderr[-2000:]
    figures = {}
    for line in lines:
        match = FIGURE.match(line)
        assert match, f"not a figure line: {line!r}"
        figures[match["name"]] = (float(match["value"]), match["unit"])
    return figures


@pytest.mark.slow
def test_quick_scenarios_print_their_figures() -> None:
    ingest = run_bench("ingest")
    for name, unit in [("submissions_per_s", "sub/s"), ("batch_p50", "ms"), ("batch_p99", "ms"),
                       ("server_peak_rss", "MiB"), ("plain_insert_per_s", "rows/s"),
                       ("crypto_floor_per_s", "env/s"), ("ratio_to_plain_insert", "x"),
                       ("share_of_lower_floor", "%"), ("server_cpu_per_submission", "ms"),
                       ("machine_busy", "%")]:
        assert ingest[f"ingest.sqlite.{name}"][1] == unit
    memory = run_bench("memory")
    rounds = sorted(name for name in memory if name.endswith(".objects"))
    assert len(rounds) >= 2 and all(memory[name][1] == "objects" for name in rounds)
    pull = run_bench("pull", "--pull-sizes", "600,1200", "--repeat", "5")
    for size in ("600", "1200"):
        for name in ("incremental_p50", "incremental_p99", "incremental_bytes", "full_p50"):
            assert f"pull.sqlite.{size}.{name}" in pull
    assert pull["pull.sqlite.incremental_growth"][1] == "x"
    merge = run_bench("merge")
    assert merge["merge_micro.per_case"][1] == "us" and merge["merge_micro.per_case"][0] > 0
    rebuild = run_bench("rebuild", "--rebuild-cases", "100")
    assert rebuild["rebuild.sqlite.cases_per_s"][1] == "cases/s"
    assert rebuild["rebuild.sqlite.differences"] == (0.0, "cases")


def test_what_would_stop_a_run_is_said_in_one_line_before_any_work(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing gunicorn or an unreachable PostgreSQL ends the run at once with one line and
    exit status 2, not with a traceback after minutes of sealing envelopes."""
    import bench.__main__ as entry

    monkeypatch.setattr(entry, "gunicorn_path", lambda: None)
    assert entry.main(["ingest", "--quick", "--db", "sqlite", "--server", "gunicorn"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("bench: gunicorn is not installed") and err.count("\n") == 1
    assert "--server waitress" in err

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port nothing listens on
    port = closed.getsockname()[1]
    closed.close()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "ingest", "--quick", "--db", "postgresql"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT),
             "BENCH_POSTGRES_URL": f"postgresql://postgres@127.0.0.1:{port}/postgres"})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"bench: PostgreSQL not reachable at postgresql://postgres@"
                                  f"127.0.0.1:{port}/postgres")
    assert done.stderr.count("\n") == 1 and "--db sqlite" in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--n", "-5"], "argument --n: must be at least 1, not -5"),
    (["--clients", "0"], "argument --clients: must be at least 1, not 0"),
    (["--workers", "0"], "argument --workers: must be at least 1, not 0"),
    (["--n", "1.5"], "argument --n: not a whole number: '1.5'"),
    (["--pull-sizes", "1000,0"], "argument --pull-sizes: must be at least 1, not 0"),
    (["--kinto-backends", "memory,redis"], "argument --kinto-backends: expected a "
                                           "comma-separated list of memory, postgresql"),
])
def test_a_bad_argument_is_refused_by_name(args: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Zero clients used to wait forever, zero workers for a minute, a negative N ended in
    a traceback, an unknown Kinto backend after the whole FieldSync part of the run."""
    import bench.__main__ as entry

    with pytest.raises(SystemExit) as stopped:
        entry.parse(["ingest", *args])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
