"""The engine: answers per field type, expressions, repeats, settings, operations, determinism."""

from __future__ import annotations

from typing import Any

import cel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldsync.core.forms import (
    HELPERS,
    FormDefinition,
    SettingsError,
    load_form,
    resolve_settings,
    validate,
)

LABEL = {"ro": "Etichetă", "en": "Label"}
MESSAGE = {"ro": "Mesaj", "en": "Constraint failed"}
SHA = "0123456789abcdef" * 4


def fld(name: str, type_: str = "text", **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"name": name, "type": type_, "label": LABEL}
    if type_ in ("select_one", "select_multiple") and "choices" not in extra:
        item["choices"] = [{"value": v, "label": LABEL} for v in ("red", "green", "blue")]
    if type_ == "attachment" and "kind" not in extra:
        item["kind"] = "photo"
    if "constraint" in extra:
        item["constraint_message"] = MESSAGE
    item.update(extra)
    return item


def form_of(*fields: dict[str, Any], **extra: Any) -> FormDefinition:
    document: dict[str, Any] = {
        "form_id": "demo_form",
        "version": 1,
        "title": {"ro": "Formular", "en": "Form"},
        "case": {"mode": "update"},
        "fields": list(fields),
    }
    document.update(extra)
    return load_form(document)


def one(type_: str, **extra: Any) -> FormDefinition:
    return form_of(fld("x", type_, **extra))


# -- field types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "extra", "answer", "stored"),
    [
        ("text", {}, "ținută", "ținută"),
        ("integer", {}, -3, -3),
        ("integer", {}, 2**53 - 1, 2**53 - 1),
        ("decimal", {}, 2, 2.0),
        ("decimal", {}, 2.75, 2.75),
        ("boolean", {}, False, False),
        ("date", {}, "2024-02-29", "2024-02-29"),
        ("datetime", {}, "2024-06-01T08:30:00+03:00", "2024-06-01T08:30:00+03:00"),
        ("datetime", {}, "2024-06-01T08:30Z", "2024-06-01T08:30Z"),
        ("datetime", {}, "2024-06-01T08:30:15.250-05:00", "2024-06-01T08:30:15.250-05:00"),
        ("select_one", {}, "green", "green"),
        ("select_multiple", {}, ["blue", "red"], ["red", "blue"]),
        ("geopoint", {}, {"lat": 46, "lon": 23.5}, {"lat": 46.0, "lon": 23.5}),
        (
            "geopoint",
            {},
            {"lat": -90, "lon": 180, "accuracy": 0},
            {"lat": -90.0, "lon": 180.0, "accuracy": 0.0},
        ),
        (
            "attachment",
            {},
            {"sha256": SHA, "media_type": "image/jpeg", "size": 0},
            {"sha256": SHA, "media_type": "image/jpeg", "size": 0},
        ),
        (
            "attachment",
            {"kind": "signature"},
            {"sha256": SHA, "media_type": "image/svg+xml", "size": 812},
            {"sha256": SHA, "media_type": "image/svg+xml", "size": 812},
        ),
    ],
)
def test_accepted_answers_are_stored_normalised(
    type_: str, extra: dict[str, Any], answer: Any, stored: Any
) -> None:
    result = validate(one(type_, **extra), {"x": answer})
    assert (result.ok, result.errors, result.values) == (True, {}, {"x": stored})


