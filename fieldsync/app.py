"""The application factory: it only wires configuration, extensions, blueprints and handlers."""

from __future__ import annotations

from typing import Any

from flask import Flask

from fieldsync import api, database
from fieldsync.config import load_config
from fieldsync.extensions import db


def build_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask("fieldsync", instance_relative_config=True)
    load_config(app, config)
    db.init_app(app)
    database.configure_engine(app)
    api.init_app(app)
    return app
