"""A real ``fieldsync serve`` process on a free loopback port, and real tablet clients.

``server`` is a fresh server per test on the parametrised ``database_url`` (SQLite and
PostgreSQL). ``shared_server`` is one server per module and database kind, for the many
bad-input tests that only need their own devices and cases. Administration goes through the
real ``fieldsync`` CLI (in-process with click's runner: same code, no interpreter start-up).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from fieldsync.cli import cli as server_cli
from fieldsync.config import normalise_database_url
from sync_client import Client, RetryPolicy
from tests.conftest import ON_CI, PG_URL

FIELDSYNC = str(Path(sys.executable).with_name("fieldsync"))
PASSPHRASE = "correct horse battery staple"
FAST_KDF = 2**14
FAST_RETRY = RetryPolicy(attempts=4, backoff=0.02, max_delay=0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One server data directory and database, and the process serving them (if running)."""

    def __init__(self, data_dir: Path, database_url: str, extra_env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
        self.env.update({"FIELDSYNC_DATA_DIR": str(data_dir),
                         "FIELDSYNC_DATABASE_URL": database_url,
                         "FIELDSYNC_RECOVERY_INTERVAL": "0", **extra_env})
        self.log = data_dir.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._engine: Engine | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, demo: bool = False) -> None:
        args = [FIELDSYNC, "serve", "--port", str(self.port), "--threads", "4"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args + (["--demo"] if demo else []), env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"server did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- administration through the real CLI ------------------------------------------------

    def admin(self, *args: str, expect_ok: bool = True) -> str:
        result = CliRunner().invoke(server_cli, list(args), env=self.env, catch_exceptions=False)
        if expect_ok:
            assert result.exit_code == 0, result.output
        return result.output

    def enrolment_code(self, user: str, expires: str = "1h") -> str:
        output = self.admin("devices", "enroll-code", "--user", user, "--expires", expires,
                            "--qr", str(self.data_dir / f"qr-{uuid.uuid4().hex}.png"))
        first = output.splitlines()[0]
        return first.rsplit(" ", 1)[1]

    def staff_token(self, username: str = "admin") -> str:
        credentials = json.loads((self.data_dir / "demo-credentials.json").read_text())
        response = httpx.post(f"{self.url}/api/v1/auth/login", json={
            "username": username, "password": credentials[username]["password"]})
        response.raise_for_status()
        return str(response.json()["token"])

    # -- looking straight into the server's database ----------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(normalise_database_url(self.database_url))
        return self._engine

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def execute(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def case_state(self, case_id: str) -> dict[str, Any]:
        raw = self.scalar("SELECT state FROM cases WHERE id = :id", id=case_id)
        return json.loads(raw) if isinstance(raw, str) else dict(raw)

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a bad submission must not change: the event log and the case views."""
        events = self.scalar("SELECT count(*) FROM case_events")
        cases = self.rows("SELECT id, revision, change_seq FROM cases ORDER BY id")
        return events, [tuple(row) for row in cases]


def start_server(data_dir: Path, database_url: str, env: dict[str, str] | None = None) -> Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    server = Server(data_dir, database_url, env or {})
    server.start(demo=True)
    return server


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra FIELDSYNC_* settings for the ``server`` fixture (override in a test module)."""
    return {}


@pytest.fixture
def server(database_url: str, tmp_path: Path, server_env: dict[str, str]) -> Iterator[Server]:
    data_dir = tmp_path / "data"
    instance = start_server(data_dir, database_url, server_env)
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def shared_server_env() -> dict[str, str]:
    """Extra FIELDSYNC_* settings for ``shared_server`` (override in a test module)."""
    return {}


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  shared_server_env: dict[str, str]) -> Iterator[Server]:
    """One server per module and database kind, on a database of its own."""
    root = tmp_path_factory.mktemp("shared-server")
    drop: Callable[[], None] = lambda: None  # noqa: E731
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'data' / 'fieldsync.db'}"
    else:
        admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
        name = f"fieldsync_e2e_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            message = f"PostgreSQL not reachable at {PG_URL}: {exc}"
            if ON_CI:
                pytest.fail(message)
            pytest.skip(message)
        url = f"{admin.rsplit('/', 1)[0]}/{name}"

        def drop() -> None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    instance = start_server(root / "data", url, shared_server_env)
    yield instance
    instance.stop()
    drop()


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., Client]]:
    """``make_client(server, user)``: a real client, enrolled and pulled, in its own home."""
    made: list[Client] = []

    def make(server: Server, user: str, *, pull: bool = True, **options: Any) -> Client:
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("scrypt_n", FAST_KDF)
        home = tmp_path / f"tablet-{user}-{uuid.uuid4().hex[:6]}"
        client = Client(home, PASSPHRASE, **options)
        made.append(client)
        client.enroll(server.url, server.enrolment_code(user), label=f"test {user}")
        if pull:
            client.pull()
        return client

    yield make
    for client in made:
        client.close()
