"""The default form library in ``forms/``: loads, computes what DOMAIN.md says, writes the case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldsync.core.forms import FormDefinitionError, load_library, validate

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = load_library(ROOT / "forms")
SIGNATURE = {"sha256": "5d" * 32, "media_type": "image/png", "size": 5123}


def form(form_id: str) -> Any:
    return LIBRARY[(form_id, 1)]


def ok(form_id: str, answers: dict[str, Any], **kwargs: Any) -> Any:
    result = validate(form(form_id), answers, **kwargs)
    assert result.errors == {}
    return result


def errors(form_id: str, answers: dict[str, Any], **kwargs: Any) -> dict[str, list[str]]:
    return validate(form(form_id), answers, **kwargs).errors


def set_op(prop: str, value: Any, policy: str = "lww", sensitivity: str = "restricted") -> dict:
    return {
        "type": "set",
        "property": prop,
        "value": value,
        "policy": policy,
        "sensitivity": sensitivity,
    }


def test_the_library_holds_the_six_default_forms_at_version_1() -> None:
    assert sorted(LIBRARY) == [
        ("case_closure", 1),
        ("case_intake", 1),
        ("community_work_attendance", 1),
        ("home_visit", 1),
        ("intervention_session", 1),
        ("risk_needs_assessment", 1),
    ]


def test_a_file_whose_name_disagrees_with_its_content_is_refused(tmp_path: Path) -> None:
    text = (ROOT / "forms" / "home_visit.v1.yaml").read_text(encoding="utf-8")
    (tmp_path / "home_visit.v2.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(FormDefinitionError) as caught:
        load_library(tmp_path)
    assert caught.value.errors == [
        ("home_visit.v2.yaml", "file name does not match form_id 'home_visit' version 1")
    ]


def test_errors_in_a_library_file_name_the_file(tmp_path: Path) -> None:
    text = (ROOT / "forms" / "home_visit.v1.yaml").read_text(encoding="utf-8")
    (tmp_path / "home_visit.v1.yaml").write_text(
        text.replace('relevant: outcome == "moved"', 'relevant: outcom == "moved"'),
        encoding="utf-8",
    )
    with pytest.raises(FormDefinitionError) as caught:
        load_library(tmp_path)
    assert caught.value.errors == [
        ("home_visit.v1.yaml: fields[6].relevant", "unknown field 'outcom'")
    ]


def test_work_site_supervisors_see_only_name_order_hours_and_site() -> None:
    public = {
        item.case_property
        for definition in LIBRARY.values()
        for item in definition.walk()
        if item.case_property and item.sensitivity == "public"
    }
    assert public == {
        "name",
        "measure",
        "hours_ordered",
        "hours_completed",
        "site",
        "last_attendance",
    }


def test_high_stakes_properties_need_review_and_court_orders_are_server_only() -> None:
    policies = {
        (item.case_property, item.policy, item.sensitivity)
        for definition in LIBRARY.values()
        for item in definition.walk()
        if item.case_property
        in {"risk_level", "address", "national_id", "hours_ordered", "term_start", "term_end"}
    }
    assert policies == {
        ("risk_level", "manual", "confidential"),
        ("address", "manual", "restricted"),
        ("national_id", "lww", "confidential"),
        ("hours_ordered", "server", "public"),
        ("term_start", "server", "restricted"),
        ("term_end", "server", "restricted"),
    }


# -- 1. case intake ----------------------------------------------------------------------------

INTAKE = {
    "full_name": "Ion Popescu",
    "national_id": "1850312400123",
    "birth_date": "1985-03-12",
    "phone": "+40 722 000 111",
    "address": "Str. Lalelelor 4, ap. 2",
    "locality": "Cluj-Napoca",
    "court": "Judecătoria Cluj-Napoca",
    "decision_number": "1234/2024",
    "decision_final_date": "2024-05-20",
    "measure": "suspended_sentence",
    "term_years": 3,
    "standard_obligations_explained": True,
    "obligations": ["reintegration_programme", "course"],
    "community_work_days": 80,
    "work_site": "CJ-PARC-01",
    "first_appointment": "2024-06-03T10:00:00+03:00",
}


def test_intake_operations() -> None:
    assert ok("case_intake", INTAKE).operations == [
        {"type": "create"},
        set_op("name", "Ion Popescu", sensitivity="public"),
        set_op("national_id", "1850312400123", sensitivity="confidential"),
        set_op("birth_date", "1985-03-12", sensitivity="confidential"),
        set_op("phone", "+40 722 000 111"),
        set_op("address", "Str. Lalelelor 4, ap. 2", policy="manual"),
        set_op("locality", "Cluj-Napoca", policy="manual"),
        set_op("court", "Judecătoria Cluj-Napoca"),
        set_op("decision_number", "1234/2024"),
        set_op("term_start", "2024-05-20", policy="server"),
        set_op("measure", "suspended_sentence", policy="server", sensitivity="public"),
        set_op("term_end", "2027-05-20", policy="server"),
        set_op("obligations", ["course", "reintegration_programme"]),
        set_op("hours_ordered", 640, policy="server", sensitivity="public"),
        set_op("site", "CJ-PARC-01", policy="server", sensitivity="public"),
        set_op("next_appointment", "2024-06-03T10:00:00+03:00"),
    ]


def test_intake_hours_follow_the_hours_per_day_setting() -> None:
    result = ok("case_intake", INTAKE, settings={"hours_per_day": 6})
    assert result.values["hours_ordered"] == 480


def test_intake_deferral_without_community_work_orders_no_hours() -> None:
    answers = {**INTAKE, "measure": "deferral", "term_years": 2, "community_work_days": 0}
    del answers["work_site"]
    result = ok("case_intake", answers)
    assert result.values["term_end"] == "2026-05-20"
    assert "hours_ordered" not in result.values
    assert {op.get("property") for op in result.operations}.isdisjoint({"hours_ordered", "site"})
    assert errors("case_intake", {**answers, "work_site": "CJ-X1"}) == {
        "work_site": ["not relevant: must not be answered"]
    }


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"term_years": 1},
            {"term_years": ["Suspended sentence - 2 to 4 years; deferral - 2 years."]},
        ),
        (
            {"measure": "deferral"},
            {
                "term_years": ["Suspended sentence - 2 to 4 years; deferral - 2 years."],
                "community_work_days": [
                    "Suspended sentence - 60 to 120 days; deferral - 0 or 30 to 60; "
                    "fine - at least one."
                ],
            },
        ),
        (
            {"community_work_days": 59},
            {
                "community_work_days": [
                    "Suspended sentence - 60 to 120 days; deferral - 0 or 30 to 60; "
                    "fine - at least one."
                ]
            },
        ),
        ({"national_id": "185031240012"}, {"national_id": ["does not match the required pattern"]}),
        (
            {
                "measure": "educational_measure_minor",
                "term_years": None,
                "community_work_days": None,
                "work_site": None,
                "term_end_date": "2025-05-20",
            },
            {
                "measure": [
                    "An educational measure applies only to a person who was a minor at the "
                    "decision date."
                ]
            },
        ),
        (
            {"standard_obligations_explained": False},
            {
                "standard_obligations_explained": [
                    "The standard measures must be explained before the intake is completed."
                ]
            },
        ),
        (
            {"first_appointment": "2024-05-19T10:00:00+03:00"},
            {"first_appointment": ["The appointment cannot be before the decision became final."]},
        ),
        (
            {"term_end_date": "2025-01-01"},
            {"term_end_date": ["not relevant: must not be answered"]},
        ),
        (
            {"term_end": "2027-05-21"},
            {"term_end": ['calculated field: the computed value is "2027-05-20"']},
        ),
    ],
)
def test_intake_rules(changes: dict[str, Any], expected: dict[str, list[str]]) -> None:
    assert errors("case_intake", {**INTAKE, **changes}) == expected


def test_intake_conditional_release_takes_the_term_end_as_given() -> None:
    answers = {**INTAKE, "measure": "conditional_release", "term_end_date": "2025-11-30"}
    for key in ("term_years", "community_work_days", "work_site"):
        del answers[key]
    result = ok("case_intake", answers)
    assert result.values["term_end"] == "2025-11-30"


# -- 2. risk and needs assessment --------------------------------------------------------------

ITEMS = {
    "ch": ["prior_convictions", "early_onset", "supervision_breach", "violence", "custody"],
    "ee": ["education", "unemployed", "work_history", "finances"],
    "fr": ["conflict", "support", "family_offending"],
    "ac": ["unstable", "unsuitable", "area"],
    "su": ["alcohol", "drugs", "offending_link", "treatment"],
    "pe": ["criminal_friends", "prosocial", "leisure"],
    "at": ["supportive", "responsibility", "motivation", "supervision"],
}
SCORES = {
    "ch": [2, 1, 0, 1, 0],  # 4 of 10
    "ee": [1, 2, 1, 1],  # 5 of 8: a need (>= 50 %)
    "fr": [0, 1, 0],  # 1 of 6
    "ac": [1, 1, 0],  # 2 of 6
    "su": [2, 1, 2, 1],  # 6 of 8: a need
    "pe": [1, 1, 1],  # 3 of 6: a need (exactly 50 %)
    "at": [1, 0, 1, 0],  # 2 of 8
}  # total 23: moderate (14..23)


def risk_answers(scores: dict[str, list[int]] = SCORES, **extra: Any) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "assessment_date": "2024-06-10",
        "stage": "initial",
        "next_review_date": "2024-12-10",
    }
    for prefix, names in ITEMS.items():
        answers.update({f"{prefix}_{n}": s for n, s in zip(names, scores[prefix], strict=True)})
    answers.update(extra)
    return answers


def test_risk_scores_hand_computed() -> None:
    values = ok("risk_needs_assessment", risk_answers()).values
    subtotals = {p: values[f"{p}_subtotal"] for p in ITEMS}
    assert subtotals == {"ch": 4, "ee": 5, "fr": 1, "ac": 2, "su": 6, "pe": 3, "at": 2}
    assert (values["total_score"], values["band"], values["final_level"]) == (
        23,
        "moderate",
        "moderate",
    )
    assert values["top_needs"] == ["education_employment", "substance_use", "peers"]


def test_risk_operations_with_an_override() -> None:
    answers = risk_answers(
        override_level="high",
        override_reason="Threats against a neighbour reported by the police last week.",
    )
    assert ok("risk_needs_assessment", answers).operations == [
        set_op("risk_assessed_on", "2024-06-10"),
        set_op("risk_score", 23, sensitivity="confidential"),
        set_op(
            "top_needs",
            ["education_employment", "substance_use", "peers"],
            sensitivity="confidential",
        ),
        set_op("risk_level", "high", policy="manual", sensitivity="confidential"),
        set_op("risk_next_review", "2024-12-10"),
    ]


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "low"),
        (13, "low"),
        (14, "moderate"),
        (23, "moderate"),
        (24, "high"),
        (33, "high"),
        (34, "very_high"),
        (52, "very_high"),
    ],
)
def test_risk_band_cut_offs(total: int, band: str) -> None:
    flat = [min(2, max(0, total - 2 * i)) for i in range(26)]  # 2, 2, ..., remainder, 0, ...
    scores, index = {}, 0
    for prefix, names in ITEMS.items():
        scores[prefix] = flat[index : index + len(names)]
        index += len(names)
    values = ok("risk_needs_assessment", risk_answers(scores)).values
    assert (values["total_score"], values["band"]) == (total, band)


def test_risk_cut_offs_are_settings() -> None:
    values = ok("risk_needs_assessment", risk_answers(), settings={"high_from": 20}).values
    assert values["band"] == "high"


def test_risk_override_needs_a_reason_and_must_differ() -> None:
    assert errors("risk_needs_assessment", risk_answers(override_level="high")) == {
        "override_reason": ["required"]
    }
    assert errors(
        "risk_needs_assessment",
        risk_answers(override_level="moderate", override_reason="x" * 30),
    ) == {"override_level": ["An override must differ from the computed band."]}


def test_risk_items_are_scored_0_to_2_and_all_required() -> None:
    answers = risk_answers(ch_custody=3)
    del answers["at_motivation"]
    assert errors("risk_needs_assessment", answers) == {
        "ch_custody": ["must be at most 2"],
        "at_motivation": ["required"],
    }


def test_risk_recorded_sern_result_is_optional_and_complete_when_given() -> None:
    assert errors("risk_needs_assessment", risk_answers(sern_recorded=True, sern_score=30)) == {
        "sern_level": ["required"],
        "sern_date": ["required"],
    }
    assert errors("risk_needs_assessment", risk_answers(sern_score=30)) == {
        "sern_score": ["not relevant: must not be answered"]
    }


@settings(max_examples=50)
@given(st.lists(st.integers(0, 2), min_size=26, max_size=26))
def test_risk_total_is_the_sum_of_the_items(flat: list[int]) -> None:
    scores, index = {}, 0
    for prefix, names in ITEMS.items():
        scores[prefix] = flat[index : index + len(names)]
        index += len(names)
    result = ok("risk_needs_assessment", risk_answers(scores))
    assert result.values["total_score"] == sum(flat)
    again = validate(form("risk_needs_assessment"), result.values)
    assert (again.ok, again.values, again.operations) == (True, result.values, result.operations)


# -- 3. home visit -----------------------------------------------------------------------------

VISIT = {
    "visit_at": "2024-06-12T16:45:00+03:00",
    "announced": False,
    "accompanied_by": "none",
    "outcome": "seen",
    "address_confirmed": True,
    "people_present": [
        {"relation": "supervised_person"},
        {"relation": "partner", "present_name": "Maria Popescu"},
        {"relation": "child", "minor": True},
    ],
    "living_conditions": "adequate",
    "income_evidence": "employment",
    "concerns": ["substance_use"],
    "location": {"lat": 46.7712, "lon": 23.6236, "accuracy": 12},
    "notes": "Seen at home with his partner; works at a bakery and showed a payslip.",
    "next_contact_date": "2024-07-10",
}


def test_home_visit_operations() -> None:
    assert ok("home_visit", VISIT).operations == [
        set_op("last_visit", "2024-06-12T16:45:00+03:00"),
        set_op("last_contact", "2024-06-12"),
        set_op("open_concerns", ["substance_use"], sensitivity="confidential"),
        {
            "type": "append",
            "property": "visit_notes",
            "value": VISIT["notes"],
            "sensitivity": "restricted",
        },
        set_op("next_contact", "2024-07-10"),
    ]


def test_home_visit_moved_proposes_the_new_address_for_review() -> None:
    answers = {
        "visit_at": "2024-06-12T16:45:00+03:00",
        "announced": True,
        "accompanied_by": "colleague",
        "outcome": "moved",
        "new_address": "Str. Florilor 9, Turda",
        "notes": "A neighbour says he moved to Turda two weeks ago.",
        "next_contact_date": "2024-06-19",
    }
    assert ok("home_visit", answers).operations == [
        set_op("last_visit", "2024-06-12T16:45:00+03:00"),
        set_op("address", "Str. Florilor 9, Turda", policy="manual"),
        {
            "type": "append",
            "property": "visit_notes",
            "value": answers["notes"],
            "sensitivity": "restricted",
        },
        set_op("next_contact", "2024-06-19"),
    ]


def test_home_visit_rules() -> None:
    assert errors("home_visit", {**VISIT, "new_address": "Str. Nouă 1"}) == {
        "new_address": ["not relevant: must not be answered"]
    }
    assert errors(
        "home_visit",
        {**VISIT, "people_present": [{"relation": "partner"}], "concerns": ["none", "weapons"]},
    ) == {
        "people_present": ["The supervised person must be listed among the people present."],
        "concerns": ['"None" cannot be combined with other concerns.'],
    }
    assert errors("home_visit", {**VISIT, "people_present": [{"relation": "child"}]}) == {
        "people_present[0].minor": ["required"],
        "people_present": ["The supervised person must be listed among the people present."],
    }
    assert errors("home_visit", {**VISIT, "next_contact_date": "2024-06-12"}) == {
        "next_contact_date": ["The next contact must be after the visit and within 90 days."]
    }


# -- 4. community-work attendance --------------------------------------------------------------

ATTENDANCE = {
    "work_date": "2024-06-14",
    "work_site": "CJ-PARC-01",
    "planned_start": "2024-06-14T08:00:00+03:00",
    "planned_end": "2024-06-14T16:00:00+03:00",
    "status": "late",
    "task": "Park maintenance",
    "actual_start": "2024-06-14T08:40:00+03:00",
    "actual_end": "2024-06-14T14:00:00+03:00",
    "work_done": "Cleared leaves along the main alley and repainted two benches.",
    "conduct": 4,
    "supervisor_name": "Vasile Ionescu",
    "supervisor_signature": SIGNATURE,
}


def test_attendance_operations() -> None:
    assert ok("community_work_attendance", ATTENDANCE).operations == [
        {"type": "add", "property": "hours_completed", "value": 5.33, "sensitivity": "public"},
        set_op("last_attendance", "2024-06-14", sensitivity="public"),
    ]


def test_attendance_hours_are_capped_per_day_by_a_setting() -> None:
    long_day = {
        **ATTENDANCE,
        "actual_start": "2024-06-14T06:00:00+03:00",
        "actual_end": "2024-06-14T17:30:00+03:00",
    }
    assert ok("community_work_attendance", long_day).values["hours_credited"] == 8.0
    capped = ok("community_work_attendance", long_day, settings={"max_hours_per_day": 10})
    assert capped.values["hours_credited"] == 10.0


def test_unjustified_absence_adds_one_absence_and_no_hours() -> None:
    answers = {
        key: ATTENDANCE[key]
        for key in (
            "work_date",
            "work_site",
            "planned_start",
            "planned_end",
            "supervisor_name",
            "supervisor_signature",
        )
    }
    result = ok("community_work_attendance", {**answers, "status": "unjustified_absence"})
    assert result.operations == [
        {"type": "add", "property": "unjustified_absences", "value": 1, "sensitivity": "restricted"}
    ]
    justified = {**answers, "status": "justified_absence", "absence_reason": "Medical certificate."}
    assert ok("community_work_attendance", justified).operations == []


def test_attendance_rules() -> None:
    assert errors(
        "community_work_attendance",
        {
            **ATTENDANCE,
            "actual_end": "2024-06-14T08:00:00+03:00",
            "actual_start": "2024-06-15T09:00:00+03:00",
        },
    ) == {
        "actual_start": ["The start must fall on the work date."],
        "actual_end": ["The end must be after the start."],
    }
    unsigned = {**ATTENDANCE, "supervisor_signature": None}
    assert errors("community_work_attendance", unsigned) == {"supervisor_signature": ["required"]}


# -- 5. intervention session -------------------------------------------------------------------

SESSION = {
    "session_date": "2024-09-03",
    "programme": "emotion_regulation",
    "module": "Recognising anger triggers",
    "session_number": 12,
    "sessions_total": 12,
    "sessions_attended_before": 10,
    "delivery": "group",
    "attendance": "present",
    "engagement": 4,
    "homework_done": True,
    "facilitator": "Ana Marin",
    "notes": "Active participation; completed the final exercise.",
}


def test_session_operations_when_the_programme_is_completed() -> None:
    result = ok("intervention_session", SESSION)
    assert result.values["attendance_rate"] == 91.7  # 11 of 12
    assert result.operations == [
        set_op("current_programme", "emotion_regulation"),
        {
            "type": "append",
            "property": "programme_notes",
            "value": SESSION["notes"],
            "sensitivity": "restricted",
        },
        {"type": "add", "property": "sessions_attended", "value": 1, "sensitivity": "restricted"},
        set_op("programme_status", "completed"),
        set_op("programme_completed_on", "2024-09-03"),
    ]


def test_session_completion_needs_the_minimum_attendance() -> None:
    result = ok("intervention_session", {**SESSION, "sessions_attended_before": 8})
    assert (result.values["attendance_rate"], result.values["programme_status"]) == (
        75.0,
        "not_completed",
    )
    lenient = ok(
        "intervention_session",
        {**SESSION, "sessions_attended_before": 8},
        settings={"min_attendance_percent": 70},
    )
    assert lenient.values["programme_status"] == "completed"


def test_a_missed_session_is_not_counted() -> None:
    answers = {
        **SESSION,
        "session_number": 5,
        "sessions_attended_before": 4,
        "attendance": "unjustified_absence",
    }
    del answers["engagement"], answers["homework_done"]
    result = ok("intervention_session", answers)
    assert result.values["attendance_rate"] == 80.0
    assert [op.get("property") for op in result.operations] == [
        "current_programme",
        "programme_notes",
        "programme_status",
    ]
    assert result.operations[-1]["value"] == "in_progress"


# -- 6. closure or transfer --------------------------------------------------------------------

CLOSURE = {
    "action": "close",
    "closure_reason": "term_completed",
    "closure_date": "2027-05-20",
    "obligations_met": True,
    "supervisor_approved": True,
    "approved_by": "Elena Dumitrescu",
}
TRANSFER = {
    "action": "transfer",
    "receiving_service": "SPB",
    "transfer_reason": "change_of_residence",
    "transfer_summary": "Moved to Bucharest for work; compliant, 200 of 640 hours done.",
    "transfer_checklist": ["hours_reconciled", "assessment_current", "contacts_recorded"],
}


def test_closure_operations() -> None:
    assert ok("case_closure", CLOSURE).operations == [
        set_op("retain_until", "2037-05-20"),
        {"type": "close", "reason": "term_completed", "date": "2027-05-20"},
    ]


def test_retention_is_a_setting() -> None:
    result = ok("case_closure", CLOSURE, settings={"retention_years": 5})
    assert result.values["retain_until"] == "2032-05-20"


def test_transfer_operations() -> None:
    assert ok("case_closure", TRANSFER).operations == [
        {"type": "transfer_request", "service": "SPB", "reason": "change_of_residence"}
    ]


def test_closure_and_transfer_rules() -> None:
    assert errors("case_closure", {**TRANSFER, "transfer_checklist": ["hours_reconciled"]}) == {
        "transfer_checklist": ["Every check must be done before the transfer."]
    }
    assert errors("case_closure", {**TRANSFER, "closure_date": "2027-01-01"}) == {
        "closure_date": ["not relevant: must not be answered"]
    }
    assert errors("case_closure", {**CLOSURE, "closure_reason": "other"}) == {
        "closure_reason_other": ["required"],
        "obligations_met": ["not relevant: must not be answered"],
    }
    assert errors("case_closure", {**CLOSURE, "supervisor_approved": False}) == {
        "supervisor_approved": ["Closure needs the approval of the head of service."]
    }
