"""The ingest workload: an organisation of devices, a plan of submissions, sealed envelopes.

Devices: one in five is a community-work supervisor's (one per site); the others are officers'
tablets, two per officer (so two devices can edit the same case concurrently, as when an
officer's replacement tablet syncs next to the old one). Every case is opened by an intake
(round 0); updates follow in ``rounds`` rounds. Before each round a device knows the case heads
as a pull at the end of the previous round would give them; within a round its own submissions
chain (after sealing, its heads for that case are ``[its submission id]``). A share of the
submissions (default 5%) are pairs of concurrent edits of one ``manual`` property (risk level or
address) with different values, from the officer's two devices in the same round: each pair
opens a conflict for review.
"""

from __future__ import annotations

import multiprocessing
import pickle
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import answers as gen

PUSH_BATCH = 100  # the server's default PUSH_BATCH_LIMIT
UPDATE_MIX = [("home_visit", 45), ("community_work_attendance", 25),
              ("risk_needs_assessment", 15), ("intervention_session", 15)]
ROUNDS = 3


@dataclass
class DeviceSpec:
    index: int
    username: str
    role: str
    service: str | None = None
    site: str | None = None


@dataclass
class Org:
    services: list[str]
    sites: list[str]
    officers: list[str]
    devices: list[DeviceSpec]
    officer_devices: dict[int, list[int]] = field(default_factory=dict)
    site_device: dict[str, int] = field(default_factory=dict)