@pytest.mark.parametrize(
    ("type_", "answer", "message"),
    [
        ("text", 3, "expected text"),
        ("integer", 1.5, "expected an integer"),
        ("integer", 2.0, "expected an integer"),
        ("integer", "3", "expected an integer"),
        ("integer", True, "expected an integer"),
        ("integer", 2**53, "integer out of range"),
        ("decimal", "2.5", "expected a number"),
        ("decimal", False, "expected a number"),
        ("decimal", float("nan"), "expected a number"),
        ("decimal", float("inf"), "expected a number"),
        ("boolean", 1, "expected true or false"),
        ("boolean", "true", "expected true or false"),
        ("date", "2024-02-30", "expected a date (YYYY-MM-DD)"),
        ("date", "2024-2-3", "expected a date (YYYY-MM-DD)"),
        ("date", "2024-06-01T10:00:00Z", "expected a date (YYYY-MM-DD)"),
        ("datetime", "2024-06-01T10:00:00", "expected a date and time with offset (ISO 8601)"),
        ("datetime", "2024-06-01", "expected a date and time with offset (ISO 8601)"),
        ("datetime", "2024-06-01T25:00:00Z", "expected a date and time with offset (ISO 8601)"),
        ("select_one", "purple", "not one of the choices: red, green, blue"),
        ("select_one", ["red"], "not one of the choices: red, green, blue"),
        ("select_multiple", "red", "expected a list of choices"),
        ("select_multiple", ["red", "red"], "a choice is repeated"),
        ("select_multiple", ["red", "pink"], "not one of the choices: pink"),
        ("geopoint", {"lat": 91, "lon": 0}, "lat must be a number between -90 and 90"),
        ("geopoint", {"lat": 0, "lon": -181}, "lon must be a number between -180 and 180"),
        (
            "geopoint",
            {"lat": 0, "lon": 0, "accuracy": -1},
            "accuracy must be a number between 0 and inf",
        ),
        ("geopoint", {"lat": "45", "lon": 0}, "lat must be a number between -90 and 90"),
        ("geopoint", {"lat": 45}, "expected a location {lat, lon, accuracy}"),
        ("geopoint", {"lat": 45, "lon": 1, "alt": 3}, "unexpected key in location: alt"),
        (
            "attachment",
            {"sha256": SHA, "media_type": "image/png"},
            "expected an attachment reference {sha256, media_type, size}",
        ),
        (
            "attachment",
            {"sha256": SHA.upper(), "media_type": "image/png", "size": 1},
            "sha256 must be 64 lowercase hexadecimal digits",
        ),
        (
            "attachment",
            {"sha256": SHA, "media_type": "application/pdf", "size": 1},
            "media_type must be an image type (image/...)",
        ),
        (
            "attachment",
            {"sha256": SHA, "media_type": "image/png", "size": -1},
            "size must be a whole number of bytes",
        ),
    ],
)
def test_wrong_answers_are_rejected_with_a_specific_message(
    type_: str, answer: Any, message: str
) -> None:
    result = validate(one(type_), {"x": answer})
    assert (result.ok, result.errors, result.values) == (False, {"x": [message]}, {})


@given(value=st.integers(min_value=-(2**60), max_value=2**60))
def test_integer_field_accepts_exactly_the_integers_within_its_range(value: int) -> None:
    result = validate(INTEGER_FORM, {"x": value})
    assert result.ok == (-5 <= value <= 12)
    if abs(value) > 2**53 - 1:  # beyond what every JSON reader holds exactly
        assert result.errors == {"x": ["integer out of range"]}
    elif not result.ok:
        assert result.errors == {
            "x": ["must be at least -5" if value < -5 else "must be at most 12"]
        }
    else:
        assert result.values == {"x": value}


INTEGER_FORM = one("integer", min=-5, max=12)


@given(value=st.one_of(st.floats(allow_nan=False), st.text(), st.booleans(), st.none()))
def test_integer_field_rejects_everything_that_is_not_an_integer(value: Any) -> None:
    result = validate(INTEGER_FORM, {"x": value})
    if value is None or value == "":
        assert result.ok and result.values == {}  # blank means unanswered
    else:
        assert result.errors == {"x": ["expected an integer"]}


TEXT_FORM = one("text", min_length=2, max_length=5, pattern="[a-z]+")


@given(value=st.text(alphabet="abcXY1", min_size=1, max_size=8))
def test_text_length_and_pattern(value: str) -> None:
    expected = []
    if len(value) < 2:
        expected.append("must be at least 2 characters")
    if len(value) > 5:
        expected.append("must be at most 5 characters")
    if not value.isalpha() or not value.islower():
        expected.append("does not match the required pattern")
    assert validate(TEXT_FORM, {"x": value}).errors == ({"x": expected} if expected else {})


@given(st.lists(st.sampled_from(["red", "green", "blue"]), unique=True, min_size=1))
def test_select_multiple_is_stored_in_choice_order(values: list[str]) -> None:
    result = validate(one("select_multiple"), {"x": values})
    assert result.values == {"x": [c for c in ("red", "green", "blue") if c in values]}


