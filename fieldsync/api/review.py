"""The review API for central staff (reviewer and admin roles)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate

from fieldsync.api.auth import staff_required
from fieldsync.api.bodies import load_json
from fieldsync.services import quarantine as quarantine_service
from fieldsync.services import review

blueprint = Blueprint("review", __name__, url_prefix="/api/v1/review")


def actor() -> review.Actor:
    return review.Actor(g.user, request.remote_addr, "api")


class SearchSchema(Schema):
    service = fields.String(load_default=None)
    officer = fields.String(load_default=None)
    status = fields.String(load_default=None, validate=validate.OneOf(
        ["active", "transfer_pending", "closed"]))
    conflicts = fields.Boolean(load_default=None)
    q = fields.String(load_default=None, validate=validate.Length(max=200))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=review.MAX_PAGE))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


@blueprint.get("/cases")
@staff_required()
def search_cases() -> ResponseReturnValue:
    args = SearchSchema().load(request.args.to_dict())
    return jsonify(review.search_cases(
        actor(), service=args["service"], officer=args["officer"], status=args["status"],
        conflicts=args["conflicts"], text=args["q"], limit=args["limit"], offset=args["offset"]))


@blueprint.get("/cases/<case_id>")
@staff_required()
def case_detail(case_id: str) -> ResponseReturnValue:
    return jsonify(review.case_detail(actor(), case_id))


class ConflictQuery(Schema):
    status = fields.String(load_default="open", validate=validate.OneOf(
        ["open", "resolved", "superseded"]))
    case_id = fields.String(load_default=None)


@blueprint.get("/conflicts")
@staff_required()
def list_conflicts() -> ResponseReturnValue:
    args = ConflictQuery().load(request.args.to_dict())
    return jsonify(conflicts=review.list_conflicts(actor(), args["status"], args["case_id"]))


class ReasonSchema(Schema):
    """Every staff change carries a reason (kept in the event log and the audit trail)."""

    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ValueSchema(ReasonSchema):
    value = fields.Raw(required=True, allow_none=True)


@blueprint.post("/conflicts/<conflict_id>/resolve")
@staff_required()
def resolve_conflict(conflict_id: str) -> ResponseReturnValue:
    body = load_json(ValueSchema())
    return jsonify(review.resolve_conflict(actor(), conflict_id, body["value"], body["reason"]))


class TransferSchema(ReasonSchema):
    service = fields.String(required=True)
    officer = fields.String(load_default=None)


@blueprint.post("/cases/<case_id>/transfer")
@staff_required()
def transfer(case_id: str) -> ResponseReturnValue:
    body = load_json(TransferSchema())
    return jsonify(review.transfer_case(actor(), case_id, body["service"], body["officer"],
                                        body["reason"]))


@blueprint.put("/cases/<case_id>/properties/<prop>")
@staff_required()
def set_property(case_id: str, prop: str) -> ResponseReturnValue:
    body = load_json(ValueSchema())
    return jsonify(review.set_server_property(actor(), case_id, prop, body["value"],
                                              body["reason"]))


class PlacementSchema(ReasonSchema):
    site = fields.String(required=True, allow_none=True)


@blueprint.put("/cases/<case_id>/site")
@staff_required()
def place(case_id: str) -> ResponseReturnValue:
    body = load_json(PlacementSchema())
    return jsonify(review.place_at_site(actor(), case_id, body["site"], body["reason"]))


@blueprint.get("/quarantine")
@staff_required()
def quarantine() -> ResponseReturnValue:
    return jsonify(envelopes=quarantine_service.list_quarantine(actor()))


@blueprint.post("/quarantine/<submission_id>/release")
@staff_required()
def release(submission_id: str) -> ResponseReturnValue:
    body = load_json(ReasonSchema())
    return jsonify(quarantine_service.release_envelope(actor(), submission_id, body["reason"]))


@blueprint.post("/quarantine/<submission_id>/discard")
@staff_required()
def discard(submission_id: str) -> ResponseReturnValue:
    body = load_json(ReasonSchema())
    return jsonify(quarantine_service.discard_envelope(actor(), submission_id, body["reason"]))
