"""Form management for administrators: list, get, upload a draft, publish, retire."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from fieldsync.api.auth import staff_required
from fieldsync.api.bodies import read_json
from fieldsync.errors import MalformedRequest
from fieldsync.extensions import db
from fieldsync.services import audit
from fieldsync.services import forms as forms_service

blueprint = Blueprint("forms_admin", __name__, url_prefix="/api/v1/admin/forms")


def _audit(action: str, form_id: str, version: int, detail: str) -> None:
    audit.record(g.user.username, action, "form", f"{form_id}@{version}",
                 detail={"result": detail}, remote_addr=request.remote_addr)


@blueprint.get("")
@staff_required("admin", "reviewer")
def list_forms() -> ResponseReturnValue:
    return jsonify(forms=[forms_service.describe(r) for r in forms_service.list_versions()])


@blueprint.get("/<form_id>/<int:version>")
@staff_required("admin", "reviewer")
def get_form(form_id: str, version: int) -> ResponseReturnValue:
    row = forms_service.get_version(form_id, version)
    return jsonify(forms_service.describe(row) | {"definition": row.definition})


@blueprint.post("")
@staff_required("admin")
def upload() -> ResponseReturnValue:
    """Upload a definition (JSON) as a draft, or publish it at once with ``?publish=true``."""
    document = read_json()
    if not isinstance(document, dict):
        raise MalformedRequest("the body must be a form definition object")
    publish = request.args.get("publish", "false").lower() in ("1", "true", "yes")
    outcome = forms_service.save(document, publish=publish, user_id=g.user.id)
    _audit("form.publish" if publish else "form.draft", outcome.row.form_id,
           outcome.row.version, outcome.message)
    db.session.commit()
    status = 201 if outcome.changed else 200
    return jsonify(forms_service.describe(outcome.row) | {"message": outcome.message}), status


@blueprint.post("/<form_id>/<int:version>/publish")
@staff_required("admin")
def publish(form_id: str, version: int) -> ResponseReturnValue:
    outcome = forms_service.publish_existing(form_id, version)
    _audit("form.publish", form_id, version, outcome.message)
    db.session.commit()
    return jsonify(forms_service.describe(outcome.row) | {"message": outcome.message})


@blueprint.post("/<form_id>/<int:version>/retire")
@staff_required("admin")
def retire(form_id: str, version: int) -> ResponseReturnValue:
    outcome = forms_service.retire(form_id, version)
    _audit("form.retire", form_id, version, outcome.message)
    db.session.commit()
    return jsonify(forms_service.describe(outcome.row) | {"message": outcome.message})
