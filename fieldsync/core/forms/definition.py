"""Loading a form document: structure (marshmallow), then meaning, then the evaluation plan.

Every problem is reported with the path of the offending element, e.g.
``fields[3].relevant: unknown field 'agee'``, in one :class:`FormDefinitionError`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from fieldsync.core.forms.errors import FormDefinitionError
from fieldsync.core.forms.expressions import KEYWORDS, RESERVED, SETTINGS, Expression
from fieldsync.core.forms.functions import HELPERS, NATIVE_FUNCTIONS, parse_date
from fieldsync.core.forms.model import (
    NUMERIC_TYPES,
    SELECT_TYPES,
    CaseBlock,
    Choice,
    Field,
    FormDefinition,
)
from fieldsync.core.forms.plan import build_plan
from fieldsync.core.forms.schema import load_structure

RESERVED_PROPERTIES = frozenset({"status", "owner_service", "owner_officer"})
"""Case properties the server sets; a form may not write them."""

_ALL = frozenset(
    {"text", "integer", "decimal", "boolean", "date", "datetime", "select_one",
     "select_multiple", "geopoint", "attachment", "group", "repeat"}
)  # fmt: skip
APPLIES_TO: dict[str, frozenset[str]] = {
    "required": _ALL - {"group"},
    "calculate": _ALL - {"group", "repeat", "attachment"},
    "constraint": _ALL - {"group"},
    "min": frozenset({"integer", "decimal", "date"}),
    "max": frozenset({"integer", "decimal", "date"}),
    "min_length": frozenset({"text"}),
    "max_length": frozenset({"text"}),
    "pattern": frozenset({"text"}),
    "choices": SELECT_TYPES,
    "kind": frozenset({"attachment"}),
    "fields": frozenset({"group", "repeat"}),
    "min_count": frozenset({"repeat"}),
    "max_count": frozenset({"repeat"}),
    "case_property": _ALL - {"group", "repeat"},
}
"""Keys that only some field types accept (all other keys apply to every type)."""

_FUNCTIONS = NATIVE_FUNCTIONS | frozenset(HELPERS)


def _build_field(
    data: Mapping[str, Any],
    path: str,
    parent: Field | None,
    errors: list[tuple[str, str]],
) -> Field:
    pattern = None
    if "pattern" in data:
        try:
            pattern = re.compile(data["pattern"])
        except re.error as error:
            errors.append((f"{path}.pattern", f"invalid regular expression: {error}"))
    repeat = None
    if parent is not None:
        repeat = parent.name if parent.type == "repeat" else parent.repeat
    item = Field(
        name=data["name"],
        type=data["type"],
        label=dict(data["label"]),
        path=path,
        hint=data.get("hint"),
        required=data.get("required", False),
        relevant=data.get("relevant"),
        calculate=data.get("calculate"),
        constraint=data.get("constraint"),
        constraint_message=data.get("constraint_message"),
        min=data.get("min"),
        max=data.get("max"),
        min_length=data.get("min_length"),
        max_length=data.get("max_length"),
        pattern=pattern,
        choices=tuple(Choice(c["value"], dict(c["label"])) for c in data.get("choices", ())),
        kind=data.get("kind"),
        min_count=data.get("min_count"),
        max_count=data.get("max_count"),
        case_property=data.get("case_property"),
        policy=data.get("policy", "lww"),
        sensitivity=data.get("sensitivity", "restricted"),
        parent=parent.name if parent is not None else None,
        repeat=repeat,
    )
    children = tuple(
        _build_field(child, f"{path}.fields[{index}]", item, errors)
        for index, child in enumerate(data.get("fields", ()))
    )
    object.__setattr__(item, "fields", children)
    return item


def _check_keys(item: Field, data: Mapping[str, Any], errors: list[tuple[str, str]]) -> None:
    path, kind = item.path, item.type
    for key, types in APPLIES_TO.items():
        if key in data and kind not in types:
            errors.append((f"{path}.{key}", f"not allowed for type '{kind}'"))
    if kind in SELECT_TYPES and not item.choices:
        errors.append((f"{path}.choices", f"a {kind} field needs at least one choice"))
    seen: dict[str, int] = {}
    for index, choice in enumerate(item.choices):
        if choice.value in seen:
            errors.append(
                (f"{path}.choices[{index}].value", f"duplicate choice value '{choice.value}'")
            )
        seen.setdefault(choice.value, index)
    if kind == "attachment" and item.kind is None:
        errors.append((f"{path}.kind", "an attachment needs kind photo or signature"))
    if item.is_container and not item.fields:
        errors.append((f"{path}.fields", f"a {kind} needs at least one field"))
    if kind == "repeat" and item.repeat is not None:
        errors.append((f"{path}.type", "a repeat cannot contain another repeat"))
    if item.name in KEYWORDS or item.name in RESERVED or item.name == SETTINGS:
        errors.append((f"{path}.name", f"'{item.name}' is a reserved word"))
    if item.calculate is not None and "required" in data:
        errors.append((f"{path}.required", "a calculated field cannot be required"))
    if (item.constraint is None) != (item.constraint_message is None):
        missing = "constraint_message" if item.constraint is not None else "constraint"
        other = "constraint" if missing == "constraint_message" else "constraint_message"
        errors.append((f"{path}.{missing}", f"required with {other}"))


def _check_bounds(item: Field, errors: list[tuple[str, str]]) -> None:
    path = item.path
    pairs = [("min_length", "max_length"), ("min_count", "max_count")]
    if item.type in APPLIES_TO["min"]:
        count = len(errors)
        for key in ("min", "max"):
            bound = getattr(item, key)
            if bound is None:
                continue
            if item.type == "date" and parse_date(bound) is None:
                errors.append((f"{path}.{key}", "expected an ISO date (YYYY-MM-DD)"))
            elif item.type == "integer" and not isinstance(bound, int):
                errors.append((f"{path}.{key}", "expected an integer"))
            elif item.type == "decimal" and not isinstance(bound, int | float):
                errors.append((f"{path}.{key}", "expected a number"))
        if len(errors) == count:
            pairs.append(("min", "max"))
    for low, high in pairs:
        first, last = getattr(item, low), getattr(item, high)
        if first is None or last is None:
            continue
        if first > last:
            errors.append((f"{path}.{high}", f"must not be less than {low}"))


def _check_case_property(
    item: Field, data: Mapping[str, Any], written: dict[str, str], errors: list[tuple[str, str]]
) -> None:
    path, prop = item.path, item.case_property
    if prop is None:
        if "policy" in data:
            errors.append((f"{path}.policy", "policy needs a case_property"))
        return
    if item.type not in APPLIES_TO["case_property"]:
        return  # already reported as "not allowed for type"
    if prop in RESERVED_PROPERTIES:
        errors.append((f"{path}.case_property", f"'{prop}' is reserved (set by the server)"))
    if item.repeat is not None:
        errors.append(
            (f"{path}.case_property", "a field inside a repeat cannot write a case property")
        )
    if prop in written:
        errors.append(
            (f"{path}.case_property", f"case property '{prop}' is already written by "
             f"{written[prop]}")
        )  # fmt: skip
    written.setdefault(prop, path)
    if item.policy == "sum" and item.type not in NUMERIC_TYPES:
        errors.append((f"{path}.policy", "policy 'sum' needs an integer or decimal field"))


def _check_expression(
    path: str,
    expression: Expression,
    scope: str | None,
    by_name: Mapping[str, Field],
    settings: Mapping[str, Any],
    errors: list[tuple[str, str]],
) -> None:
    refs = expression.references
    for name in sorted(refs.names):
        target = by_name.get(name)
        if target is None:
            errors.append((path, f"unknown field '{name}'"))
        elif target.type == "group":
            errors.append((path, f"'{name}' is a group, not a value"))
        elif target.repeat is not None and target.repeat != scope:
            errors.append(
                (path, f"'{name}' is inside repeat '{target.repeat}'; "
                 f"refer to '{target.repeat}' instead")
            )  # fmt: skip
    for name in sorted(refs.settings - set(settings)):
        errors.append((path, f"unknown setting '{name}'"))
    for name in sorted(refs.functions - _FUNCTIONS):
        errors.append((path, f"unknown function '{name}'"))


def _check_case(
    case: CaseBlock, by_name: Mapping[str, Field], errors: list[tuple[str, str]]
) -> None:
    groups = {
        "close_when": (
            ("close_reason", ("text", "select_one")),
            ("close_date", ("date",)),
        ),
        "transfer_when": (
            ("transfer_to", ("text", "select_one")),
            ("transfer_reason", ("text", "select_one")),
        ),
    }
    for trigger, targets in groups.items():
        present = getattr(case, trigger) is not None
        for key, types in targets:
            name = getattr(case, key)
            if name is None:
                if present:
                    errors.append((f"case.{key}", f"required with {trigger}"))
                continue
            if not present:
                errors.append((f"case.{key}", f"only allowed with {trigger}"))
            target = by_name.get(name)
            if target is None:
                errors.append((f"case.{key}", f"unknown field '{name}'"))
            elif target.repeat is not None or target.type not in types:
                kinds = " or ".join(types)
                errors.append((f"case.{key}", f"must name a {kinds} field outside repeats"))


def load_form(document: Mapping[str, Any]) -> FormDefinition:
    """Check and load a form document (already decoded from YAML or JSON).

    Raises :class:`FormDefinitionError` listing every problem found.
    """
    data, errors = load_structure(document)
    if errors:
        raise FormDefinitionError(errors)
    fields = tuple(
        _build_field(item, f"fields[{index}]", None, errors)
        for index, item in enumerate(data["fields"])
    )
    raw_fields = _raw_by_path(data["fields"], "fields")
    everything = [item for top in fields for item in top.walk()]
    by_name: dict[str, Field] = {}
    written: dict[str, str] = {}
    settings = dict(data.get("settings", {}))
    for item in everything:
        if item.name in by_name:
            first = by_name[item.name].path
            errors.append((f"{item.path}.name", f"duplicate field name '{item.name}' "
                           f"(first used at {first})"))  # fmt: skip
        else:
            by_name[item.name] = item
    for item in everything:
        raw = raw_fields[item.path]
        _check_keys(item, raw, errors)
        _check_bounds(item, errors)
        _check_case_property(item, raw, written, errors)
        for key, expression in item.expressions():
            _check_expression(
                f"{item.path}.{key}", expression, item.repeat, by_name, settings, errors
            )
    case_data = dict(data["case"])
    if "roles" in case_data:
        case_data["roles"] = tuple(dict.fromkeys(case_data["roles"]))
        if data["case"]["mode"] == "create" and case_data["roles"] != ("officer",):
            errors.append(("case.roles", "only officers open cases: a create form's roles "
                           "must be [officer]"))
    case = CaseBlock(**case_data)
    for key in ("close_when", "transfer_when"):
        expression = getattr(case, key)
        if expression is not None:
            _check_expression(f"case.{key}", expression, None, by_name, settings, errors)
    _check_case(case, by_name, errors)
    plan, cycle_errors = build_plan(everything, by_name)
    errors.extend(cycle_errors)
    if errors:
        position = {item.path: index for index, item in enumerate(everything)}
        raise FormDefinitionError(sorted(errors, key=lambda e: _position(e[0], position)))
    return FormDefinition(
        form_id=data["form_id"],
        version=data["version"],
        title=dict(data["title"]),
        description=data.get("description"),
        case=case,
        fields=fields,
        settings=settings,
        document=copy.deepcopy(dict(document)),
        by_name=by_name,
        plan=plan,
    )


def _raw_by_path(items: list[Mapping[str, Any]], prefix: str) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for index, item in enumerate(items):
        path = f"{prefix}[{index}]"
        out[path] = item
        out.update(_raw_by_path(item.get("fields", []), f"{path}.fields"))
    return out


_FIELD_PATH = re.compile(r"fields\[\d+\](?:\.fields\[\d+\])*")


def _position(path: str, position: Mapping[str, int]) -> int:
    """Document order of an error: the field it belongs to; form-level errors last."""
    found = _FIELD_PATH.match(path)
    return position.get(found.group(), len(position)) if found else len(position)