def test_date_bounds() -> None:
    form = one("date", min="2024-01-01", max="2024-12-31")
    assert validate(form, {"x": "2023-12-31"}).errors == {"x": ["must be on or after 2024-01-01"]}
    assert validate(form, {"x": "2025-01-01"}).errors == {"x": ["must be on or before 2024-12-31"]}
    assert validate(form, {"x": "2024-12-31"}).ok


def test_decimal_bounds_compare_with_integers() -> None:
    form = one("decimal", min=0, max=7.5)
    assert validate(form, {"x": 7.5}).ok
    assert validate(form, {"x": 8}).errors == {"x": ["must be at most 7.5"]}


# -- answers as a whole ------------------------------------------------------------------------


def test_blank_answers_mean_unanswered() -> None:
    form = form_of(fld("a"), fld("b", "select_multiple"), fld("c", "integer"))
    result = validate(form, {"a": "", "b": [], "c": None})
    assert (result.ok, result.values) == (True, {})


def test_required_field_missing() -> None:
    form = form_of(fld("a", required=True), fld("b", "select_multiple", required=True))
    assert validate(form, {"b": []}).errors == {"a": ["required"], "b": ["required"]}


def test_unknown_answers_are_errors() -> None:
    form = form_of(fld("a"), fld("g", "group", fields=[fld("b")]))
    result = validate(form, {"a": "x", "zeta": 1, "g": {"b": "y"}, "alpha": None})
    assert result.errors == {
        "alpha": ["unknown field"],
        "g": ["unknown field"],
        "zeta": ["unknown field"],
    }


def test_fields_inside_groups_are_answered_by_name() -> None:
    form = form_of(fld("g", "group", fields=[fld("b", "integer")]))
    assert validate(form, {"b": 4}).values == {"b": 4}


@pytest.mark.parametrize("answers", [None, [], "x", 3])
def test_answers_must_be_an_object(answers: Any) -> None:
    result = validate(one("text"), answers)
    assert result.errors == {"": ["expected an object mapping field names to answers"]}
    assert not result.ok


# -- relevance ---------------------------------------------------------------------------------


RELEVANCE = form_of(
    fld("outcome", "select_one", required=True),
    fld("detail", relevant='outcome == "red"', required=True),
    fld("g", "group", relevant='outcome != "blue"', fields=[fld("inner", "integer")]),
)


def test_field_is_relevant_only_when_its_condition_is_true() -> None:
    assert validate(RELEVANCE, {"outcome": "red"}).errors == {"detail": ["required"]}
    assert validate(RELEVANCE, {"outcome": "green"}).ok


def test_answering_a_non_relevant_field_is_rejected() -> None:
    result = validate(RELEVANCE, {"outcome": "green", "detail": "hidden"})
    assert result.errors == {"detail": ["not relevant: must not be answered"]}


def test_a_null_answer_for_a_non_relevant_field_is_fine() -> None:
    result = validate(RELEVANCE, {"outcome": "green", "detail": None})
    assert (result.ok, result.values) == (True, {"outcome": "green"})


def test_fields_inherit_their_group_relevance() -> None:
    assert validate(RELEVANCE, {"outcome": "blue", "inner": 3}).errors == {
        "inner": ["not relevant: must not be answered"]
    }
    assert validate(RELEVANCE, {"outcome": "green", "inner": 3}).values == {
        "outcome": "green",
        "inner": 3,
    }


def test_an_expression_on_an_unanswered_field_is_null_so_not_true() -> None:
    form = form_of(fld("age", "integer"), fld("adult_detail", relevant="age >= 18"))
    assert validate(form, {"adult_detail": "x"}).errors == {
        "adult_detail": ["not relevant: must not be answered"]
    }
    assert validate(form, {"age": 30, "adult_detail": "x"}).ok


def test_equality_with_null_works_normally() -> None:
    form = form_of(fld("a", "integer"), fld("why", relevant="a == null", required=True))
    assert validate(form, {}).errors == {"why": ["required"]}
    assert validate(form, {"a": 1}).ok


def test_non_relevant_values_are_null_for_other_expressions() -> None:
    form = form_of(
        fld("a", "integer"),
        fld("b", "integer", relevant="a > 0"),
        fld("c", "boolean", calculate="b == null"),
    )
    assert validate(form, {"a": 0}).values == {"a": 0, "c": True}
    assert validate(form, {"a": 1, "b": 5}).values == {"a": 1, "b": 5, "c": False}


