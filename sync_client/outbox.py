"""Push: send the outbox in batches and settle each item by its result.

An item leaves the outbox only when a receipt for it verifies with the server's receipt key and
names the digest of the exact bytes sent; a rejected item moves to the rejected list with its
reason; anything else (quarantined, a receipt that does not verify) stays for the next push.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fieldsync.core.envelopes import envelope_digest
from fieldsync.core.keys import b64url_encode
from fieldsync.core.receipts import InvalidReceipt, verify_receipt
from sync_client.errors import ProtocolError, ServerError
from sync_client.store import OutboxItem, Store, utc_now
from sync_client.transport import API, Transport, json_object

BODY_OVERHEAD = 64  # bytes of JSON around the envelope strings of a push body


@dataclass
class PushReport:
    total: int = 0
    accepted: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    unverified: list[dict[str, str]] = field(default_factory=list)
    """Items kept because their receipt did not verify (or the answer made no sense)."""

    @property
    def remaining(self) -> int:
        return len(self.quarantined) + len(self.unverified)


def push(store: Store, server: Transport, progress: Callable[[str], None]) -> PushReport:
    items = store.outbox()
    report = PushReport(total=len(items))
    if not items:
        return report
    keys = store.get("keys")
    limits = keys["limits"]
    done = 0
    try:
        for batch in batches(items, int(limits["push_batch_limit"]),
                             int(limits["max_body_bytes"])):
            push_batch(store, server, batch, keys["receipt_key"], report)
            done += len(batch)
            progress(f"pushed {done}/{len(items)}")
    finally:
        store.put("last_push", utc_now())
    return report


def batches(items: list[OutboxItem], count_limit: int,
            max_body: int) -> list[list[OutboxItem]]:
    """Split into batches of at most ``count_limit`` items and ``max_body`` JSON bytes."""
    budget = max(1, int(max_body * 0.9) - BODY_OVERHEAD)
    result: list[list[OutboxItem]] = []
    current: list[OutboxItem] = []
    size = 0
    for item in items:
        item_size = (len(item.envelope) * 4 + 2) // 3 + 3  # base64url text, quotes, comma
        if current and (len(current) >= count_limit or size + item_size > budget):
            result.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        result.append(current)
    return result


def push_batch(store: Store, server: Transport, batch: list[OutboxItem], receipt_key: str,
               report: PushReport) -> None:
    texts = [b64url_encode(item.envelope) for item in batch]
    try:
        response = server.request("POST", f"{API}/sync/push", json={"envelopes": texts})
    except ServerError as exc:
        if exc.status == 413 and len(batch) > 1:  # the server's limits shrank: split
            half = len(batch) // 2
            push_batch(store, server, batch[:half], receipt_key, report)
            push_batch(store, server, batch[half:], receipt_key, report)
            return
        raise
    results = json_object(response).get("results")
    if not isinstance(results, list) or len(results) != len(batch):
        raise ProtocolError("push answer does not hold one result per envelope")
    with store.transaction():
        for result in results:
            settle(store, result, batch, receipt_key, report)


def settle(store: Store, result: Any, batch: list[OutboxItem], receipt_key: str,
           report: PushReport) -> None:
    """Apply one push result to its outbox item."""
    index = result.get("index") if isinstance(result, dict) else None
    if not isinstance(index, int) or not 0 <= index < len(batch):
        raise ProtocolError("push result without a valid index")
    item = batch[index]
    sid = item.submission_id
    if result.get("submission_id") not in (sid, None):  # None: refused before storing
        report.unverified.append({"submission_id": sid,
                                  "reason": "result names another submission"})
        return
    status = result.get("status")
    if status in ("accepted", "duplicate"):
        try:
            fields = verify_receipt(result.get("receipt"), receipt_key,
                                    envelope_digest=envelope_digest(item.envelope))
            if fields["submission_id"] != sid:
                raise InvalidReceipt("receipt is for another submission")
        except InvalidReceipt as exc:
            report.unverified.append({"submission_id": sid, "reason": exc.detail})
            return
        store.remove_outbox(sid)
        (report.accepted if status == "accepted" else report.duplicate).append(sid)
    elif status == "rejected":
        code, detail = str(result.get("code")), str(result.get("detail"))
        store.move_to_rejected(item, code, detail, result.get("errors"))
        report.rejected.append({"submission_id": sid, "code": code, "detail": detail,
                                "errors": result.get("errors")})
    elif status == "quarantined":
        report.quarantined.append(sid)
    else:
        report.unverified.append({"submission_id": sid, "reason": f"status {status!r}"})
