"""Push: receive sealed envelopes, store them as received, then open, validate and apply them.

For each envelope of a batch, in two writing transactions:

1. **Receive** (committed before anything is opened): parse the wire bytes, check that the
   envelope names the pushing device and that the device's key signed it, detect duplicates and
   reused ids, and store the exact bytes with state ``received``.
2. **Process**: decrypt, check the payload repeats the header, validate the answers with the form
   engine against the exact form version, and hand the operations to the case store. Accepted
   envelopes get a server sequence number and a signed receipt in the same transaction that
   writes the events; the HTTP answer is sent only after that commit. Opening, validating
   and merging are done before this transaction, reading without locks (:func:`rehearse`);
   under the locks only what changed meanwhile is merged again.

A crash between the two leaves envelopes in state ``received``; :func:`process_pending` (run at
start-up and by the recovery job) finishes them. Because an event's id is its submission id, an
envelope can never be applied twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError

from fieldsync.core import envelopes as env
from fieldsync.core.forms.engine import validate
from fieldsync.core.forms.model import FormDefinition
from fieldsync.core.hlc import InvalidTimestamp, parse_timestamp, wall_clock_millis
from fieldsync.core.keys import InvalidPublicKey, decode_signing_public_key
from fieldsync.core.receipts import sign_receipt
from fieldsync.database import (
    IDS,
    core,
    end_transaction,
    insert_rows,
    read_only,
    unsynced_commits,
    update_rows,
)
from fieldsync.extensions import db
from fieldsync.models import Device, StoredEnvelope, User, utcnow
from fieldsync.services import casestore, keyring, sequence
from fieldsync.services import forms as forms_service
from fieldsync.services.casestore import CaseRejection, CaseWriter, Incoming, Rehearsal

log = logging.getLogger(__name__)

PROCESS_ATTEMPTS = 5


@dataclass
class Result:
    """The answer for one envelope of a push."""

    index: int
    status: str  # accepted | duplicate | rejected | quarantined
    submission_id: str | None = None
    code: str | None = None
    detail: str | None = None
    errors: Any = None
    receipt: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "status": self.status,
                                "submission_id": self.submission_id}
        if self.receipt is not None:
            body["receipt"] = self.receipt
        if self.code is not None:
            body["code"] = self.code
            body["detail"] = self.detail
        if self.errors is not None:
            body["errors"] = self.errors
        return body


class Rejected(Exception):
    def __init__(self, code: str, detail: str, errors: Any = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.errors = errors


def push(device: Device, items: list[str]) -> list[Result]:
    """Receive and process a batch of base64url envelopes from ``device``.

    The CPU-heavy steps run with no transaction open, so that on SQLite (where a transaction
    holds the database's write lock from its start) another server process can write
    meanwhile: parsing and verifying before the receive transaction, opening and validating
    between the receive and the process transactions."""
    user = device.user
    _ = user.service, user.site  # loaded with the device: used after the commits below
    results: dict[int, Result] = {}
    first_index: dict[str, int] = {}
    repeats: list[tuple[int, str]] = []
    batch = ReceiveBatch.for_items(items, device)
    # The receive transaction: committed before anything is opened, so that a crash of this
    # process loses no stored envelope, but not flushed to disk on its own: no receipt
    # depends on it alone, and the processing commit below flushes it with itself.
    with unsynced_commits():
        batch.load_stored()
        for index, text in enumerate(items):
            try:
                outcome = receive(device, text, batch)
            except Rejected as exc:
                results[index] = Result(index, "rejected", code=exc.code, detail=exc.detail,
                                        errors=exc.errors)
                continue
            if isinstance(outcome, Result):
                outcome.index = index
                results[index] = outcome
            elif outcome in first_index:
                repeats.append((index, outcome))  # the same envelope twice in one batch
            else:
                first_index[outcome] = index
        batch.store_new()
        device.last_seen_at = utcnow()
        end_transaction()
    lookups = BatchLookups(devices={device.id: device})
    with read_only():  # a form version not yet cached is read without the write lock
        prepared = {sid: prepare(batch.envelope(items[i]), device, lookups)
                    for sid, i in first_index.items()}
    number_batch_intakes(prepared)
    rehearsal = rehearse(prepared)
    for submission_id, result in process_submissions(list(first_index), prepared,
                                                     rehearsal).items():
        result.index = first_index[submission_id]
        results[result.index] = result
    for index, submission_id in repeats:
        original = results[first_index[submission_id]]
        status = "duplicate" if original.status == "accepted" else original.status
        results[index] = Result(index, status, submission_id, original.code, original.detail,
                                original.errors, original.receipt)
    return [results[i] for i in range(len(items))]


@dataclass
class Prepared:
    """An envelope opened and validated before its row was locked (:func:`prepare`)."""

    raw: bytes
    outcome: Incoming | Rejected


def prepare(envelope: env.Envelope, device: Device, lookups: BatchLookups) -> Prepared:
    try:
        outcome: Incoming | Rejected = validate_envelope(envelope, device, lookups)
    except Rejected as exc:
        outcome = exc
    return Prepared(envelope.to_bytes(), outcome)


@dataclass
class ReceiveBatch:
    """What :func:`receive` needs to store a push's envelopes with one query and one sequence
    reservation instead of a lookup, a counter update and an insert per envelope.

    ``parsed`` holds each envelope text parsed once; ``signatures`` the outcome of checking
    its signature (``None``: good) for those sealed by the pushing device; ``stored`` the
    already stored envelopes of the batch by submission id (``None``: not stored), so that a
    lookup needs no query;
    ``new`` the rows to store, which get consecutive ``received`` sequence numbers in batch
    order in :meth:`store_new` -- the numbers one ``next_value`` per envelope would give.
    """

    parsed: dict[str, env.Envelope | env.EnvelopeError] = field(default_factory=dict)
    signatures: dict[str, Rejected | None] = field(default_factory=dict)
    stored: dict[str, StoredEnvelope | None] = field(default_factory=dict)
    new: list[StoredEnvelope] = field(default_factory=list)

    @classmethod
    def for_items(cls, items: list[Any], device: Device | None = None) -> ReceiveBatch:
        """Parse each envelope text once and, given the pushing device, check the signatures
        of those it sealed (no database access)."""
        batch = cls()
        for text in items:
            if isinstance(text, str) and text not in batch.parsed:
                try:
                    batch.parsed[text] = env.Envelope.from_text(text)
                except env.EnvelopeError as exc:
                    batch.parsed[text] = exc
        if device is not None:
            key = device_signing_key(device)  # decoded once per batch, not once per envelope
            for text, envelope in batch.parsed.items():
                if isinstance(envelope, env.Envelope) and envelope.header.device_id == device.id:
                    batch.signatures[text] = signature_problem(envelope, key)
        return batch

    def load_stored(self) -> None:
        """Look up the batch's already stored envelopes with one query per 500 ids."""
        ids = sorted({e.header.submission_id for e in self.parsed.values()
                      if isinstance(e, env.Envelope)})
        self.stored = dict.fromkeys(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for row in db.session.scalars(_STORED, {"ids": chunk}):
                self.stored[row.submission_id] = row

    def signature(self, text: str, envelope: env.Envelope, device: Device) -> None:
        """Raise :class:`Rejected` unless the device's key signed the envelope."""
        problem = (self.signatures[text] if text in self.signatures
                   else signature_problem(envelope, device.public_key))
        if problem is not None:
            raise problem

    def envelope(self, text: str) -> env.Envelope:
        found = self.parsed.get(text)
        if found is None:
            return env.Envelope.from_text(text)
        if isinstance(found, env.EnvelopeError):
            raise found
        return found

    def lookup(self, submission_id: str) -> StoredEnvelope | None:
        if submission_id in self.stored:
            return self.stored[submission_id]
        return db.session.get(StoredEnvelope, submission_id)

    def add(self, row: StoredEnvelope) -> None:
        self.stored[row.submission_id] = row
        self.new.append(row)

    def store_new(self) -> None:
        """Insert the new rows with one executemany (they are not added to the session: the
        process step reads them back locked)."""
        if not self.new:
            return
        first = sequence.next_value("received", len(self.new))
        now = utcnow()
        for offset, row in enumerate(self.new):
            row.received_seq = first + offset
        insert_rows(StoredEnvelope, [
            {"submission_id": row.submission_id, "device_id": row.device_id,
             "digest": row.digest, "raw": row.raw, "state": row.state,
             "reject_code": row.reject_code, "reject_detail": row.reject_detail,
             "received_seq": row.received_seq, "received_at": now} for row in self.new])
        self.new = []


def receive(device: Device, text: Any, batch: ReceiveBatch | None = None) -> Result | str:
    """Check and store one envelope; returns the submission id to process, or a final result.

    Within :func:`push` a :class:`ReceiveBatch` saves the per-envelope queries, and its new rows
    are added to the session by ``batch.store_new()``; called alone, it stores the row itself.
    """
    if batch is not None:
        return _receive(device, text, batch)
    own = ReceiveBatch()
    outcome = _receive(device, text, own)
    own.store_new()
    return outcome


def _receive(device: Device, text: Any, batch: ReceiveBatch) -> Result | str:
    if not isinstance(text, str):
        raise Rejected("malformed_envelope", "each envelope must be a base64url string")
    try:
        envelope = batch.envelope(text)
    except env.EnvelopeError as exc:
        raise Rejected(exc.code, exc.detail) from None
    header = envelope.header
    if header.device_id != device.id:
        raise Rejected("device_mismatch", f"envelope was sealed by device {header.device_id}, "
                       f"not by the pushing device {device.id}")
    batch.signature(text, envelope, device)
    raw = envelope.to_bytes()
    digest = env.envelope_digest(raw)
    existing = batch.lookup(header.submission_id)
    if device.revoked_at is not None:
        return quarantine_or_refuse(device, envelope, raw, digest, existing, batch)
    if existing is not None:
        if existing.digest != digest and existing.state == "rejected" \
                and existing.device_id != device.id:
            # Another device's copy under this id was refused (e.g. a replay re-signed by a
            # thief) and never applied: it must not lock the real author out of its own id.
            existing.device_id, existing.digest, existing.raw = device.id, digest, raw
            existing.reject_code = existing.reject_detail = None
            existing.state = "received"
            return header.submission_id
        if existing.digest != digest:
            raise Rejected("id_reused_with_different_content",
                           f"submission {header.submission_id} was already received with "
                           "different content")
        if existing.state == "accepted":
            return Result(0, "duplicate", header.submission_id, receipt=existing.receipt)
        if existing.state == "quarantined":
            return Result(0, "quarantined", header.submission_id, code="quarantined",
                          detail="held for review")
        existing.state = "received"  # a rejected envelope may succeed now (e.g. form published)
        return header.submission_id
    batch.add(StoredEnvelope(submission_id=header.submission_id, device_id=device.id,
                             digest=digest, raw=raw, state="received"))
    return header.submission_id


def device_signing_key(device: Device) -> ec.EllipticCurvePublicKey | str:
    """The device's public key as a key object (a point check costs ~10 us), or its text as
    stored if that is not a valid key: :func:`signature_problem` then says so."""
    try:
        return decode_signing_public_key(device.public_key)
    except InvalidPublicKey:
        return device.public_key


def signature_problem(envelope: env.Envelope,
                      public_key: ec.EllipticCurvePublicKey | str) -> Rejected | None:
    try:
        env.verify_signature(envelope, public_key)
    except env.BadSignature as exc:
        return Rejected(exc.code, exc.detail)
    return None


def quarantine_or_refuse(device: Device, envelope: env.Envelope, raw: bytes, digest: str,
                         existing: StoredEnvelope | None, batch: ReceiveBatch) -> Result:
    """A revoked device pushes: envelopes it sealed before its revocation are kept, unapplied,
    for review; anything sealed later is refused."""
    header = envelope.header
    revoked_at = device.revoked_at
    assert revoked_at is not None
    try:
        sealed_ms = parse_timestamp(header.hlc).millis
    except InvalidTimestamp as exc:
        raise Rejected("malformed_envelope", exc.detail) from None
    if sealed_ms >= int(revoked_at.timestamp() * 1000):
        raise Rejected("device_revoked", f"device {device.id} was revoked at "
                       f"{revoked_at.isoformat()}; envelopes sealed after that are refused")
    if existing is not None and existing.digest != digest:
        raise Rejected("id_reused_with_different_content",
                       f"submission {header.submission_id} was already received with "
                       "different content")
    if existing is None:
        batch.add(StoredEnvelope(
            submission_id=header.submission_id, device_id=device.id, digest=digest, raw=raw,
            state="quarantined", reject_code="device_revoked",
            reject_detail={"detail": "sealed before the device was revoked; held for review"},
        ))
    elif existing.state == "accepted":
        return Result(0, "duplicate", header.submission_id, receipt=existing.receipt)
    return Result(0, "quarantined", header.submission_id, code="quarantined",
                  detail="the device is revoked; this envelope, sealed before the revocation, "
                  "is held for central review and stays in the outbox")


def number_batch_intakes(prepared: dict[str, Prepared]) -> None:
    """Give the batch's valid intakes their case numbers in a short transaction of their own,
    so that they can be merged before the writing transaction like any other event. A number
    is used once: if its intake is refused after all, or the server stops first (the recovery
    numbers the envelope again), the number is skipped. Committed without waiting for the disk
    (``unsynced_commits``): only the processing commit, which flushes it too, makes a number
    part of an answer; lost to a power cut before that, the number is simply given again."""
    intakes = [p.outcome for p in prepared.values()
               if isinstance(p.outcome, Incoming) and not p.outcome.complete]
    if intakes:
        with unsynced_commits():
            number_intakes(sorted(intakes, key=lambda i: (i.case_id, i.hlc, i.id)))
            end_transaction()


def rehearse(prepared: dict[str, Prepared]) -> Rehearsal | None:
    """Merge the batch's valid envelopes into their cases before the writing transaction, in a
    read-only one (on SQLite: without the write lock, while another push writes)."""
    incoming = [p.outcome for p in prepared.values() if isinstance(p.outcome, Incoming)]
    if not incoming:
        return None
    with read_only():
        return casestore.rehearse(incoming)


def process_submissions(submission_ids: list[str],
                        prepared: dict[str, Prepared] | None = None,
                        rehearsal: Rehearsal | None = None) -> dict[str, Result]:
    """Open and apply stored envelopes in one transaction, retrying on lock conflicts.

    ``prepared`` may give envelopes the caller has already opened and validated, by submission
    id; one is used only if its bytes are exactly the stored ones. ``rehearsal`` may give
    their merges done beforehand (:func:`rehearse`); one is used only where it is exactly the
    merge the transaction would do."""
    if not submission_ids:
        return {}
    for attempt in range(1, PROCESS_ATTEMPTS + 1):
        try:
            results = _process_once(submission_ids, prepared or {}, rehearsal)
            db.session.commit()
            return results
        except (IntegrityError, DBAPIError) as exc:
            db.session.rollback()
            if attempt == PROCESS_ATTEMPTS or not retryable(exc):
                raise
            log.info("retrying batch after %s (attempt %d)", type(exc.orig).__name__, attempt)
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # e.g. two workers creating the same case: the retry sees it exists
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40001", "40P01") or "database is locked" in str(exc.orig)


# Built once (a statement costs ~50 us to build per use); ``ids`` is an expanding IN list.
_STORED = select(StoredEnvelope).where(StoredEnvelope.submission_id.in_(IDS))
#: What processing reads of the envelopes it locks: plain rows, as locked (not as received),
#: with no ORM object to load and track (that cost ~2 ms per push under the locks).
_LOCK_STORED = (select(StoredEnvelope.submission_id, StoredEnvelope.device_id,
                       StoredEnvelope.digest, StoredEnvelope.raw, StoredEnvelope.state,
                       StoredEnvelope.receipt)
                .where(StoredEnvelope.submission_id.in_(IDS))
                .order_by(StoredEnvelope.submission_id).with_for_update())


def _process_once(submission_ids: list[str], prepared: dict[str, Prepared],
                  rehearsal: Rehearsal | None) -> dict[str, Result]:
    # Lock the envelope rows (in a fixed order): a second worker or the recovery job reaching
    # the same envelope waits here, then sees it accepted and answers ``duplicate``.
    rows = list(core(_LOCK_STORED, {"ids": submission_ids}))
    results: dict[str, Result] = {}
    rejected: list[dict[str, Any]] = []  # row updates, written with the accepted ones
    ready: list[tuple[Any, Incoming]] = []
    lookups = BatchLookups()
    for row in rows:
        if row.state == "accepted":
            results[row.submission_id] = Result(0, "duplicate", row.submission_id,
                                                receipt=row.receipt)
            continue
        done = prepared.get(row.submission_id)
        try:
            if done is None or done.raw != row.raw:
                ready.append((row, open_and_validate(row, lookups)))
            elif isinstance(done.outcome, Rejected):
                raise done.outcome
            else:  # a copy: this attempt adds to its operations, a retry starts afresh
                ready.append((row, replace(done.outcome, ops=list(done.outcome.ops))))
        except Rejected as exc:
            results[row.submission_id] = reject(row.submission_id, exc, rejected)
    # Lock cases in a fixed order so that concurrent workers cannot deadlock.
    ready.sort(key=lambda item: (item[1].case_id, item[1].hlc, item[1].id))
    writer = CaseWriter(rehearsal)
    writer.preload([incoming.case_id for _, incoming in ready])  # same order, two queries
    number_intakes([incoming for _, incoming in ready])  # counters after the case rows
    staged: list[tuple[Any, Incoming]] = []
    for row, incoming in ready:
        try:
            writer.stage(incoming)
        except CaseRejection as exc:
            results[row.submission_id] = reject(row.submission_id,
                                                Rejected(exc.code, exc.detail), rejected)
            continue
        staged.append((row, incoming))
    stages = list(writer.staged)
    writer.flush()
    ring = keyring.get()
    now = utcnow()
    accepted: list[dict[str, Any]] = []
    for (row, incoming), stage in zip(staged, stages, strict=True):
        receipt = sign_receipt({
            "submission_id": row.submission_id,
            "envelope_digest": row.digest,
            "sequence": stage.seq,
            "status": "accepted",
            "timestamp": now.isoformat(),
            "case_id": incoming.case_id,
            "revision": stage.state.revision,
        }, ring.receipt_signing_key)
        accepted.append({"submission_id": row.submission_id, "state": "accepted",
                         "seq": stage.seq, "case_id": incoming.case_id, "receipt": receipt,
                         "reject_code": None, "reject_detail": None, "processed_at": now})
        results[row.submission_id] = Result(0, "accepted", row.submission_id, receipt=receipt)
    # One executemany each, by primary key. StoredEnvelope objects loaded earlier in this
    # session are not updated in memory; the commit that follows expires them.
    update_rows(StoredEnvelope, accepted)
    update_rows(StoredEnvelope, rejected)
    return results


def reject(submission_id: str, exc: Rejected, updates: list[dict[str, Any]]) -> Result:
    """The result of refusing a stored envelope; its row's update is added to ``updates``."""
    updates.append({"submission_id": submission_id, "state": "rejected",
                    "reject_code": exc.code,
                    "reject_detail": {"detail": exc.detail, "errors": exc.errors},
                    "processed_at": utcnow()})
    return Result(0, "rejected", submission_id, code=exc.code, detail=exc.detail,
                  errors=exc.errors)


PAYLOAD_KEYS = {"submission_id", "form_id", "form_version", "case_id", "base", "answers"}


@dataclass
class BatchLookups:
    """Form versions, devices and the key ring looked up once per batch."""

    forms: dict[tuple[str, int], FormDefinition | None] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    ring: keyring.KeyRing | None = None

    def key_ring(self) -> keyring.KeyRing:
        if self.ring is None:
            self.ring = keyring.get()
        return self.ring

    def form(self, form_id: str, version: int) -> FormDefinition | None:
        key = (form_id, version)
        if key not in self.forms:
            self.forms[key] = forms_service.compiled(form_id, version)
        return self.forms[key]

    def device(self, device_id: str) -> Device:
        if device_id not in self.devices:
            found = db.session.get(Device, device_id)
            assert found is not None
            self.devices[device_id] = found
        return self.devices[device_id]


def open_and_validate(row: Any, lookups: BatchLookups | None = None) -> Incoming:
    """Decrypt the stored envelope (a :class:`StoredEnvelope` or a row with its ``raw`` and
    ``device_id``) and turn it into a validated event (or raise Rejected)."""
    lookups = lookups or BatchLookups()
    return validate_envelope(env.Envelope.from_bytes(row.raw), lookups.device(row.device_id),
                             lookups)


def validate_envelope(envelope: env.Envelope, device: Device,
                      lookups: BatchLookups) -> Incoming:
    """Decrypt an envelope whose signature was checked and turn it into a validated event (or
    raise Rejected). An intake gets its owner operations here and its case number from
    :func:`number_intakes`. Reads the database only for a form version not yet cached."""
    header = envelope.header
    try:
        payload = env.open_envelope(envelope, lookups.key_ring().private_key)
    except env.EnvelopeError as exc:
        raise Rejected(exc.code, exc.detail) from None
    for key in ("submission_id", "form_id", "form_version"):
        if payload.get(key) != getattr(header, key):
            raise Rejected("header_mismatch", f"the sealed payload's {key} "
                           f"{payload.get(key)!r} does not match the header's "
                           f"{getattr(header, key)!r}")
    problems = payload_problems(payload)
    if problems:
        raise Rejected("malformed_payload", "the sealed payload does not follow the protocol",
                       errors=problems)
    try:
        stamp = parse_timestamp(header.hlc)
    except InvalidTimestamp as exc:
        raise Rejected("malformed_envelope", exc.detail) from None
    drift_ms = int(current_app.config["MAX_CLOCK_DRIFT"]) * 1000
    if stamp.millis - wall_clock_millis() > drift_ms:
        raise Rejected("clock_out_of_range", f"the envelope's clock {header.hlc} is more than "
                       f"{drift_ms // 1000} s ahead of the server's")
    form = lookups.form(header.form_id, header.form_version)
    if form is None:
        raise Rejected("unknown_form_version", f"form {header.form_id} version "
                       f"{header.form_version} is not published on this server")
    result = validate(form, payload["answers"], settings=forms_service.form_settings())
    if not result.ok:
        raise Rejected("invalid_answers", "the answers do not pass the form's validation",
                       errors=result.errors)
    user: User = device.user
    creates = form.case.mode == "create"
    if user.role not in form.case.roles:
        raise Rejected("forbidden_form", f"a {user.role} may not fill {form.form_id}: it is "
                       f"for {', '.join(form.case.roles)}")
    ops = list(result.operations)
    if creates:
        ops.extend(ownership_operations(user))
    base = payload["base"]
    return Incoming(
        id=header.submission_id, case_id=payload["case_id"], parents=list(base["heads"]),
        base_revision=int(base.get("revision", 0)), hlc=header.hlc, device_id=device.id,
        user=user, actor="device", ops=ops, creates=creates, form_id=form.form_id,
        form_version=form.version, complete=not creates,  # an intake: see number_intakes
    )


def number_intakes(incoming: list[Incoming]) -> None:
    """Give the intakes among ``incoming`` still without a case number their numbers, in list
    order, from one reservation of the ``case_number`` counter. Called in a transaction of its
    own (:func:`number_batch_intakes`) or after the case rows are locked, so that the counter
    rows are always locked last."""
    intakes = [i for i in incoming if not i.complete]
    if not intakes:
        return
    first = sequence.next_value("case_number", len(intakes))
    for offset, item in enumerate(intakes):
        item.ops.append(case_number_operation(case_number(service_of(item.user), first + offset)))
        item.complete = True


def service_of(user: User) -> str | None:
    return user.service.code if user.service else None


def case_number(service: str | None, value: int) -> str:
    return f"{service or 'X'}-{value:06d}"


def ownership_operations(user: User) -> list[dict[str, Any]]:
    """What the server adds to an intake besides its case number: the owning service and
    officer."""
    return [
        {"type": "set", "property": "owner_service", "value": service_of(user),
         "policy": "server", "sensitivity": "public"},
        {"type": "set", "property": "owner_officer", "value": user.username, "policy": "server",
         "sensitivity": "restricted"},
    ]


def case_number_operation(number: str) -> dict[str, Any]:
    return {"type": "set", "property": "case_number", "value": number, "policy": "server",
            "sensitivity": "public"}


def owner_operations(user: User, submission_id: str,
                     number: str | None = None) -> list[dict[str, Any]]:
    """What the server adds to an intake: the owning service and officer, and a case number
    (``<service>-<counter>``, unique; taken from the ``case_number`` counter unless given)."""
    if number is None:
        number = case_number(service_of(user), sequence.next_value("case_number"))
    return [*ownership_operations(user), case_number_operation(number)]


def payload_problems(payload: dict[str, Any]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    unknown = sorted(set(payload) - PAYLOAD_KEYS)
    if unknown:
        problems["payload"] = [f"unknown keys: {', '.join(unknown)}"]
    if not env.is_submission_id(payload.get("case_id")):
        problems["case_id"] = ["must be a lower-case hyphenated UUID"]
    base = payload.get("base")
    if not isinstance(base, dict):
        problems["base"] = ["must be an object {revision, heads}"]
    else:
        heads = base.get("heads")
        if not isinstance(heads, list) or not all(env.is_submission_id(h) for h in heads):
            problems["base.heads"] = ["must be a list of event ids"]
        revision = base.get("revision", 0)
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            problems["base.revision"] = ["must be a non-negative integer"]
    if not isinstance(payload.get("answers"), dict):
        problems["answers"] = ["must be an object"]
    return problems


def process_pending(limit: int = 500, *, min_age_seconds: float = 0) -> int:
    """Finish envelopes left in state ``received`` (after a crash). Returns how many.

    ``min_age_seconds`` leaves alone envelopes a live push request is about to process (the
    periodic job); at start-up nothing is in flight, so everything is taken.
    """
    done = 0
    cutoff = utcnow() - timedelta(seconds=min_age_seconds)
    while True:
        ids = list(db.session.scalars(
            select(StoredEnvelope.submission_id)
            .where(StoredEnvelope.state == "received", StoredEnvelope.received_at <= cutoff)
            .order_by(StoredEnvelope.received_seq)
            .limit(limit)
        ))
        db.session.rollback()
        if not ids:
            return done
        process_submissions(ids)
        done += len(ids)
