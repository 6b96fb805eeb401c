"""Client fixtures: the real app in-process (both databases), tablets talking to it over WSGI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from fieldsync.services import devices as devices_service
from fieldsync.services import setup as setup_service
from sync_client import Client, RetryPolicy

PASSPHRASE = "tablet passphrase"
FAST_KDF = 2**14
# The address stored in the tablet: nothing listens there, so a CLI run against it is offline.
OFFLINE_URL = "http://127.0.0.1:9"


@pytest.fixture
def server_app(app: Flask) -> Flask:
    """The app with its key ring, the default form library and the demo organisation."""
    setup_service.initialise(app, demo=True)
    return app


@pytest.fixture
def make_tablet(server_app: Flask, tmp_path: Path) -> Iterator[Callable[..., Client]]:
    """``make_tablet(user)``: a client enrolled and pulled through ``httpx.WSGITransport``."""
    made: list[Client] = []

    def make(user: str = "ion.popescu", *, transport: httpx.BaseTransport | None = None,
             pull: bool = True, **options: Any) -> Client:
        options.setdefault("retry", RetryPolicy(attempts=2, backoff=0))
        client = Client(tmp_path / f"home-{user}-{len(made)}", PASSPHRASE,
                        transport=transport or httpx.WSGITransport(app=server_app),
                        scrypt_n=FAST_KDF, **options)
        made.append(client)
        client.enroll(OFFLINE_URL, devices_service.issue_code(user, 3600).code)
        if pull:
            client.pull()
        return client

    yield make
    for client in made:
        client.close()