def build_org(n_devices: int) -> Org:
    n_devices = max(n_devices, 3)
    n_supervisors = max(1, n_devices // 5)
    n_officers = max(1, (n_devices - n_supervisors) // 2)
    services = [f"SV{i:02d}" for i in range(1, min(10, n_officers) + 1)]
    sites = [f"SITE-{i:03d}" for i in range(1, n_supervisors + 1)]
    officers = [f"officer.{i:04d}" for i in range(n_officers)]
    org = Org(services, sites, officers, [])
    for i, username in enumerate(officers):
        for _ in range(2):
            spec = DeviceSpec(len(org.devices), username, "officer",
                              service=services[i % len(services)])
            org.officer_devices.setdefault(i, []).append(spec.index)
            org.devices.append(spec)
    for site in sites:
        spec = DeviceSpec(len(org.devices), f"sup.{site.lower()}", "supervisor", site=site)
        org.site_device[site] = spec.index
        org.devices.append(spec)
    return org


@dataclass
class Submission:
    round: int
    device: int
    form_id: str
    case_id: str
    submission_id: str
    answers: dict[str, Any]
    heads: list[str] = field(default_factory=list)
    revision: int = 0
    pair: bool = False

    def payload(self) -> dict[str, Any]:
        return {"submission_id": self.submission_id, "form_id": self.form_id,
                "form_version": 1, "case_id": self.case_id,
                "base": {"revision": self.revision, "heads": self.heads},
                "answers": self.answers}


@dataclass
class CaseSpec:
    case_id: str
    officer: int
    site: str | None


@dataclass
class Plan:
    org: Org
    cases: list[CaseSpec]
    submissions: list[Submission]
    rounds: int
    pairs: int

    def by_round_device(self) -> dict[int, dict[int, list[Submission]]]:
        out: dict[int, dict[int, list[Submission]]] = defaultdict(lambda: defaultdict(list))
        for s in self.submissions:
            out[s.round][s.device].append(s)
        return out


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build_plan(org: Org, n: int, n_cases: int, *, seed: int = 1, rounds: int = ROUNDS,
               pair_share: float = 0.05) -> Plan:
    rng = random.Random(seed)
    n_cases = max(1, min(n_cases, n))
    cases: list[CaseSpec] = []
    submissions: list[Submission] = []
    n_officers = len(org.officers)
    for i in range(n_cases):
        officer = i % n_officers
        site = org.sites[(i * 7) % len(org.sites)] if rng.random() < 0.6 else None
        answers, placed = gen.intake(rng, site)
        case = CaseSpec(_uuid(rng), officer, placed)
        cases.append(case)
        device = org.officer_devices[officer][(i // n_officers) % 2]
        submissions.append(Submission(0, device, "case_intake", case.case_id, _uuid(rng),
                                      answers))
    updates = n - n_cases
    pairs = min(round(n * pair_share / 2), updates // 2, n_cases) if rounds else 0
    for k, index in enumerate(rng.sample(range(n_cases), pairs)):
        case = cases[index]
        rnd = rng.randint(1, rounds)
        first, second = org.officer_devices[case.officer][:2]
        if k % 2 == 0:
            scores = gen.risk_scores(rng)
            level = gen.band(scores)
            other = rng.choice([x for x in gen.LEVELS if x != level])
            pair = [("risk_needs_assessment", gen.risk(rng, scores)),
                    ("risk_needs_assessment", gen.risk(rng, scores, override=other))]
        else:
            pair = [("home_visit", gen.home_visit(rng, gen.address(rng))),
                    ("home_visit", gen.home_visit(rng, gen.address(rng)))]
        for device, (form_id, answers) in zip((first, second), pair, strict=True):
            submissions.append(Submission(rnd, device, form_id, case.case_id, _uuid(rng),
                                          answers, pair=True))
    for _ in range(updates - 2 * pairs):
        index = rng.randrange(n_cases)
        case = cases[index]
        rnd = rng.randint(1, rounds)
        form_id = gen._weighted(rng, UPDATE_MIX)
        if form_id == "community_work_attendance" and case.site is None:
            form_id = "home_visit"
        if form_id == "community_work_attendance":
            assert case.site is not None
            device = org.site_device[case.site]
            answers = gen.attendance(rng, case.site)
        else:
            device = org.officer_devices[case.officer][(index + rnd) % 2]
            answers = {"home_visit": gen.home_visit, "risk_needs_assessment": gen.risk,
                       "intervention_session": gen.session}[form_id](rng)
        submissions.append(Submission(rnd, device, form_id, case.case_id, _uuid(rng), answers))
    plan = Plan(org, cases, [], rounds, pairs)
    assign_bases(plan, submissions, rng)
    return plan


def assign_bases(plan: Plan, submissions: list[Submission], rng: random.Random) -> None:
    """Order each device's outbox and give each submission the base its device had."""
    heads: dict[str, list[str]] = {}
    revision: dict[str, int] = defaultdict(int)
    grouped: dict[int, dict[int, list[Submission]]] = defaultdict(lambda: defaultdict(list))
    for s in submissions:
        grouped[s.round][s.device].append(s)
    ordered: list[Submission] = []
    for rnd in sorted(grouped):
        last_by_device: dict[str, dict[int, str]] = defaultdict(dict)
        written: dict[str, int] = defaultdict(int)
        for device in sorted(grouped[rnd]):
            outbox = grouped[rnd][device]
            rng.shuffle(outbox)
            local: dict[str, tuple[list[str], int]] = {}
            for s in outbox:
                known_heads, known_rev = local.get(s.case_id,
                                                   (heads.get(s.case_id, []), revision[s.case_id]))
                s.heads, s.revision = sorted(known_heads), known_rev
                local[s.case_id] = ([s.submission_id], known_rev + 1)
                last_by_device[s.case_id][device] = s.submission_id
                written[s.case_id] += 1
            ordered.extend(outbox)
        for case_id, last in last_by_device.items():
            heads[case_id] = sorted(last.values())
            revision[case_id] += written[case_id]
    plan.submissions = ordered


def check_plan(plan: Plan, sample: int | None) -> None:
    """Validate every answer set (``sample=None``) or the first ``sample`` of each form."""
    seen: dict[str, int] = defaultdict(int)
    items = []
    for s in plan.submissions:
        if sample is None or seen[s.form_id] < sample:
            seen[s.form_id] += 1
            items.append((s.form_id, s.answers))
    gen.check_sample(items)


# -- sealing (excluded from the timed window) ----------------------------------------------


@dataclass
class DeviceCredential:
    index: int
    device_id: str
    token: str
    signing_key_pem: bytes
    username: str
    role: str


def _seal_device(job: tuple[DeviceCredential, dict[str, str], list[dict[str, Any]]]
                 ) -> list[str]:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from fieldsync.core.envelopes import seal
    from fieldsync.core.hlc import HLC
    from fieldsync.core.keys import PublicKeyInfo

    credential, server_key, payloads = job
    key = load_pem_private_key(credential.signing_key_pem, password=None)
    recipient = PublicKeyInfo.from_wire(server_key)
    clock = HLC(credential.device_id)
    texts = []
    for payload in payloads:
        envelope = seal(payload, submission_id=payload["submission_id"],
                        device_id=credential.device_id, form_id=payload["form_id"],
                        form_version=payload["form_version"], hlc=clock.now(),
                        recipient=recipient, signing_key=key)  # type: ignore[arg-type]
        texts.append(envelope.to_text())
    return texts


def seal_plan(plan: Plan, credentials: list[DeviceCredential], server_key: dict[str, str],
              processes: int = 2) -> dict[str, str]:
    """Seal every submission on its device (in device order, so HLCs increase); returns
    submission id -> envelope text."""
    per_device: dict[int, list[Submission]] = defaultdict(list)
    for s in sorted(plan.submissions, key=lambda s: s.round):
        per_device[s.device].append(s)
    jobs = [(credentials[d], server_key, [s.payload() for s in subs])
            for d, subs in per_device.items()]
    ids = [[s.submission_id for s in subs] for subs in per_device.values()]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_seal_device, jobs, chunksize=max(1, len(jobs) // (processes * 8)))
    return {sid: text for id_list, texts in zip(ids, results, strict=True)
            for sid, text in zip(id_list, texts, strict=True)}


@dataclass
class Task:
    """One device's outbox for one round, as pre-encoded push bodies in a file."""

    round: int
    device: int
    path: Path
    envelopes: int


def write_tasks(plan: Plan, sealed: dict[str, str], credentials: list[DeviceCredential],
                directory: Path, batch: int = PUSH_BATCH, seed: int = 1) -> list[list[Task]]:
    """Per round, one task per device (in a shuffled order), written to ``directory``."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rounds: list[list[Task]] = []
    for rnd, devices in sorted(plan.by_round_device().items()):
        tasks = []
        for device, subs in devices.items():
            texts = [sealed[s.submission_id] for s in subs]
            bodies = [json.dumps({"envelopes": texts[i:i + batch]}).encode()
                      for i in range(0, len(texts), batch)]
            path = directory / f"r{rnd}-d{device}.pkl"
            path.write_bytes(pickle.dumps({
                "authorization": f"Bearer {credentials[device].token}",
                "url": "/api/v1/sync/push", "bodies": bodies, "count": len(texts)}))
            tasks.append(Task(rnd, device, path, len(texts)))
        rng.shuffle(tasks)
        rounds.append(tasks)
    return rounds
