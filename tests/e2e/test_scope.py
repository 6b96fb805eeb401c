"""What each tablet receives: its own caseload, projected by role; transfers leave tombstones."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sync_client import Client, LocalDataError
from tests.client import answers
from tests.e2e.conftest import Server
from tests.e2e.rawdevice import RawDevice

pytestmark = pytest.mark.slow


def intake(client: Client, name: str, site: str | None = None) -> str:
    filled = client.fill("case_intake", answers.intake(name, site=site))
    report = client.push()
    assert report.accepted == [filled.submission_id], report
    return filled.case_id


def local_cases(client: Client) -> dict[str, dict[str, Any]]:
    return {case["case_id"]: case for case in client.cases()}


def test_officers_and_supervisors_see_only_their_scope(
        shared_server: Server, make_client: Callable[..., Client]) -> None:
    ion = make_client(shared_server, "ion.popescu")
    maria = make_client(shared_server, "maria.ionescu")
    dan = make_client(shared_server, "dan.parc")
    ions = intake(ion, "Scope Ion Park", site="BV-PARC")
    marias = intake(maria, "Scope Maria Home")
    for client in (ion, maria, dan):
        client.pull()

    ion_cases, maria_cases, dan_cases = (local_cases(c) for c in (ion, maria, dan))
    assert ions in ion_cases and marias not in ion_cases
    assert marias in maria_cases and ions not in maria_cases
    assert {c["properties"]["owner_officer"]["value"] for c in ion_cases.values()} == {
        "ion.popescu"}
    assert {c["properties"]["owner_officer"]["value"] for c in maria_cases.values()} == {
        "maria.ionescu"}

    # The supervisor has the placement at his site, with public fields only.
    assert ions in dan_cases and marias not in dan_cases
    assert {c["properties"]["site"]["value"] for c in dan_cases.values()} == {"BV-PARC"}
    seen = dan_cases[ions]["properties"]
    assert seen["name"]["value"] == "Scope Ion Park"
    assert "hours_ordered" in seen
    for forbidden in ("national_id", "birth_date", "address", "phone", "court"):
        assert forbidden not in seen
    assert {p["sensitivity"] for c in dan_cases.values() for p in c["properties"].values()} \
        == {"public"}
    assert "open_conflicts" not in dan_cases[ions]
    # The officer of the same case does receive the confidential fields.
    assert ion_cases[ions]["properties"]["national_id"]["value"] == "1850101080011"


def test_supervisor_cannot_write_outside_the_site(
        shared_server: Server, make_client: Callable[..., Client]) -> None:
    maria = make_client(shared_server, "maria.ionescu")
    dan = make_client(shared_server, "dan.parc")
    elsewhere = intake(maria, "Scope Cluj Library", site="CJ-BIBL")
    assert elsewhere not in local_cases(dan)
    with pytest.raises(Exception, match="not on this tablet"):
        dan.fill("community_work_attendance", answers.attendance(), case_id=elsewhere)
    # A supervisor may not open cases either: intake is an officer's form. The tablet says so
    # at once, and the server refuses it too (here: an envelope sealed by hand).
    with pytest.raises(LocalDataError, match="a supervisor may not fill case_intake"):
        dan.fill("case_intake", answers.intake("Scope Not Allowed"))
    device = RawDevice(shared_server, "dan.parc")
    before = shared_server.snapshot()
    [result] = device.push(device.seal("case_intake", answers.intake("Scope Not Allowed"),
                                       str(uuid.uuid4())))
    assert (result["status"], result["code"]) == ("rejected", "forbidden_form")
    assert shared_server.snapshot() == before


def test_transferred_case_is_tombstoned_on_the_old_device(
        shared_server: Server, make_client: Callable[..., Client]) -> None:
    ion = make_client(shared_server, "ion.popescu")
    maria = make_client(shared_server, "maria.ionescu")
    moving = intake(ion, "Scope Moving To Cluj")
    staying = intake(ion, "Scope Staying In Brasov")
    ion.pull()
    assert {moving, staying} <= set(local_cases(ion))

    response = httpx.post(
        f"{shared_server.url}/api/v1/review/cases/{moving}/transfer",
        json={"service": "CJ", "officer": "maria.ionescu", "reason": "moved to Cluj"},
        headers={"Authorization": f"Bearer {shared_server.staff_token()}"})
    assert response.status_code == 200, response.text

    report = ion.pull()
    assert report.cases_removed == 1
    assert moving not in local_cases(ion)
    assert staying in local_cases(ion)
    maria.pull()
    assert local_cases(maria)[moving]["properties"]["owner_officer"]["value"] == "maria.ionescu"
    with pytest.raises(Exception, match="not on this tablet"):
        ion.fill("home_visit", answers.home_visit(), case_id=moving)
