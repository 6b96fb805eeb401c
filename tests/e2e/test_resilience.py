"""Lost answers, dropped connections, key rotation, revocation, and kill -9 mid-push."""

from __future__ import annotations

import collections
import random
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from fieldsync.core.envelopes import Envelope
from sync_client import Client, ServerError, TransportError
from tests.client import answers
from tests.e2e.conftest import FAST_RETRY, PASSPHRASE, Server

pytestmark = pytest.mark.slow


SMALL_LIMITS = {"FIELDSYNC_PUSH_BATCH_LIMIT": "10", "FIELDSYNC_PULL_PAGE_SIZE": "2"}


@pytest.fixture
def server_env() -> dict[str, str]:
    return SMALL_LIMITS


@pytest.fixture(scope="module")
def shared_server_env() -> dict[str, str]:
    return SMALL_LIMITS


class DroppingTransport(httpx.BaseTransport):
    """Real HTTP, except that chosen answers are lost after the server has handled them."""

    def __init__(self, drop: Callable[[str, int], bool]) -> None:
        self.inner = httpx.HTTPTransport()
        self.drop = drop
        self.seen: collections.Counter[str] = collections.Counter()
        self.dropped: list[tuple[str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        path = request.url.path
        self.seen[path] += 1
        if self.drop(path, self.seen[path]):
            response.read()
            response.close()
            self.dropped.append((path, self.seen[path]))
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def open_cases(client: Client, count: int, site: str | None = None) -> list[str]:
    filled = [client.fill("case_intake", answers.intake(f"Resilience {i}", site=site))
              for i in range(count)]
    report = client.push()
    assert sorted(report.accepted) == sorted(f.submission_id for f in filled), report
    client.pull()
    return [f.case_id for f in filled]


def events_per_submission(server: Server, ids: list[str]) -> dict[str, int]:
    rows = server.rows("SELECT id, count(*) FROM case_events GROUP BY id")
    counts = {row[0]: row[1] for row in rows}
    return {sid: counts.get(sid, 0) for sid in ids}


def test_lost_push_answers_are_retried_and_come_back_duplicate(
        shared_server: Server, make_client: Callable[..., Client]) -> None:
    ion = make_client(shared_server, "ion.popescu")
    [case_id] = open_cases(ion, 1)
    messages: list[str] = []
    # The answers to the 1st and 3rd push requests are lost after the server committed.
    flaky = DroppingTransport(lambda path, n: path.endswith("/sync/push") and n in (1, 3))
    tablet = Client(ion.home, PASSPHRASE, transport=flaky, progress=messages.append,
                    retry=FAST_RETRY)
    try:
        sids = [tablet.fill("home_visit", answers.home_visit(f"Visit number {i:02d} ok."),
                            case_id=case_id).submission_id for i in range(25)]
        report = tablet.push()
    finally:
        tablet.close()
    assert flaky.dropped == [("/api/v1/sync/push", 1), ("/api/v1/sync/push", 3)]
    assert sorted(report.accepted + report.duplicate) == sorted(sids)
    assert len(report.duplicate) == 20  # the two batches whose answers were lost
    assert report.rejected == [] and report.unverified == []
    assert [m for m in messages if m.startswith("pushed")] == [
        "pushed 10/25", "pushed 20/25", "pushed 25/25"]
    assert sum("retrying" in m for m in messages) == 2
    assert set(events_per_submission(shared_server, sids).values()) == {1}
    ion.pull()
    [case] = [c for c in ion.cases() if c["case_id"] == case_id]
    assert case["revision"] == 26
    assert ion.status()["outbox"] == []


def test_dropped_pull_pages_are_fetched_again(
        shared_server: Server, make_client: Callable[..., Client]) -> None:
    ion = make_client(shared_server, "ion.popescu")
    mine = open_cases(ion, 5)
    reference = {c["case_id"]: c for c in ion.cases()}
    assert set(mine) <= set(reference)
    messages: list[str] = []
    flaky = DroppingTransport(lambda path, n: path.endswith("/sync/pull") and n % 2 == 0)
    fresh = make_client(shared_server, "ion.popescu", pull=False, transport=flaky,
                        progress=messages.append)
    report = fresh.pull()
    assert len(flaky.dropped) >= 2
    assert report.pages >= 3  # page size 2 on this server
    assert {c["case_id"]: c for c in fresh.cases()} == reference
    assert fresh.status()["cursor"] == ion.status()["cursor"]
    assert any(m.startswith("pulled page") for m in messages)


def test_key_rotation_with_old_envelopes_still_in_the_outbox(
        server: Server, make_client: Callable[..., Client]) -> None:
    ion = make_client(server, "ion.popescu")
    [case_id] = open_cases(ion, 1)
    old = ion.fill("home_visit", answers.home_visit("Sealed before the rotation."),
                   case_id=case_id)
    server.admin("keys", "rotate")
    ion.pull()  # refreshes the server keys
    new = ion.fill("home_visit", answers.home_visit("Sealed after the rotation."),
                   case_id=case_id)
    key_ids = {item.submission_id: Envelope.from_bytes(item.envelope).header.key_id
               for item in ion.store.outbox()}
    assert key_ids[old.submission_id] != key_ids[new.submission_id]
    report = ion.push()
    assert sorted(report.accepted) == sorted([old.submission_id, new.submission_id])

    # Once an old key is retired, what was sealed to it is refused, kept and shown.
    stale = ion.fill("home_visit", answers.home_visit("Sealed to a key about to go."),
                     case_id=case_id)
    server.admin("keys", "rotate")
    server.admin("keys", "retire", key_ids[new.submission_id])
    before = server.snapshot()
    report = ion.push()
    assert [(r["submission_id"], r["code"]) for r in report.rejected] == [
        (stale.submission_id, "unknown_key")]
    assert server.snapshot() == before
    status = ion.status()
    assert status["outbox"] == []
    assert [(r["submission_id"], r["code"]) for r in status["rejected"]] == [
        (stale.submission_id, "unknown_key")]


def test_revoked_device_is_refused_and_keeps_its_outbox(
        shared_server: Server, make_client: Callable[..., Client]) -> None:
    ion = make_client(shared_server, "ion.popescu")
    sealed_before = ion.fill("case_intake", answers.intake("Revoked Device Case"))
    time.sleep(0.01)  # HLC milliseconds: sealed strictly before the revocation
    shared_server.admin("devices", "revoke", ion.device()["device_id"])
    sealed_after = ion.fill("case_intake", answers.intake("After Revocation Case"))
    before = shared_server.snapshot()
    report = ion.push()
    # Sealed before the revocation: held for review, unapplied, kept in the outbox.
    assert report.quarantined == [sealed_before.submission_id]
    assert report.accepted == report.duplicate == []
    # Sealed after it: refused, and visible in the rejected list.
    assert [(r["submission_id"], r["code"]) for r in report.rejected] == [
        (sealed_after.submission_id, "device_revoked")]
    with pytest.raises(ServerError) as pull_error:
        ion.pull()
    assert (pull_error.value.status, pull_error.value.code) == (401, "device_revoked")
    status = ion.status()
    assert [i["submission_id"] for i in status["outbox"]] == [sealed_before.submission_id]
    assert [r["code"] for r in status["rejected"]] == ["device_revoked"]
    assert shared_server.snapshot() == before
    assert shared_server.scalar("SELECT state FROM envelopes WHERE submission_id = :id",
                                id=sealed_before.submission_id) == "quarantined"


def test_kill_9_mid_push_then_restart_applies_everything_exactly_once(
        server: Server, make_client: Callable[..., Client]) -> None:
    ion = make_client(server, "ion.popescu")
    cases = open_cases(ion, 3, site="BV-PARC")
    per_case, hours = 30, 4
    progress: list[str] = []
    half_way = threading.Event()

    def on_progress(message: str) -> None:
        progress.append(message)
        if message.startswith("pushed 20/"):
            half_way.set()

    dan = make_client(server, "dan.parc", progress=on_progress)
    sids = [dan.fill("community_work_attendance", answers.attendance(day % 28 + 1, hours),
                     case_id=case_id).submission_id
            for case_id in cases for day in range(per_case)]
    failure: list[BaseException] = []

    def push() -> None:
        try:
            dan.push()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failure.append(exc)

    pusher = threading.Thread(target=push)
    pusher.start()
    assert half_way.wait(60), progress
    time.sleep(random.uniform(0, 0.05))  # somewhere inside the next batch
    server.kill()
    pusher.join(60)
    assert failure and isinstance(failure[0], TransportError), (failure, progress)
    left = len(dan.status()["outbox"])
    assert 0 < left < len(sids)

    server.start()
    report = dan.push()
    assert report.rejected == [] and report.unverified == []
    assert len(report.accepted) + len(report.duplicate) == left
    assert dan.status()["outbox"] == []
    assert set(events_per_submission(server, sids).values()) == {1}
    assert server.scalar("SELECT count(*) FROM envelopes WHERE state <> 'accepted'") == 0
    ion.pull()
    totals = {c["case_id"]: c["properties"]["hours_completed"]["value"] for c in ion.cases()
              if c["case_id"] in cases}
    assert totals == dict.fromkeys(cases, float(per_case * hours))
