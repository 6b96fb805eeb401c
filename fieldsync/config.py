"""Configuration: defaults, then an instance file, then ``FIELDSYNC_*`` environment, then a mapping.

Every key is listed in :data:`SETTINGS` with its default and meaning; ``docs/configuration.md``
is kept in step with it by a test.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

from fieldsync.models.base import column_json

REPO_FORMS_DIR = Path(__file__).resolve().parent.parent / "forms"


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("DATA_DIR", "./instance", "Directory for the SQLite file, key ring and secret key; "
            "created on demand."),
    Setting("DATABASE_URL", None, "SQLAlchemy URL. Default: SQLite file `fieldsync.db` in the "
            "data directory. PostgreSQL: `postgresql://user@host/db`."),
    Setting("SECRET_KEY", None, "Flask secret. Default: read from `secret_key` in the data "
            "directory, generated (mode 0600) on first start."),
    Setting("KEY_PASSPHRASE", None, "Passphrase protecting the server key ring file "
            "(`keyring.json` in the data directory). Unset: the file is protected by its "
            "permissions only."),
    Setting("KEY_PASSPHRASE_FILE", None, "File holding the key ring passphrase (first line); "
            "wins over KEY_PASSPHRASE."),
    Setting("MAX_CONTENT_LENGTH", 8 * 1024 * 1024, "Largest accepted request body in bytes."),
    Setting("PUSH_BATCH_LIMIT", 100, "Most envelopes accepted in one push request."),
    Setting("PULL_PAGE_SIZE", 200, "Most cases and tombstones returned in one pull page."),
    Setting("FORMS_DIR", str(REPO_FORMS_DIR), "Form library published by `fieldsync init`."),
    Setting("FORM_SETTINGS", {}, "JSON object overriding form settings (e.g. "
            '`{"hours_per_day": 8}`), applied on server and sent to devices.'),
    Setting("ENROLMENT_CODE_TTL", 24 * 3600, "Default lifetime of an enrolment code, seconds."),
    Setting("STAFF_TOKEN_TTL", 8 * 3600, "Lifetime of a staff API token, seconds."),
    Setting("MAX_CLOCK_DRIFT", 24 * 3600, "Largest accepted distance, seconds, between a "
            "device's HLC and the server's clock."),
    Setting("RECOVERY_INTERVAL", 60, "Seconds between runs of the job that processes stored "
            "envelopes left unprocessed by a crash (0 disables the scheduler)."),
    Setting("SQLITE_BUSY_TIMEOUT", 30, "Seconds a SQLite writer waits for the lock."),
)


def load_config(app: Flask, overrides: dict[str, Any] | None) -> None:
    """Fill ``app.config`` in the documented order and derive the SQLAlchemy settings."""
    for setting in SETTINGS:
        app.config[setting.key] = setting.default
    app.config.from_pyfile("fieldsync.cfg", silent=True)
    app.config.from_prefixed_env("FIELDSYNC")
    if overrides:
        app.config.update(overrides)

    data_dir = Path(app.config["DATA_DIR"]).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    app.config["DATA_DIR"] = str(data_dir)

    url = app.config["DATABASE_URL"] or f"sqlite:///{data_dir / 'fieldsync.db'}"
    app.config["DATABASE_URL"] = url
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(url)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    # JSON columns (case states, events, receipts) without the spaces json.dumps puts after
    # separators, and states encoded before the writing transaction (see column_json).
    app.config["SQLALCHEMY_ENGINE_OPTIONS"].setdefault("json_serializer", column_json)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"].setdefault("pool_pre_ping", True)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"].setdefault("connect_args", {"connect_timeout": 5})

    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = read_or_create_secret(data_dir / "secret_key")


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def read_or_create_secret(path: Path) -> str:
    """Return the secret in ``path``, creating it with mode 0600 if absent."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
