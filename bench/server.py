"""Run the FieldSync server as its own process on loopback, as an operator would."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.stores import Store

NO_GUNICORN = ("gunicorn is not installed in this environment: pip install -e '.[workers]' "
               "(or pip install gunicorn), or use --server waitress")


def gunicorn_path() -> str | None:
    """gunicorn's script beside this Python, or None."""
    return shutil.which("gunicorn", path=str(Path(sys.executable).parent))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(port: int, path: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer {path} within {timeout} s")


def rss_mb(pid: int, field: str) -> float:
    """VmHWM (peak resident set) or VmRSS of a process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes (not their children)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Server:
    """``fieldsync serve`` (waitress) or gunicorn (``fieldsync.wsgi:app``) over a store."""

    def __init__(self, store: Store, *, kind: str = "waitress", threads: int = 8,
                 workers: int = 2, env: dict[str, str] | None = None,
                 log_path: Path | None = None, gc_threshold: int = 0) -> None:
        self.store = store
        self.kind = kind
        self.threads = threads
        self.workers = workers
        self.gc_threshold = gc_threshold
        self.port = free_port()
        self.extra_env = env or {}
        self.log_path = log_path or store.data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        if self.kind == "gunicorn":
            gunicorn = gunicorn_path()
            if gunicorn is None:
                raise RuntimeError(NO_GUNICORN)
            # As docs/operations.md says: gunicorn's default (sync) workers for one thread
            # each; they close the connection after each answer, so every push goes to
            # whichever worker is free. (Threaded gthread workers keep client connections
            # alive and stick to them: with 8 keep-alive clients, one of two workers took 95%
            # of the pushes.) More threads than one: gthread, as gunicorn chooses itself.
            return [gunicorn, "-w", str(self.workers), "--threads", str(self.threads),
                    "-b", f"127.0.0.1:{self.port}", "--log-level", "warning",
                    "fieldsync.wsgi:app"]
        argv = ["fieldsync", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--threads", str(self.threads)]
        if self.gc_threshold:
            # An experiment, not a FieldSync setting: the server with a larger first-generation
            # threshold of Python's cyclic garbage collector (see bench/README.md).
            return [sys.executable, "-c",
                    f"import gc, sys; gc.set_threshold({self.gc_threshold}, 20, 20); "
                    f"sys.argv = {argv!r}; from fieldsync.cli import main; main()"]
        return [sys.executable, "-m", *argv]

    @property
    def description(self) -> str:
        if self.kind == "gunicorn":
            kind = "sync" if self.threads == 1 else "gthread"
            return f"gunicorn {self.workers} {kind} workers x {self.threads} threads"
        gc = f", gc threshold {self.gc_threshold}" if self.gc_threshold else ""
        return f"waitress 1 process x {self.threads} threads{gc}"

    def start(self) -> Server:
        env = {**os.environ, **self.store.env(), **self.extra_env}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), env=env, stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_http(self.port, "/healthz", 60, self.process)
        return self

    def pids(self) -> list[int]:
        assert self.process is not None
        return [self.process.pid, *children(self.process.pid)]

    def peak_rss_mb(self) -> float:
        """Peak resident memory: the largest of the serving processes (waitress: the one)."""
        return max(rss_mb(pid, "VmHWM") for pid in self.pids())

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def rss_mb(self) -> float:
        """Resident memory now, of the largest serving process (comparable with the peak)."""
        return max(rss_mb(pid, "VmRSS") for pid in self.pids())

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
