"""The server key ring: loaded from ``keyring.json`` in the data directory, never the database.

Each worker keeps the loaded ring in ``app.extensions`` and re-reads the file when it changes
(``fieldsync keys rotate`` in another process), so several workers agree on the current keys.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, current_app

from fieldsync.core.keys import DEFAULT_SUITE, SUITES, KeyRing
from fieldsync.errors import InvalidInput, KeyringError

FILENAME = "keyring.json"
EXTENSION = "fieldsync.keyring"


def path_for(app: Flask) -> Path:
    return Path(app.config["DATA_DIR"]) / FILENAME


def passphrase_for(app: Flask) -> str | None:
    passphrase = app.config.get("KEY_PASSPHRASE")
    passphrase_file = app.config.get("KEY_PASSPHRASE_FILE")
    if passphrase_file:
        try:
            passphrase = Path(passphrase_file).read_text().rstrip("\n")
        except OSError as exc:
            raise KeyringError(f"cannot read KEY_PASSPHRASE_FILE {passphrase_file}: "
                               f"{exc.strerror}") from exc
    return str(passphrase) if passphrase else None


def ensure(app: Flask) -> tuple[KeyRing, bool]:
    """Load the ring, creating it on first use; returns (ring, created)."""
    path = path_for(app)
    if path.exists():
        return get(app), False
    ring = KeyRing.generate()
    ring.save(path, passphrase_for(app))
    app.extensions.pop(EXTENSION, None)
    return get(app), True


def get(app: Flask | None = None) -> KeyRing:
    """The loaded key ring, re-read if the file changed since it was loaded."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    path = path_for(app)
    try:
        stamp = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        raise KeyringError(f"no key ring at {path}: run 'fieldsync init'") from None
    cached = app.extensions.get(EXTENSION)
    if cached is not None and cached[0] == stamp:
        return cached[1]  # type: ignore[no-any-return]
    ring = KeyRing.load(path, passphrase_for(app))
    app.extensions[EXTENSION] = (stamp, ring)
    return ring


def rotate(app: Flask, suite: str = DEFAULT_SUITE) -> str:
    if suite not in SUITES:
        raise InvalidInput(f"unknown suite {suite!r}: choose one of {', '.join(SUITES)}")
    ring = get(app)
    key_id = ring.rotate(suite)  # type: ignore[arg-type]
    ring.save(path_for(app), passphrase_for(app))
    return key_id


def retire(app: Flask, key_id: str) -> None:
    ring = get(app)
    ring.retire(key_id)
    ring.save(path_for(app), passphrase_for(app))
