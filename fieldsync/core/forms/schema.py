"""The structure of a form document, as marshmallow schemas.

This pass checks keys and the JSON type of each value (strictly: ``1`` is not ``true``,
``"3"`` is not ``3``) and compiles every expression. Meaning (references, cycles, which keys
apply to which field type) is checked afterwards in :mod:`fieldsync.core.forms.definition`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from fieldsync.core.forms.expressions import Expression, ExpressionSyntaxError

FIELD_TYPES = (
    "text", "integer", "decimal", "boolean", "date", "datetime", "select_one",
    "select_multiple", "geopoint", "attachment", "group", "repeat",
)  # fmt: skip
POLICIES = ("lww", "manual", "append", "sum", "server")
SENSITIVITIES = ("public", "restricted", "confidential")
ATTACHMENT_KINDS = ("photo", "signature")
CASE_MODES = ("create", "update")
#: Device roles that may fill a form (``case.roles``; default: officers only).
FILLER_ROLES = ("officer", "supervisor")
LANGUAGES = ("ro", "en")

IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
FORM_ID = r"^[a-z][a-z0-9_-]{1,62}$"
CHOICE_VALUE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"

_BASE_MESSAGES: dict[str, Any] = {"required": "missing required key", "null": "must not be null"}
_UNKNOWN = "unknown key"


def _one_of(choices: tuple[str, ...]) -> validate.OneOf:
    return validate.OneOf(choices, error="must be one of " + ", ".join(choices))


def _pattern(regex: str, what: str) -> validate.Regexp:
    return validate.Regexp(regex, error=f"not a valid {what}")


class Text(fields.Field):
    """A non-empty string."""

    default_error_messages = {**_BASE_MESSAGES, "invalid": "expected a string"}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if not value.strip():
            raise ValidationError("must not be empty")
        return value


class Integer(fields.Field):
    """An integer (booleans and integral floats are refused)."""

    default_error_messages = {**_BASE_MESSAGES, "invalid": "expected an integer"}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Boolean(fields.Field):
    default_error_messages = {**_BASE_MESSAGES, "invalid": "expected true or false"}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Bound(fields.Field):
    """A ``min``/``max``: a number, or an ISO date string (checked against the field type later)."""

    default_error_messages = {**_BASE_MESSAGES, "invalid": "expected a number or an ISO date"}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.make_error("invalid")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.make_error("invalid")
        return value


class ExpressionField(fields.Field):
    """A CEL expression, compiled on load."""

    default_error_messages = {**_BASE_MESSAGES, "invalid": "expected an expression (a string)"}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Expression:
        if not isinstance(value, str) or not value.strip():
            raise self.make_error("invalid")
        try:
            return Expression(value)
        except ExpressionSyntaxError as error:
            raise ValidationError(str(error)) from None


class Requirement(ExpressionField):
    """``required``: true, false, or an expression."""

    default_error_messages = {"invalid": "expected true, false or an expression"}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            return value
        return super()._deserialize(value, attr, data, **kwargs)


class SettingValue(fields.Field):
    """A setting's default: a string, number or boolean, or a list of them."""

    default_error_messages = {
        **_BASE_MESSAGES,
        "invalid": "expected a string, number, boolean or a list of them",
    }

    @staticmethod
    def _scalar(value: Any) -> bool:
        if isinstance(value, float):
            return math.isfinite(value)
        return isinstance(value, str | int | bool)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if self._scalar(value):
            return value
        if isinstance(value, list) and all(self._scalar(item) for item in value):
            return list(value)
        raise self.make_error("invalid")


class _Strict(Schema):
    error_messages = {"unknown": _UNKNOWN, "type": "expected a mapping"}

    class Meta:
        unknown = RAISE


def _list(inner: fields.Field, **kwargs: Any) -> fields.List:
    return fields.List(
        inner, error_messages={**_BASE_MESSAGES, "invalid": "expected a list"}, **kwargs
    )


def _nested(schema: Any, **kwargs: Any) -> fields.Nested:
    return fields.Nested(schema, error_messages=_BASE_MESSAGES, **kwargs)


class LocalTextSchema(_Strict):
    """Text in every interface language: ``{ro: ..., en: ...}``."""

    ro = Text(required=True)
    en = Text(required=True)