# -- required expressions and constraints ------------------------------------------------------


def test_required_expression() -> None:
    form = form_of(fld("level", "select_one"), fld("reason", required="level != null"))
    assert validate(form, {"level": "red"}).errors == {"reason": ["required"]}
    assert validate(form, {}).ok
    assert validate(form, {"reason": "optional when no level"}).ok


def test_constraint_is_checked_only_on_answered_fields() -> None:
    form = form_of(
        fld("start", "integer"),
        fld("end", "integer", constraint="end > start"),
    )
    assert validate(form, {"start": 5}).ok
    assert validate(form, {"start": 5, "end": 6}).ok
    assert validate(form, {"start": 5, "end": 5}).errors == {"end": ["Constraint failed"]}


def test_a_constraint_that_cannot_be_evaluated_fails() -> None:
    form = form_of(fld("start", "integer"), fld("end", "integer", constraint="end > start"))
    assert validate(form, {"end": 6}).errors == {"end": ["Constraint failed"]}


def test_constraint_that_handles_null_explicitly() -> None:
    form = form_of(
        fld("start", "integer"),
        fld("end", "integer", constraint="start == null || end > start"),
    )
    assert validate(form, {"end": 6}).ok


def test_non_boolean_conditions_count_as_false() -> None:
    form = form_of(fld("n", "integer"), fld("a", relevant="n"))
    assert validate(form, {"n": 1, "a": "x"}).errors == {
        "a": ["not relevant: must not be answered"]
    }


# -- calculations ------------------------------------------------------------------------------


CHAIN = form_of(
    fld("total", "integer", calculate="double_it + 1", case_property="total"),
    fld("double_it", "integer", calculate="base * 2"),
    fld("base", "integer", required=True),
)


def test_calculations_chain_regardless_of_field_order() -> None:
    result = validate(CHAIN, {"base": 20})
    assert result.values == {"total": 41, "double_it": 40, "base": 20}
    assert result.operations == [
        {
            "type": "set",
            "property": "total",
            "value": 41,
            "policy": "lww",
            "sensitivity": "restricted",
        }
    ]


def test_a_supplied_calculated_value_must_equal_the_computed_one() -> None:
    assert validate(CHAIN, {"base": 20, "total": 41, "double_it": 40}).ok
    assert validate(CHAIN, {"base": 20, "total": 99}).errors == {
        "total": ["calculated field: the computed value is 41"]
    }


def test_validating_the_engines_own_values_gives_the_same_values() -> None:
    first = validate(CHAIN, {"base": 7})
    again = validate(CHAIN, first.values)
    assert (again.ok, again.values) == (True, first.values)


def test_a_calculation_that_fails_leaves_the_field_absent() -> None:
    result = validate(CHAIN, {})
    assert result.errors == {"base": ["required"]}
    assert result.values == {}


def test_a_calculation_of_the_wrong_type_is_reported() -> None:
    form = form_of(fld("a", "decimal"), fld("b", "integer", calculate="a * 2.0"))
    assert validate(form, {"a": 1.5}).errors == {
        "b": ["calculation gave an invalid value: expected an integer"]
    }


def test_calculated_values_obey_the_field_constraints() -> None:
    form = form_of(fld("a", "integer"), fld("b", "integer", calculate="a * 10", max=50))
    assert validate(form, {"a": 6}).errors == {"b": ["must be at most 50"]}


def test_decimal_calculation_from_integers_needs_no_conversion_by_the_author() -> None:
    form = form_of(fld("a", "integer"), fld("b", "decimal", calculate="a * 3"))
    assert validate(form, {"a": 2}).values == {"a": 2, "b": 6.0}


