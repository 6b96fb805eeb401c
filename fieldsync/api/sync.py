"""The device protocol (``docs/protocol.md``): enrol, manifest, forms, push, pull."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate

from fieldsync.api.auth import device_required
from fieldsync.api.bodies import load_json
from fieldsync.core.keys import DEFAULT_SUITE, SUITES
from fieldsync.database import read_only
from fieldsync.errors import InvalidInput, NotFound, PayloadTooLarge
from fieldsync.services import caseload, devices, ingest, keyring
from fieldsync.services import forms as forms_service

blueprint = Blueprint("sync", __name__, url_prefix="/api/v1")


class EnrolSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    public_key = fields.String(required=True, validate=validate.Length(min=1, max=200))
    suite = fields.String(load_default=DEFAULT_SUITE, validate=validate.OneOf(SUITES))
    label = fields.String(load_default="", validate=validate.Length(max=200))


@blueprint.post("/devices/enroll")
def enrol() -> ResponseReturnValue:
    body = load_json(EnrolSchema())
    enrolment = devices.enrol(body["code"], body["public_key"], suite=body["suite"],
                              label=body["label"])
    ring = keyring.get()
    user = enrolment.device.user
    return jsonify(
        device_id=enrolment.device.id,
        device_token=enrolment.token,
        suite=enrolment.device.suite,
        user={"username": user.username, "role": user.role,
              "service": user.service.code if user.service else None,
              "site": user.site.code if user.site else None},
        server_keys=ring.current_public_keys(),
        receipt_key=ring.receipt_public_key(),
        limits=limits(),
    ), 201


def limits() -> dict[str, int]:
    return {
        "push_batch_limit": int(current_app.config["PUSH_BATCH_LIMIT"]),
        "pull_page_size": int(current_app.config["PULL_PAGE_SIZE"]),
        "max_body_bytes": int(current_app.config["MAX_CONTENT_LENGTH"]),
    }


@blueprint.get("/sync/keys")
@device_required
def server_keys() -> ResponseReturnValue:
    ring = keyring.get()
    return jsonify(server_keys=ring.current_public_keys(), receipt_key=ring.receipt_public_key(),
                   limits=limits())


@blueprint.get("/sync/manifest")
@device_required
def manifest() -> ResponseReturnValue:
    body = forms_service.manifest()
    etag = body["hash"].removeprefix("sha256:")
    if request.if_none_match.contains(etag):
        response = current_app.response_class(status=304)
    else:
        response = jsonify(body)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.get("/sync/forms/<form_id>/<int:version>")
@device_required
def form_definition(form_id: str, version: int) -> ResponseReturnValue:
    row = forms_service.get_version(form_id, version)
    if row.state == "draft":
        raise NotFound(f"no published form {form_id} version {version}")
    etag = row.content_hash.removeprefix("sha256:")
    if request.if_none_match.contains(etag):
        response = current_app.response_class(status=304)
    else:
        response = jsonify(form_id=row.form_id, version=row.version, state=row.state,
                           hash=row.content_hash, definition=row.definition)
    response.set_etag(etag)
    return response


class PushSchema(Schema):
    envelopes = fields.List(fields.Raw(), required=True)


PUSH_SCHEMA = PushSchema()  # built once: the sync endpoints are the hot path


@blueprint.post("/sync/push")
@device_required(allow_revoked=True)
def push() -> ResponseReturnValue:
    body = load_json(PUSH_SCHEMA)
    items = body["envelopes"]
    limit = int(current_app.config["PUSH_BATCH_LIMIT"])
    if len(items) > limit:
        raise PayloadTooLarge(f"{len(items)} envelopes in one push; at most {limit}",
                              limit=limit)
    if not items:
        raise InvalidInput("envelopes is empty", errors={"envelopes": ["give at least one"]})
    results = ingest.push(g.device, items)
    return jsonify(results=[r.to_dict() for r in results])


class PullSchema(Schema):
    cursor = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=None, validate=validate.Range(min=1, max=1000))


PULL_SCHEMA = PullSchema()


@blueprint.get("/sync/pull")
@device_required
def pull() -> ResponseReturnValue:
    args = PULL_SCHEMA.load(request.args.to_dict())
    limit = args["limit"] or int(current_app.config["PULL_PAGE_SIZE"])
    with read_only():  # a snapshot: on SQLite a pull never waits for a push
        body = caseload.pull(g.user, args["cursor"], limit)
    return current_app.response_class(body, mimetype="application/json")
