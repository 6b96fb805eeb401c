"""``GET /healthz``: is the process up and the database reachable?"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from fieldsync import database
from fieldsync.extensions import db

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    database.ping(db.engine)
    revision = database.current_revision(db.engine)
    head = database.head_revision(db.engine)
    return jsonify(status="ok", database="reachable", schema=revision,
                   schema_current=revision == head)
