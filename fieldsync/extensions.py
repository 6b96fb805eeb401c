"""Flask extensions, created unbound and attached in :func:`fieldsync.app.build_app`."""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy

from fieldsync.models.base import Base

db = SQLAlchemy(model_class=Base)
