"""Validate an answer set against a form and derive the case operations it implies.

The same function runs on the tablet before a submission is sealed and on the server after it
is opened; given the same form, answers and settings it returns the same result (nothing here
reads the clock, the environment or any state outside its arguments).

Rules (documented for form authors in ``docs/forms.md``):

- ``null``, ``""`` and ``[]`` mean "not answered".
- Answers for unknown names are errors (``unknown field``).
- An answer for a field that is not relevant is an error (``not relevant: must not be
  answered``): what the officer could not see must not be stored.
- A calculated field's value is computed; an answer for it is accepted only when it equals the
  computed value (so a tablet may send back the engine's own ``values``), otherwise it is an
  error.
- Operations are produced only when the answers are valid.
"""

from __future__ import annotations

import copy
import json
import math
from collections import ChainMap
from collections.abc import Mapping, MutableMapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from fieldsync.core.forms.errors import SettingsError
from fieldsync.core.forms.model import Field, FormDefinition
from fieldsync.core.forms.values import Invalid, check_static, is_blank, normalise


@dataclass(frozen=True)
class ValidationResult:
    ok: bool
    errors: dict[str, list[str]]
    """Field path (``name``, ``repeat[1].name``; ``""`` for the answer set) -> messages."""
    values: dict[str, Any]
    """Normalised answers and calculated values; absent and non-relevant fields left out."""
    operations: list[dict[str, Any]] = field(default_factory=list)
    """Case operations in order (empty unless ``ok``)."""


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return None