class ChoiceSchema(_Strict):
    value = Text(required=True, validate=_pattern(CHOICE_VALUE, "choice value"))
    label = _nested(LocalTextSchema, required=True)


class FieldSchema(_Strict):
    name = Text(required=True, validate=_pattern(IDENTIFIER, "field name"))
    type = Text(required=True, validate=_one_of(FIELD_TYPES))
    label = _nested(LocalTextSchema, required=True)
    hint = _nested(LocalTextSchema)
    required = Requirement()
    relevant = ExpressionField()
    calculate = ExpressionField()
    constraint = ExpressionField()
    constraint_message = _nested(LocalTextSchema)
    min = Bound()
    max = Bound()
    min_length = Integer(validate=validate.Range(min=0, error="must be at least 0"))
    max_length = Integer(validate=validate.Range(min=1, error="must be at least 1"))
    pattern = Text()
    choices = _list(_nested(ChoiceSchema))
    kind = Text(validate=_one_of(ATTACHMENT_KINDS))
    # The document's key is "fields": declared here as a field, it does not clash with
    # marshmallow's own ``Schema.fields``, an instance attribute set in ``__init__``.
    fields = _list(_nested(lambda: FieldSchema()))  # type: ignore[assignment]
    min_count = Integer(validate=validate.Range(min=0, error="must be at least 0"))
    max_count = Integer(validate=validate.Range(min=1, error="must be at least 1"))
    case_property = Text(validate=_pattern(IDENTIFIER, "case property name"))
    policy = Text(validate=_one_of(POLICIES))
    sensitivity = Text(validate=_one_of(SENSITIVITIES))


class CaseSchema(_Strict):
    mode = Text(required=True, validate=_one_of(CASE_MODES))
    roles = _list(Text(validate=_one_of(FILLER_ROLES)), validate=validate.Length(
        min=1, error="name at least one role"))
    close_when = ExpressionField()
    close_reason = Text()
    close_date = Text()
    transfer_when = ExpressionField()
    transfer_to = Text()
    transfer_reason = Text()


class FormSchema(_Strict):
    form_id = Text(required=True, validate=_pattern(FORM_ID, "form id"))
    version = Integer(required=True, validate=validate.Range(min=1, error="must be at least 1"))
    title = _nested(LocalTextSchema, required=True)
    description = _nested(LocalTextSchema)
    case = _nested(CaseSchema, required=True)
    settings = fields.Dict(
        keys=Text(validate=_pattern(IDENTIFIER, "setting name")),
        values=SettingValue(),
        error_messages={**_BASE_MESSAGES, "invalid": "expected a mapping"},
    )
    fields = _list(  # type: ignore[assignment]  # the document's key (see FieldSchema)
        _nested(FieldSchema),
        required=True,
        validate=validate.Length(min=1, error="a form needs at least one field"),
    )


DOCUMENT_KEYS = {
    "form": tuple(FormSchema().declared_fields),
    "case": tuple(CaseSchema().declared_fields),
    "field": tuple(FieldSchema().declared_fields),
    "choice": tuple(ChoiceSchema().declared_fields),
}
"""Every key the language accepts, per element (the documentation test reads this)."""


def _flatten(messages: Any, path: str, out: list[tuple[str, str]]) -> None:
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema":
                _flatten(value, path, out)
            elif isinstance(key, int):
                _flatten(value, f"{path}[{key}]", out)
            elif path == "settings" and isinstance(value, Mapping):
                # a Dict field nests its errors under "key" / "value": report the entry itself
                _flatten(list(value.values()), f"{path}.{key}", out)
            else:
                _flatten(value, f"{path}.{key}" if path else str(key), out)
    elif isinstance(messages, list):
        for message in messages:
            _flatten(message, path, out)
    else:
        out.append((path, str(messages)))


def load_structure(document: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Deserialise ``document``; returns the loaded data and the structural errors."""
    if not isinstance(document, Mapping):
        return {}, [("", "a form definition must be a mapping")]
    try:
        return FormSchema().load(document), []
    except ValidationError as error:
        out: list[tuple[str, str]] = []
        _flatten(error.messages, "", out)
        return {}, out
