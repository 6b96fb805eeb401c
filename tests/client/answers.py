"""Answer sets for the default form library, shared by the client and end-to-end tests."""

from __future__ import annotations

from typing import Any

SIGNATURE = {"sha256": "ab" * 32, "media_type": "image/png", "size": 2048}


def intake(full_name: str = "Vasile Ionescu", *, site: str | None = None,
           national_id: str = "1850101080011") -> dict[str, Any]:
    answers: dict[str, Any] = {
        "full_name": full_name, "national_id": national_id, "birth_date": "1985-01-01",
        "address": "Str. Lungă 10", "locality": "Brașov", "court": "Judecătoria Brașov",
        "decision_number": "123/2025", "decision_final_date": "2025-03-01",
        "measure": "suspended_sentence", "term_years": 2,
        "standard_obligations_explained": True, "community_work_days": 60,
        "first_appointment": "2025-03-10T10:00:00+02:00",
    }
    if site is not None:
        answers["work_site"] = site
    return answers


def home_visit(notes: str = "Seen at home, all in order.") -> dict[str, Any]:
    return {
        "visit_at": "2025-04-01T10:00:00+03:00", "announced": True, "accompanied_by": "none",
        "outcome": "seen", "address_confirmed": True,
        "people_present": [{"relation": "supervised_person"}],
        "living_conditions": "adequate", "income_evidence": "employment",
        "concerns": ["none"], "notes": notes, "next_contact_date": "2025-05-01",
    }


def attendance(day: int = 2, hours: int = 4) -> dict[str, Any]:
    date = f"2025-06-{day:02d}"
    return {
        "work_date": date, "work_site": "BV-PARC",
        "planned_start": f"{date}T09:00:00+03:00", "planned_end": f"{date}T13:00:00+03:00",
        "status": "present", "task": "Park maintenance",
        "actual_start": f"{date}T09:00:00+03:00",
        "actual_end": f"{date}T{9 + hours:02d}:00:00+03:00",
        "work_done": "Raked leaves in the park.", "conduct": 4,
        "supervisor_name": "Dan Stoica", "supervisor_signature": SIGNATURE,
    }