# -- helper functions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('days_between("2024-02-27", "2024-03-01")', 3),
        ('days_between("2024-03-01", "2024-02-27")', -3),
        ('days_between("2024-03-01T23:30:00+03:00", "2024-03-02")', 1),
        ('years_between("2006-06-15", "2024-06-14")', 17),
        ('years_between("2006-06-15", "2024-06-15")', 18),
        ('add_days("2024-12-31", 1)', "2025-01-01"),
        ('add_months("2024-01-31", 1)', "2024-02-29"),
        ('add_months("2024-03-15", -3)', "2023-12-15"),
        ('add_years("2024-02-29", 1)', "2025-02-28"),
        ('add_years("2024-05-20", 3)', "2027-05-20"),
        ('hours_between("2024-06-01T08:00:00+03:00", "2024-06-01T06:30:00Z")', 1.5),
        ('date_part("2024-06-01T23:30:00-02:00")', "2024-06-01"),
        ("round(2.345, 2)", 2.35),
        ("round(-2.5, 0)", -3.0),
        ("round(5.333333, 2)", 5.33),
        ("min(8, 7.5)", 7.5),
        ("max(3, 9, 4)", 9),
        ("min(2, null)", None),
        ("add_days(null, 1)", None),
        ('add_years("2024-01-01", 1.0)', None),
        ('days_between("not a date", "2024-01-01")', None),
    ],
)
def test_helper_functions(expression: str, expected: Any) -> None:
    assert cel.compile(expression).execute(dict(HELPERS)) == expected


# -- repeats -----------------------------------------------------------------------------------


PEOPLE = form_of(
    fld("visit_type", "select_one"),
    fld(
        "people",
        "repeat",
        min_count=1,
        max_count=3,
        constraint='people.exists(p, p.relation == "red")',
        fields=[
            fld("relation", "select_one", required=True),
            fld("age", "integer", relevant='relation != "red"', max=120),
            fld("note", relevant='visit_type == "blue"'),
        ],
    ),
    fld("count", "integer", calculate="size(people)"),
)


def test_repeat_rows_are_validated_with_indexed_paths() -> None:
    result = validate(
        PEOPLE,
        {"people": [{"relation": "red"}, {"age": 130}, {"relation": "red", "age": 3, "x": 1}]},
    )
    assert result.errors == {
        "people[1].relation": ["required"],
        "people[1].age": ["must be at most 120"],
        "people[2].x": ["unknown field"],
        "people[2].age": ["not relevant: must not be answered"],
    }


def test_row_fields_see_the_forms_fields_and_the_form_sees_the_rows() -> None:
    answers = {"visit_type": "blue", "people": [{"relation": "red", "note": "n"}]}
    result = validate(PEOPLE, answers)
    assert result.values == {
        "visit_type": "blue",
        "people": [{"relation": "red", "note": "n"}],
        "count": 1,
    }
    assert validate(PEOPLE, {"people": [{"relation": "red", "note": "n"}]}).errors == {
        "people[0].note": ["not relevant: must not be answered"]
    }


def test_repeat_row_counts_and_constraint() -> None:
    assert validate(PEOPLE, {}).errors == {"people": ["needs at least 1 rows", "Constraint failed"]}
    rows = [{"relation": "red"}] * 4
    assert validate(PEOPLE, {"people": rows}).errors == {"people": ["allows at most 3 rows"]}
    assert validate(PEOPLE, {"people": [{"relation": "green"}]}).errors == {
        "people": ["Constraint failed"]
    }


def test_repeat_shapes_are_checked() -> None:
    assert validate(PEOPLE, {"people": {"relation": "red"}}).errors == {
        "people": ["expected a list of rows"]
    }
    assert validate(PEOPLE, {"people": [{"relation": "red"}, "red"]}).errors == {
        "people[1]": ["expected an object"]
    }


def test_required_repeat_needs_a_row() -> None:
    form = form_of(fld("r", "repeat", required=True, fields=[fld("a")]))
    assert validate(form, {"r": []}).errors == {"r": ["required"]}
    assert validate(form, {"r": [{}]}).values == {"r": [{}]}


# -- settings ----------------------------------------------------------------------------------


SETTINGS = form_of(
    fld("days", "integer"),
    fld("hours", "integer", calculate="days * settings.hours_per_day"),
    fld("rate", "decimal", calculate="double(days) * settings.rate"),
    settings={"hours_per_day": 8, "rate": 1.5, "label": "x", "cutoffs": [1, 2]},
)


def test_settings_defaults_and_overrides() -> None:
    assert validate(SETTINGS, {"days": 2}).values == {"days": 2, "hours": 16, "rate": 3.0}
    result = validate(SETTINGS, {"days": 2}, settings={"hours_per_day": 6, "rate": 2})
    assert result.values == {"days": 2, "hours": 12, "rate": 4.0}


