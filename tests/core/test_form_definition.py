"""Loading form definitions: structure, meaning, error paths, expression references, docs."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import cel
import pytest

from fieldsync.core.canonical import content_hash
from fieldsync.core.forms import (
    DOCUMENT_KEYS,
    FIELD_TYPES,
    HELPERS,
    POLICIES,
    SENSITIVITIES,
    FormDefinitionError,
    find_references,
    load_form,
    load_library,
    parse_yaml,
)

ROOT = Path(__file__).resolve().parents[2]
LABEL = {"ro": "Etichetă", "en": "Label"}


def fld(name: str, type_: str = "text", **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"name": name, "type": type_, "label": LABEL}
    if type_ in ("select_one", "select_multiple") and "choices" not in extra:
        item["choices"] = [{"value": "a", "label": LABEL}, {"value": "b", "label": LABEL}]
    if type_ == "attachment" and "kind" not in extra:
        item["kind"] = "photo"
    item.update(extra)
    return item


def doc(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "form_id": "demo_form",
        "version": 1,
        "title": {"ro": "Formular", "en": "Form"},
        "case": {"mode": "update"},
        "fields": list(fields) or [fld("note")],
    }
    document.update(extra)
    return document


def errors_of(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(FormDefinitionError) as caught:
        load_form(document)
    return caught.value.errors


# -- a valid definition ------------------------------------------------------------------------


def test_minimal_form_loads_with_defaults() -> None:
    form = load_form(doc(fld("visit_date", "date", case_property="last_visit")))
    (item,) = form.fields
    assert form.key == ("demo_form", 1)
    assert (item.policy, item.sensitivity, item.required) == ("lww", "restricted", False)
    assert item.path == "fields[0]"


def test_content_hash_is_the_canonical_hash_of_the_document_as_given() -> None:
    document = doc(fld("a", "integer", min=0))
    form = load_form(document)
    assert form.content_hash == content_hash(document)
    document["version"] = 2  # the loaded form kept its own copy
    assert form.document["version"] == 1


def test_error_string_lists_every_problem_one_per_line() -> None:
    with pytest.raises(FormDefinitionError) as caught:
        load_form(doc(fld("age", "integer"), fld("x", relevant="agee > 3", policy="lww")))
    assert str(caught.value) == (
        "invalid form definition (2 errors):\n"
        "  fields[1].policy: policy needs a case_property\n"
        "  fields[1].relevant: unknown field 'agee'"
    )


# -- structure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], [("", "a form definition must be a mapping")]),
        (doc(version="1"), [("version", "expected an integer")]),
        (doc(version=True), [("version", "expected an integer")]),
        (doc(version=0), [("version", "must be at least 1")]),
        (doc(form_id="Bad Id"), [("form_id", "not a valid form id")]),
        (doc(colour="red"), [("colour", "unknown key")]),
        (doc(title={"ro": "x"}), [("title.en", "missing required key")]),
        (doc(title={"ro": "x", "en": "y", "de": "z"}), [("title.de", "unknown key")]),
        (doc(case={"mode": "delete"}), [("case.mode", "must be one of create, update")]),
        (doc(fields=[]), [("fields", "a form needs at least one field")]),
        (doc(fld("a", colour="red")), [("fields[0].colour", "unknown key")]),
        (doc(fld("a", "number")), [("fields[0].type", "must be one of " + ", ".join(FIELD_TYPES))]),
        (doc(fld("Age")), [("fields[0].name", "not a valid field name")]),
        (
            doc(fld("a", required="yes please")),
            [
                (
                    "fields[0].required",
                    "invalid expression (line 1, column 5): "
                    "Syntax error: extraneous input 'please' expecting <EOF>",
                ),
            ],
        ),
        (
            doc(fld("a", required=1)),
            [("fields[0].required", "expected true, false or an expression")],
        ),
        (doc(fld("a", "integer", min="1")), [("fields[0].min", "expected an integer")]),
        (
            doc(fld("a", "integer", min=True)),
            [("fields[0].min", "expected a number or an ISO date")],
        ),
        (doc(fld("a", max_length=0)), [("fields[0].max_length", "must be at least 1")]),
        (
            doc(fld("a", policy="first_wins", case_property="a")),
            [
                ("fields[0].policy", "must be one of " + ", ".join(POLICIES)),
            ],
        ),
        (
            doc(fld("a", sensitivity="secret")),
            [
                ("fields[0].sensitivity", "must be one of " + ", ".join(SENSITIVITIES)),
            ],
        ),
        (
            doc(fld("a", "attachment", kind="video")),
            [("fields[0].kind", "must be one of photo, signature")],
        ),
        (
            doc(fld("a", "select_one", choices=[{"value": "a b", "label": LABEL}])),
            [
                ("fields[0].choices[0].value", "not a valid choice value"),
            ],
        ),
        (doc(settings={"Cap": 3}), [("settings.Cap", "not a valid setting name")]),
        (
            doc(settings={"cap": {"a": 1}}),
            [
                ("settings.cap", "expected a string, number, boolean or a list of them"),
            ],
        ),
        (
            doc(fld("g", "group", fields=[fld("a", label={"ro": "", "en": "A"})])),
            [
                ("fields[0].fields[0].label.ro", "must not be empty"),
            ],
        ),
    ],
)
def test_structural_errors_name_the_offending_key(document: Any, expected: list[Any]) -> None:
    assert errors_of(document) == expected


def test_syntax_errors_give_position() -> None:
    [(path, message)] = errors_of(doc(fld("a", "integer"), fld("b", relevant="a >")))
    assert path == "fields[1].relevant"
    assert message.startswith("invalid expression (line 1, column 4): Syntax error:")


# -- meaning -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # references
        (
            [fld("age", "integer"), fld("b", relevant="agee > 3")],
            [("fields[1].relevant", "unknown field 'agee'")],
        ),
        (
            [fld("a", "integer", calculate="settings.cap * 2")],
            [("fields[0].calculate", "unknown setting 'cap'")],
        ),
        (
            [fld("a", "date", calculate="today()")],
            [("fields[0].calculate", "unknown function 'today'")],
        ),
        (
            [fld("g", "group", fields=[fld("a")]), fld("b", relevant="g == null")],
            [("fields[1].relevant", "'g' is a group, not a value")],
        ),
        (
            [fld("r", "repeat", fields=[fld("who")]), fld("b", relevant='who == "x"')],
            [("fields[1].relevant", "'who' is inside repeat 'r'; refer to 'r' instead")],
        ),
        # names
        (
            [fld("a"), fld("g", "group", fields=[fld("a")])],
            [("fields[1].fields[0].name", "duplicate field name 'a' (first used at fields[0])")],
        ),
        ([fld("in")], [("fields[0].name", "'in' is a reserved word")]),
        ([fld("settings")], [("fields[0].name", "'settings' is a reserved word")]),
        # cycles
        (
            [fld("a", "integer", calculate="b + 1"), fld("b", "integer", calculate="a + 1")],
            [("fields[0]", "circular reference: a -> b -> a")],
        ),
        ([fld("a", "integer", calculate="a + 1")], [("fields[0]", "circular reference: a -> a")]),
        (
            [fld("a", relevant="b == null"), fld("b", "integer", calculate="size(a)")],
            [("fields[0]", "circular reference: a -> b -> a")],
        ),
        (
            [fld("r", "repeat", fields=[fld("n", "integer", calculate="size(r)")])],
            [("fields[0]", "circular reference: r -> r")],
        ),
        (
            [
                fld(
                    "r",
                    "repeat",
                    fields=[fld("x", "integer", calculate="y"), fld("y", "integer", calculate="x")],
                )
            ],
            [("fields[0].fields[0]", "circular reference: x -> y -> x")],
        ),
        # field-type rules
        (
            [fld("a", "select_one", choices=[])],
            [("fields[0].choices", "a select_one field needs at least one choice")],
        ),
        (
            [
                fld(
                    "a",
                    "select_multiple",
                    choices=[
                        {"value": "x", "label": LABEL},
                        {"value": "y", "label": LABEL},
                        {"value": "x", "label": LABEL},
                    ],
                )
            ],
            [("fields[0].choices[2].value", "duplicate choice value 'x'")],
        ),
        (
            [fld("a", "integer", pattern="[0-9]+")],
            [("fields[0].pattern", "not allowed for type 'integer'")],
        ),
        (
            [fld("a", choices=[{"value": "x", "label": LABEL}])],
            [("fields[0].choices", "not allowed for type 'text'")],
        ),
        (
            [{"name": "a", "type": "attachment", "label": LABEL}],
            [("fields[0].kind", "an attachment needs kind photo or signature")],
        ),
        (
            [fld("g", "group", fields=[])],
            [("fields[0].fields", "a group needs at least one field")],
        ),
        (
            [fld("r", "repeat", fields=[fld("s", "repeat", fields=[fld("a")])])],
            [("fields[0].fields[0].type", "a repeat cannot contain another repeat")],
        ),
        ([fld("a", "integer", min=5, max=1)], [("fields[0].max", "must not be less than min")]),
        (
            [fld("a", min_length=5, max_length=2)],
            [("fields[0].max_length", "must not be less than min_length")],
        ),
        (
            [fld("a", "date", min="2024-13-01")],
            [("fields[0].min", "expected an ISO date (YYYY-MM-DD)")],
        ),
        (
            [fld("a", "date", min="2024-02-01", max="2024-01-31")],
            [("fields[0].max", "must not be less than min")],
        ),
        ([fld("a", "decimal", max="ten")], [("fields[0].max", "expected a number")]),
        (
            [fld("a", pattern="[0-9")],
            [
                (
                    "fields[0].pattern",
                    "invalid regular expression: unterminated character set at position 0",
                )
            ],
        ),
        (
            [fld("a", constraint="a != ''")],
            [("fields[0].constraint_message", "required with constraint")],
        ),
        (
            [fld("a", constraint_message=LABEL)],
            [("fields[0].constraint", "required with constraint_message")],
        ),
        (
            [fld("a", "integer", calculate="1", required=True)],
            [("fields[0].required", "a calculated field cannot be required")],
        ),
        (
            [fld("g", "group", fields=[fld("a")], required=True)],
            [("fields[0].required", "not allowed for type 'group'")],
        ),
        # case properties
        (
            [fld("g", "group", fields=[fld("a")], case_property="g", policy="lww")],
            [("fields[0].case_property", "not allowed for type 'group'")],
        ),
        ([fld("a", policy="manual")], [("fields[0].policy", "policy needs a case_property")]),
        (
            [fld("a", case_property="hours", policy="sum")],
            [("fields[0].policy", "policy 'sum' needs an integer or decimal field")],
        ),
        (
            [fld("a", case_property="status")],
            [("fields[0].case_property", "'status' is reserved (set by the server)")],
        ),
        (
            [fld("a", case_property="owner_officer")],
            [("fields[0].case_property", "'owner_officer' is reserved (set by the server)")],
        ),
        (
            [fld("a", case_property="x"), fld("b", case_property="x")],
            [("fields[1].case_property", "case property 'x' is already written by fields[0]")],
        ),
        (
            [fld("r", "repeat", fields=[fld("a", case_property="x")])],
            [
                (
                    "fields[0].fields[0].case_property",
                    "a field inside a repeat cannot write a case property",
                )
            ],
        ),
    ],
)
def test_semantic_errors_name_the_offending_element(fields: list[Any], expected: list[Any]) -> None:
    assert errors_of(doc(*fields)) == expected


def test_site_may_be_written_but_owner_service_may_not() -> None:
    load_form(doc(fld("a", case_property="site")))
    assert errors_of(doc(fld("a", case_property="owner_service"))) == [
        ("fields[0].case_property", "'owner_service' is reserved (set by the server)")
    ]


def test_all_problems_are_reported_together_in_document_order() -> None:
    errors = errors_of(
        doc(
            fld("a", "integer", calculate="zz"),
            fld("b", pattern="("),
            fld("a"),
            case={"mode": "update", "close_when": "nope"},
        )
    )
    assert errors == [
        ("fields[0].calculate", "unknown field 'zz'"),
        (
            "fields[1].pattern",
            "invalid regular expression: missing ), unterminated subpattern at position 0",
        ),
        ("fields[2].name", "duplicate field name 'a' (first used at fields[0])"),
        ("case.close_when", "unknown field 'nope'"),
        ("case.close_reason", "required with close_when"),
        ("case.close_date", "required with close_when"),
    ]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            {"mode": "update", "close_reason": "why"},
            [("case.close_reason", "only allowed with close_when")],
        ),
        (
            {"mode": "update", "close_when": "true", "close_reason": "why", "close_date": "why"},
            [("case.close_date", "must name a date field outside repeats")],
        ),
        (
            {
                "mode": "update",
                "transfer_when": "true",
                "transfer_to": "svc",
                "transfer_reason": "r",
            },
            [
                ("case.transfer_to", "unknown field 'svc'"),
                ("case.transfer_reason", "must name a text or select_one field outside repeats"),
            ],
        ),
    ],
)
def test_case_block_errors(case: dict[str, Any], expected: list[Any]) -> None:
    fields = [fld("why"), fld("r", "repeat", fields=[fld("inner")])]
    assert errors_of(doc(*fields, case=case)) == expected


def test_expressions_inside_a_repeat_see_the_row_and_the_form() -> None:
    form = load_form(
        doc(
            fld("limit", "integer"),
            fld(
                "r",
                "repeat",
                fields=[fld("n", "integer", constraint="n <= limit", constraint_message=LABEL)],
            ),
            fld("total", "integer", calculate="size(r)"),
        )
    )
    assert form.plan.top == ("limit", "r", "total")


def test_calculations_are_ordered_by_dependency_not_by_position() -> None:
    form = load_form(
        doc(
            fld("c", "integer", calculate="b * 2"),
            fld("b", "integer", calculate="a + 1"),
            fld("a", "integer"),
        )
    )
    assert form.plan.top == ("a", "b", "c")


# -- expression references ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "names", "settings", "functions"),
    [
        ("a + b", {"a", "b"}, set(), set()),
        ('name == "agee && x"', {"name"}, set(), set()),
        (r"name == 'it\'s b'", {"name"}, set(), set()),
        (r'a == "say \"b\""', {"a"}, set(), set()),
        ('a == """multi "line" c"""', {"a"}, set(), set()),
        (r'a.matches(r"\d+ d")', {"a"}, set(), set()),
        ("a == b'bytes c'", {"a"}, set(), set()),
        ("geo.lat > 45.5 && geo.lon < 1e3", {"geo"}, set(), set()),
        ("rows[0].relation == null", {"rows"}, set(), set()),
        ("x in [true, false, null]", {"x"}, set(), set()),
        ("size(a) + days_between(b, c)", {"a", "b", "c"}, set(), {"size", "days_between"}),
        ("a.startsWith(b)", {"a", "b"}, set(), set()),
        ("settings.cap * hours", {"hours"}, {"cap"}, set()),
        ('settings["cap"] > 1', set(), set(), set()),
        ("x.settings.y", {"x"}, set(), set()),
        ("rows.exists(r, r.relation == kind)", {"rows", "kind"}, set(), set()),
        ("rows.all(r, r.n > 0) && r > 1", {"rows", "r"}, set(), set()),
        (
            "a.map(x, b.filter(y, y > x)).exists_one(z, size(z) > w)",
            {"a", "b", "w"},
            set(),
            {"size"},
        ),
        ("has(m.key) // a comment mentioning c\n && d", {"m", "d"}, set(), {"has"}),
        ("{k: 1}[k] == v", {"k", "v"}, set(), set()),
    ],
)
def test_find_references(
    source: str, names: set[str], settings: set[str], functions: set[str]
) -> None:
    cel.compile(source)  # every example is valid CEL
    refs = find_references(source)
    assert (set(refs.names), set(refs.settings), set(refs.functions)) == (
        names,
        settings,
        functions,
    )


def _library_expressions() -> list[str]:
    sources = []
    for form in load_library(ROOT / "forms").values():
        for item in form.walk():
            sources.extend(expression.source for _, expression in item.expressions())
        for key in ("close_when", "transfer_when"):
            expression = getattr(form.case, key)
            if expression is not None:
                sources.append(expression.source)
    return sources


@pytest.mark.parametrize("source", _library_expressions())
def test_references_agree_with_the_cel_library(source: str) -> None:
    """The library lists variables (macro-bound ones included) but not which are bound."""
    refs = find_references(source)
    variables = set(cel.compile(source).variables())
    assert refs.names <= variables
    bound = set(re.findall(r"\.(?:all|exists|exists_one|map|filter)\(\s*(\w+)\s*,", source))
    assert variables - refs.names <= bound | {"settings"}
    assert ("settings" in variables) == refs.uses_settings


# -- YAML --------------------------------------------------------------------------------------


def test_yaml_keeps_dates_and_yes_no_as_strings() -> None:
    assert parse_yaml("a: 2024-01-01\nb: no\nc: true\nd: on\ne: 3\n") == {
        "a": "2024-01-01",
        "b": "no",
        "c": True,
        "d": "on",
        "e": 3,
    }


def test_a_document_round_trips_through_its_loaded_copy() -> None:
    document = doc(fld("a", "integer", min=0, max=5), fld("b", relevant="a > 2"))
    again = load_form(copy.deepcopy(load_form(document).document))
    assert again.content_hash == load_form(document).content_hash


# -- documentation stays honest ----------------------------------------------------------------


def test_docs_describe_every_key_type_policy_and_function() -> None:
    text = (ROOT / "docs" / "forms.md").read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    quoted = " ".join(re.findall(r"`([^`\n]+)`", prose))
    documented = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", quoted))
    keys = {key for element in DOCUMENT_KEYS.values() for key in element}
    language = keys | set(FIELD_TYPES) | set(POLICIES) | set(SENSITIVITIES) | set(HELPERS)
    assert language - documented == set()


def test_case_roles_default_to_officers_and_create_forms_stay_officer_only() -> None:
    from fieldsync.core.forms import FormDefinitionError, load_form

    base = {
        "form_id": "roles_demo", "version": 1, "title": {"ro": "R", "en": "R"},
        "fields": [{"name": "note", "type": "text", "label": {"ro": "N", "en": "N"}}],
    }
    assert load_form({**base, "case": {"mode": "update"}}).case.roles == ("officer",)
    both = load_form({**base, "case": {"mode": "update", "roles": ["supervisor", "officer"]}})
    assert both.case.roles == ("supervisor", "officer")
    with pytest.raises(FormDefinitionError) as caught:
        load_form({**base, "case": {"mode": "create", "roles": ["supervisor"]}})
    assert caught.value.errors == [
        ("case.roles", "only officers open cases: a create form's roles must be [officer]")]
    with pytest.raises(FormDefinitionError) as caught:
        load_form({**base, "case": {"mode": "update", "roles": ["reviewer"]}})
    assert caught.value.errors[0][0].startswith("case.roles")