def resolve_settings(
    form: FormDefinition, override: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The form's declared settings with ``override`` applied.

    Keys the form does not declare are ignored (one server-wide mapping serves every form).
    A value of another kind than the default raises :class:`SettingsError`; a number where the
    default is a decimal is accepted as a float.
    """
    resolved = dict(form.settings)
    for key, value in (override or {}).items():
        if key not in resolved:
            continue
        default = resolved[key]
        expected = _kind(default)
        if isinstance(default, float) and _kind(value) in ("an integer", "a number"):
            if math.isfinite(value):
                resolved[key] = float(value)
                continue
        if _kind(value) != expected or (isinstance(value, list) and not _scalars(value)):
            raise SettingsError(
                f"setting '{key}' of form '{form.form_id}' v{form.version} expects "
                f"{expected}, got {value!r}"
            )
        resolved[key] = list(value) if isinstance(value, list) else value
    return resolved


def _scalars(values: list[Any]) -> bool:
    return all(_kind(value) not in (None, "a list") for value in values)


@dataclass
class _Scope:
    """One level of answers: the whole form, or one row of a repeat."""

    supplied: Mapping[str, Any]
    env: MutableMapping[str, Any]
    prefix: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    relevant: dict[str, bool] = field(default_factory=dict)
    invalid: set[str] = field(default_factory=set)


class _Run:
    def __init__(self, form: FormDefinition, answers: Any, settings: dict[str, Any]) -> None:
        self.form = form
        self.settings = settings
        self.errors: dict[str, list[str]] = {}
        self.rows: dict[str, list[_Scope]] = {}
        supplied = answers if isinstance(answers, Mapping) else {}
        self.top = _Scope(supplied=supplied, env={})
        if not isinstance(answers, Mapping):
            self.error("", "expected an object mapping field names to answers")

    def error(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def check_unknown(self, scope: _Scope, allowed: Set[str]) -> None:
        for key in sorted(str(key) for key in scope.supplied if key not in allowed):
            self.error(scope.prefix + key, "unknown field")

    # -- resolving values ---------------------------------------------------------------

    def is_relevant(self, item: Field, scope: _Scope) -> bool:
        by_name = self.form.by_name
        if item.parent is not None and by_name[item.parent].type == "group":
            if not scope.relevant.get(item.parent, False):
                return False
        return item.relevant is None or item.relevant.is_true(scope.env, self.settings)

    def resolve(self, item: Field, scope: _Scope) -> None:
        name, path = item.name, scope.prefix + item.name
        relevant = scope.relevant[name] = self.is_relevant(item, scope)
        if item.type == "group":
            return
        given = scope.supplied.get(name)
        scope.env[name] = None
        if not relevant:
            if not is_blank(given):
                self.error(path, "not relevant: must not be answered")
            return
        if item.type == "repeat":
            self.resolve_repeat(item, given)
            return
        if item.calculate is not None:
            self.resolve_calculated(item, scope, given)
            return
        if is_blank(given):
            return
        try:
            scope.env[name] = scope.values[name] = normalise(item, given)
        except Invalid as problem:
            scope.invalid.add(name)
            self.error(path, str(problem))

    def resolve_calculated(self, item: Field, scope: _Scope, given: Any) -> None:
        name, path = item.name, scope.prefix + item.name
        result = item.calculate.evaluate(scope.env, self.settings) if item.calculate else None
        computed = None
        if not is_blank(result):
            try:
                computed = normalise(item, result)
            except Invalid as problem:
                scope.invalid.add(name)
                self.error(path, f"calculation gave an invalid value: {problem}")
        if not is_blank(given) and name not in scope.invalid:
            try:
                same = normalise(item, given) == computed
            except Invalid:
                same = False
            if not same:
                shown = json.dumps(computed, ensure_ascii=False)
                self.error(path, f"calculated field: the computed value is {shown}")
        if computed is not None:
            scope.env[name] = scope.values[name] = computed

    def resolve_repeat(self, item: Field, given: Any) -> None:
        name = item.name
        if given is not None and not isinstance(given, list):
            self.top.invalid.add(name)
            self.error(name, "expected a list of rows")
            return
        members = [f for f in item.walk() if f is not item]
        allowed = {f.name for f in members if f.type != "group"}
        scopes = []
        for index, row in enumerate(given or []):
            prefix = f"{name}[{index}]"
            if not isinstance(row, Mapping):
                self.error(prefix, "expected an object")
                continue
            scope = _Scope(supplied=row, env=ChainMap({}, self.top.env), prefix=prefix + ".")
            self.check_unknown(scope, allowed)
            for member in self.form.plan.rows[name]:
                self.resolve(self.form.by_name[member], scope)
            scopes.append(scope)
        self.rows[name] = scopes
        self.top.env[name] = [{n: s.env.get(n) for n in sorted(allowed)} for s in scopes]
        order = [f.name for f in members]
        self.top.values[name] = [_ordered(s.values, order) for s in scopes]

    # -- checking values ----------------------------------------------------------------

    def check(self, item: Field, scope: _Scope) -> None:
        name, path = item.name, scope.prefix + item.name
        if item.type == "group" or not scope.relevant.get(name) or name in scope.invalid:
            return
        value = scope.env.get(name)
        required = item.required
        if not isinstance(required, bool):
            required = required.is_true(scope.env, self.settings)
        if item.type == "repeat":
            count = len(value or [])
            if required and count == 0:
                self.error(path, "required")
            if item.min_count is not None and count < item.min_count:
                self.error(path, f"needs at least {item.min_count} rows")
            if item.max_count is not None and count > item.max_count:
                self.error(path, f"allows at most {item.max_count} rows")
            for scope_row in self.rows.get(name, []):
                for member in item.fields:
                    for nested in member.walk():
                        self.check(nested, scope_row)
        elif value is None:
            if required:
                self.error(path, "required")
            return
        else:
            for problem in check_static(item, value):
                self.error(path, problem)
        if item.constraint is not None and item.constraint_message is not None:
            if not item.constraint.is_true(scope.env, self.settings):
                self.error(path, item.constraint_message["en"])

    # -- operations ---------------------------------------------------------------------

    def operations(self) -> list[dict[str, Any]]:
        form, env = self.form, self.top.env
        ops: list[dict[str, Any]] = []
        if form.case.mode == "create":
            ops.append({"type": "create"})
        for item in form.walk():
            prop = item.case_property
            if prop is None or item.repeat is not None or item.name not in self.top.values:
                continue
            value = self.top.values[item.name]
            if type(value) not in _SCALARS:  # lists and objects: not shared with ``values``
                value = copy.deepcopy(value)
            if item.policy == "append":
                ops.append({"type": "append", "property": prop, "value": value,
                            "sensitivity": item.sensitivity})  # fmt: skip
            elif item.policy == "sum":
                ops.append({"type": "add", "property": prop, "value": value,
                            "sensitivity": item.sensitivity})  # fmt: skip
            else:
                ops.append({"type": "set", "property": prop, "value": value,
                            "policy": item.policy, "sensitivity": item.sensitivity})  # fmt: skip
        case = form.case
        if case.close_when is not None and case.close_when.is_true(env, self.settings):
            ops.append({"type": "close", "reason": env.get(case.close_reason or ""),
                        "date": env.get(case.close_date or "")})  # fmt: skip
        if case.transfer_when is not None and case.transfer_when.is_true(env, self.settings):
            ops.append({"type": "transfer_request", "service": env.get(case.transfer_to or ""),
                        "reason": env.get(case.transfer_reason or "")})  # fmt: skip
        return ops

    def run(self) -> ValidationResult:
        form = self.form
        self.check_unknown(self.top, form.top_names)
        for name in form.plan.top:
            self.resolve(form.by_name[name], self.top)
        for item in form.walk():
            if item.repeat is None:
                self.check(item, self.top)
        ok = not self.errors
        return ValidationResult(
            ok=ok,
            errors=self.errors,
            values=_ordered(self.top.values, form.order),
            operations=self.operations() if ok else [],
        )


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _ordered(values: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    return {name: values[name] for name in order if name in values}


def validate(
    form: FormDefinition, answers: Any, *, settings: Mapping[str, Any] | None = None
) -> ValidationResult:
    """Check ``answers`` (a JSON-decoded object) against ``form``.

    ``settings`` overrides the form's declared setting defaults (see :func:`resolve_settings`;
    raises :class:`SettingsError` for a value of the wrong kind).
    """
    return _Run(form, answers, resolve_settings(form, settings)).run()