def test_settings_the_form_does_not_declare_are_ignored() -> None:
    assert resolve_settings(SETTINGS, {"retention_years": 10}) == SETTINGS.settings


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"hours_per_day": 7.5},
            "setting 'hours_per_day' of form 'demo_form' v1 expects an integer, got 7.5",
        ),
        (
            {"hours_per_day": True},
            "setting 'hours_per_day' of form 'demo_form' v1 expects an integer, got True",
        ),
        ({"label": 3}, "setting 'label' of form 'demo_form' v1 expects a string, got 3"),
        ({"cutoffs": [[1]]}, "setting 'cutoffs' of form 'demo_form' v1 expects a list, got [[1]]"),
    ],
)
def test_settings_override_of_the_wrong_kind_is_refused(
    override: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        validate(SETTINGS, {"days": 2}, settings=override)
    assert str(caught.value) == message


# -- operations --------------------------------------------------------------------------------


OPS = form_of(
    fld("name", required=True, case_property="name", sensitivity="public"),
    fld("hours", "decimal", case_property="hours_completed", policy="sum"),
    fld("note", case_property="notes", policy="append"),
    fld(
        "level",
        "select_one",
        case_property="risk_level",
        policy="manual",
        sensitivity="confidential",
    ),
    fld("ordered", "integer", case_property="hours_ordered", policy="server"),
    fld("action", "select_one"),
    fld("end_date", "date"),
    fld("service", relevant='action == "blue"'),
    case={
        "mode": "create",
        "close_when": 'action == "red"',
        "close_reason": "name",
        "close_date": "end_date",
        "transfer_when": 'action == "blue"',
        "transfer_to": "service",
        "transfer_reason": "note",
    },
)


def test_operations_follow_field_order_and_policy() -> None:
    answers = {"name": "Ana", "hours": 3, "note": "n1", "level": "green", "ordered": 120}
    assert validate(OPS, answers).operations == [
        {"type": "create"},
        {
            "type": "set",
            "property": "name",
            "value": "Ana",
            "policy": "lww",
            "sensitivity": "public",
        },
        {"type": "add", "property": "hours_completed", "value": 3.0, "sensitivity": "restricted"},
        {"type": "append", "property": "notes", "value": "n1", "sensitivity": "restricted"},
        {
            "type": "set",
            "property": "risk_level",
            "value": "green",
            "policy": "manual",
            "sensitivity": "confidential",
        },
        {
            "type": "set",
            "property": "hours_ordered",
            "value": 120,
            "policy": "server",
            "sensitivity": "restricted",
        },
    ]


def test_unanswered_fields_write_nothing() -> None:
    assert validate(OPS, {"name": "Ana"}).operations == [
        {"type": "create"},
        {
            "type": "set",
            "property": "name",
            "value": "Ana",
            "policy": "lww",
            "sensitivity": "public",
        },
    ]


def test_close_and_transfer_operations() -> None:
    closed = validate(OPS, {"name": "completed", "action": "red", "end_date": "2025-01-31"})
    assert closed.operations[-1] == {"type": "close", "reason": "completed", "date": "2025-01-31"}
    moved = validate(OPS, {"name": "A", "action": "blue", "service": "SPB", "note": "moved"})
    assert moved.operations[-1] == {"type": "transfer_request", "service": "SPB", "reason": "moved"}
    assert [op["type"] for op in validate(OPS, {"name": "A"}).operations] == ["create", "set"]


def test_invalid_answers_produce_no_operations() -> None:
    result = validate(OPS, {"name": "Ana", "hours": "three"})
    assert (result.ok, result.operations) == (False, [])


def test_operations_do_not_share_objects_with_values() -> None:
    form = form_of(fld("tags", "select_multiple", case_property="tags"))
    result = validate(form, {"tags": ["red"]})
    result.operations[0]["value"].append("green")
    assert result.values == {"tags": ["red"]}


# -- determinism -------------------------------------------------------------------------------


@given(
    base=st.one_of(st.none(), st.integers(-100, 100), st.text(max_size=3)),
    extra=st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)
def test_same_inputs_give_the_same_result(base: Any, extra: dict[str, Any]) -> None:
    answers = {**extra, "base": base}
    first, second = validate(CHAIN, answers), validate(CHAIN, dict(answers))
    assert first == second
    assert list(first.errors) == list(second.errors)
