"""Realistic answer sets for the default form library (``forms/*.yaml``), varied by a seeded RNG.

Each generator returns answers that pass the form engine; :func:`check_sample` validates a
sample with :func:`fieldsync.core.forms.validate` before a run so a drifting form fails loudly.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

FORMS_DIR = Path(__file__).resolve().parent.parent / "forms"
EEST = timezone(timedelta(hours=3))

FIRST = ["Ion", "Maria", "Andrei", "Elena", "Mihai", "Ioana", "Florin", "Cristina", "Vasile",
         "Ana", "Gheorghe", "Alexandra", "Dan", "Roxana", "Marius", "Gabriela", "Cătălin",
         "Simona", "Bogdan", "Adriana"]
LAST = ["Popescu", "Ionescu", "Popa", "Dumitrescu", "Stan", "Stoica", "Gheorghe", "Rusu",
        "Munteanu", "Matei", "Constantin", "Șerban", "Moldovan", "Lazăr", "Dragomir", "Vlad"]
STREETS = ["Str. Republicii", "Bd. Eroilor", "Str. Lungă", "Calea Turzii", "Str. Horea",
           "Str. Lalelelor", "Bd. 21 Decembrie", "Str. Mihai Viteazu", "Aleea Teilor"]
LOCALITIES = ["Brașov", "Cluj-Napoca", "Iași", "Codlea", "Turda", "Dej", "Pașcani", "Făgăraș"]
MEASURES = [("suspended_sentence", 60), ("deferral", 20), ("conditional_release", 15),
            ("fine_converted_to_work", 5)]
OBLIGATIONS = ["course", "reintegration_programme", "medical_treatment", "not_leave_country"]
CONCERNS = ["substance_use", "domestic_violence", "child_welfare", "mental_health", "housing",
            "non_compliance"]
PROGRAMMES = ["understanding_crime", "violent_attitudes", "substance_relapse_prevention",
              "emotion_regulation", "interpersonal_communication", "social_cognitive_skills",
              "education_promotion", "employment_promotion"]
NOTES = ["Seen at home with his partner; works at a bakery and showed a payslip.",
         "Nobody answered; left a written summons in the letter box.",
         "Discussed the programme schedule and the obligation to report changes of address.",
         "Neighbour confirms he lives here; the flat is tidy and the rent is paid.",
         "Reports a new job on a construction site; contract to be brought to the office."]
RISK_ITEMS = {
    "ch": ["prior_convictions", "early_onset", "supervision_breach", "violence", "custody"],
    "ee": ["education", "unemployed", "work_history", "finances"],
    "fr": ["conflict", "support", "family_offending"],
    "ac": ["unstable", "unsuitable", "area"],
    "su": ["alcohol", "drugs", "offending_link", "treatment"],
    "pe": ["criminal_friends", "prosocial", "leisure"],
    "at": ["supportive", "responsibility", "motivation", "supervision"],
}
LEVELS = ["low", "moderate", "high", "very_high"]


def _day(rng: random.Random, start: int = 2024, end: int = 2025) -> date:
    return date(rng.randint(start, end), rng.randint(1, 12), rng.randint(1, 28))


def _at(day: date, hour: int, minute: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=EEST).isoformat()


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def address(rng: random.Random) -> str:
    return f"{rng.choice(STREETS)} {rng.randint(1, 180)}, ap. {rng.randint(1, 60)}"


def intake(rng: random.Random, site: str | None) -> tuple[dict[str, Any], str | None]:
    """Answers for ``case_intake``; returns them and the work site the case ends up with."""
    sex = rng.choice("12")
    birth = date(rng.randint(1960, 2004), rng.randint(1, 12), rng.randint(1, 28))
    decision = _day(rng, 2022, 2025)
    measure = _weighted(rng, MEASURES)
    locality = rng.choice(LOCALITIES)
    answers: dict[str, Any] = {
        "full_name": name(rng),
        "national_id": sex + birth.strftime("%y%m%d") + f"{rng.randint(0, 999999):06d}",
        "birth_date": birth.isoformat(),
        "address": address(rng),
        "locality": locality,
        "court": f"Judecătoria {locality}",
        "decision_number": f"{rng.randint(1, 9999)}/{decision.year}",
        "decision_final_date": decision.isoformat(),
        "measure": measure,
        "standard_obligations_explained": True,
        "obligations": sorted(rng.sample(OBLIGATIONS, rng.randint(0, 2))),
        "first_appointment": _at(decision + timedelta(days=rng.randint(3, 30)), 10),
    }
    if rng.random() < 0.7:
        answers["phone"] = f"+40 7{rng.randint(10, 99)} {rng.randint(100, 999)} " \
                           f"{rng.randint(100, 999)}"
    if measure in ("suspended_sentence", "deferral"):
        answers["term_years"] = rng.randint(2, 4) if measure == "suspended_sentence" else 2
    else:
        answers["term_end_date"] = (decision + timedelta(days=rng.randint(200, 1500))).isoformat()
    placed = None
    if measure != "conditional_release":
        days = {"suspended_sentence": rng.randint(60, 120),
                "deferral": rng.choice([0, rng.randint(30, 60)]),
                "fine_converted_to_work": rng.randint(1, 100)}[measure]
        answers["community_work_days"] = days
        if days > 0 and site:
            answers["work_site"] = placed = site
    if rng.random() < 0.3:
        answers["intake_notes"] = "Lives with family; employed; understood the obligations."
    return answers, placed


def home_visit(rng: random.Random, new_address: str | None = None) -> dict[str, Any]:
    """Answers for ``home_visit``; ``new_address`` forces the outcome ``moved``."""
    day = _day(rng)
    visit_at = _at(day, rng.randint(8, 19), rng.choice([0, 15, 30, 45]))
    outcome = "moved" if new_address else _weighted(
        rng, [("seen", 78), ("not_at_home", 15), ("refused", 3), ("moved", 4)])
    answers: dict[str, Any] = {
        "visit_at": visit_at,
        "announced": rng.random() < 0.4,
        "accompanied_by": _weighted(rng, [("none", 80), ("colleague", 15), ("police", 5)]),
        "outcome": outcome,
        "notes": rng.choice(NOTES),
        "next_contact_date": (day + timedelta(days=rng.randint(7, 60))).isoformat(),
    }
    if outcome == "seen":
        people: list[dict[str, Any]] = [{"relation": "supervised_person"}]
        if rng.random() < 0.5:
            people.append({"relation": "partner", "present_name": name(rng)})
        if rng.random() < 0.3:
            people.append({"relation": "child", "minor": True})
        concerns = ["none"] if rng.random() < 0.6 else sorted(rng.sample(CONCERNS, 2))
        answers.update({
            "address_confirmed": rng.random() < 0.95,
            "people_present": people,
            "living_conditions": _weighted(rng, [("adequate", 80), ("poor", 15), ("unsafe", 5)]),
            "income_evidence": rng.choice(["employment", "self_employed", "benefits",
                                           "family_support", "none"]),
            "concerns": concerns,
        })
        if rng.random() < 0.8:
            answers["location"] = {"lat": round(45.6 + rng.random(), 5),
                                   "lon": round(23.5 + rng.random(), 5),
                                   "accuracy": rng.randint(5, 40)}
    elif outcome == "moved":
        answers["new_address"] = new_address or address(rng)
    return answers


def risk_scores(rng: random.Random) -> dict[str, int]:
    return {f"{prefix}_{item}": rng.choices([0, 1, 2], weights=[5, 3, 2])[0]
            for prefix, items in RISK_ITEMS.items() for item in items}


def band(scores: dict[str, int]) -> str:
    total = sum(scores.values())
    return "very_high" if total >= 34 else "high" if total >= 24 else \
        "moderate" if total >= 14 else "low"


def risk(rng: random.Random, scores: dict[str, int] | None = None,
         override: str | None = None) -> dict[str, Any]:
    """Answers for ``risk_needs_assessment``; ``override`` must differ from the band."""
    day = _day(rng)
    scores = scores or risk_scores(rng)
    answers: dict[str, Any] = {
        "assessment_date": day.isoformat(),
        "stage": rng.choice(["initial", "review"]),
        "next_review_date": (day + timedelta(days=rng.randint(60, 180))).isoformat(),
        **scores,
    }
    if override:
        answers["override_level"] = override
        answers["override_reason"] = "Threats against a neighbour reported by the police."
    return answers


def attendance(rng: random.Random, site: str) -> dict[str, Any]:
    day = _day(rng)
    status = _weighted(rng, [("present", 70), ("late", 15), ("justified_absence", 7),
                             ("unjustified_absence", 8)])
    answers: dict[str, Any] = {
        "work_date": day.isoformat(),
        "work_site": site,
        "planned_start": _at(day, 8),
        "planned_end": _at(day, 16),
        "status": status,
        "supervisor_name": name(rng),
        "supervisor_signature": {"sha256": f"{rng.getrandbits(256):064x}",
                                 "media_type": "image/png", "size": rng.randint(3000, 9000)},
    }
    if status in ("present", "late"):
        start = rng.randint(0, 50) if status == "present" else rng.randint(40, 90)
        answers.update({
            "task": rng.choice(["Park maintenance", "Library shelving", "Canteen kitchen"]),
            "actual_start": _at(day, 8 + start // 60, start % 60),
            "actual_end": _at(day, rng.randint(12, 16), rng.choice([0, 30])),
            "work_done": "Cleared leaves along the main alley and repainted two benches.",
            "conduct": rng.randint(2, 5),
        })
    elif status == "justified_absence":
        answers["absence_reason"] = "Medical certificate."
    return answers


def session(rng: random.Random) -> dict[str, Any]:
    total = rng.randint(8, 24)
    number = rng.randint(1, total)
    attended = rng.choice(["present", "present", "present", "late", "justified_absence",
                           "unjustified_absence"])
    answers: dict[str, Any] = {
        "session_date": _day(rng).isoformat(),
        "programme": rng.choice(PROGRAMMES),
        "module": f"Module {rng.randint(1, 6)}",
        "session_number": number,
        "sessions_total": total,
        "sessions_attended_before": rng.randint(0, number - 1),
        "delivery": rng.choice(["group", "individual"]),
        "attendance": attended,
        "facilitator": name(rng),
    }
    if attended in ("present", "late"):
        answers["engagement"] = rng.randint(1, 5)
        answers["homework_done"] = rng.random() < 0.7
    if rng.random() < 0.6:
        answers["notes"] = "Active participation; completed the exercise."
    return answers


def check_sample(items: list[tuple[str, dict[str, Any]]]) -> None:
    """Validate (form_id, answers) pairs with the form engine; raise on the first failure."""
    from fieldsync.core.forms import load_library, validate

    library = load_library(FORMS_DIR)
    for form_id, answers in items:
        result = validate(library[(form_id, 1)], answers)
        if not result.ok:
            raise ValueError(f"bench answers for {form_id} do not validate: {result.errors}; "
                             f"answers {answers}")
