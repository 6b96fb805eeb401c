"""Pull: refresh the server keys, bring the forms up to the manifest, page through case changes.

Each page is applied in one store transaction together with the new cursor and the HLC, so an
interrupted pull resumes where it stopped and re-reading a page is harmless
(``docs/protocol.md`` section 7).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fieldsync.core.canonical import content_hash
from fieldsync.core.forms import FormDefinitionError, load_form
from fieldsync.core.hlc import HLC, InvalidTimestamp
from fieldsync.core.keys import InvalidPublicKey, PublicKeyInfo
from sync_client.errors import ProtocolError
from sync_client.store import Store, utc_now
from sync_client.transport import API, Transport, json_object


@dataclass
class PullReport:
    forms_downloaded: list[str] = field(default_factory=list)
    forms_removed: list[str] = field(default_factory=list)
    cases_updated: int = 0
    cases_removed: int = 0
    pages: int = 0
    cursor: int = 0


def pull(store: Store, server: Transport, hlc: HLC,
         progress: Callable[[str], None]) -> PullReport:
    report = PullReport()
    refresh_keys(store, server)
    manifest_hash = sync_forms(store, server, report, progress)
    cursor = int(store.get("cursor", 0))
    while True:
        page = json_object(server.request("GET", f"{API}/sync/pull", params={"cursor": cursor}))
        cursor = apply_page(store, page, cursor, hlc, report)
        report.pages += 1
        progress(f"pulled page {report.pages}: {report.cases_updated} case(s) updated, "
                 f"{report.cases_removed} removed (cursor {cursor})")
        if not page["more"]:
            break
    if page.get("forms_manifest_hash") != manifest_hash:
        sync_forms(store, server, report, progress)  # forms published while we were paging
    store.put("last_pull", utc_now())
    report.cursor = cursor
    return report


def check_keys(body: Mapping[str, Any]) -> dict[str, Any]:
    """The key material of an enrolment or key-refresh answer, checked (``ValueError``,
    ``KeyError`` or ``TypeError`` if it is not usable)."""
    try:
        server_keys = [PublicKeyInfo.from_wire(k).to_wire() for k in body["server_keys"]]
    except InvalidPublicKey as exc:
        raise ValueError(exc.detail) from None
    limits = {name: int(body["limits"][name])
              for name in ("push_batch_limit", "pull_page_size", "max_body_bytes")}
    return {"server_keys": server_keys, "receipt_key": str(body["receipt_key"]),
            "limits": limits}


def refresh_keys(store: Store, server: Transport) -> None:
    body = json_object(server.request("GET", f"{API}/sync/keys"))
    try:
        store.put("keys", check_keys(body))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"key refresh answer is malformed: {exc}") from None


def sync_forms(store: Store, server: Transport, report: PullReport,
               progress: Callable[[str], None]) -> str:
    """Download new or changed form versions, drop unlisted ones; returns the manifest hash."""
    saved = store.get("manifest") or {}
    headers = {"If-None-Match": saved["etag"]} if saved.get("etag") else {}
    response = server.request("GET", f"{API}/sync/manifest", headers=headers)
    if response.status_code == 304:
        return str(saved["hash"])
    manifest = json_object(response)
    try:
        listed = {(f["form_id"], int(f["version"])): f["hash"] for f in manifest["forms"]}
        settings = dict(manifest["settings"])
        manifest_hash = str(manifest["hash"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"manifest is malformed: {exc}") from None
    for (form_id, version), digest in sorted(listed.items()):
        local = store.get_form(form_id, version)
        if local is not None and local["hash"] == digest:
            continue
        body = json_object(server.request("GET", f"{API}/sync/forms/{form_id}/{version}"))
        definition = body.get("definition")
        if not isinstance(definition, dict) or content_hash(definition) != digest:
            raise ProtocolError(f"form {form_id} v{version} does not match its manifest hash")
        try:
            load_form(definition)
        except FormDefinitionError as exc:
            raise ProtocolError(f"form {form_id} v{version} does not load: "
                                f"{exc.errors[0][1]}") from None
        store.put_form(form_id, version, {"hash": digest, "definition": definition})
        report.forms_downloaded.append(f"{form_id} v{version}")
        progress(f"downloaded form {form_id} v{version}")
    for form_id, version in store.form_versions():
        if (form_id, version) not in listed:
            store.delete_form(form_id, version)  # retired: sealed envelopes still count
            report.forms_removed.append(f"{form_id} v{version}")
    store.put("manifest", {"etag": response.headers.get("ETag"), "hash": manifest_hash,
                           "settings": settings})
    return manifest_hash


def apply_page(store: Store, page: dict[str, Any], cursor: int, hlc: HLC,
               report: PullReport) -> int:
    """Apply one page (cases and tombstones in sequence order), its cursor and its clock."""
    try:
        items = sorted(
            [(int(c["seq"]), 0, c) for c in page["cases"]]
            + [(int(t["seq"]), 1, t) for t in page["tombstones"]],
            key=lambda item: (item[0], item[1]),
        )
        next_cursor = int(page["cursor"])
        more = bool(page["more"])
        server_hlc = str(page["server_hlc"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"pull page is malformed: {exc}") from None
    if next_cursor < cursor or (more and next_cursor == cursor):
        raise ProtocolError(f"pull cursor went from {cursor} to {next_cursor}")
    with store.transaction():
        for _, kind, item in items:
            if kind == 0:
                store.put_case(item)
                report.cases_updated += 1
            elif store.delete_case(item["case_id"]):
                report.cases_removed += 1
        try:
            hlc.receive(server_hlc)
        except InvalidTimestamp as exc:
            raise ProtocolError(f"server_hlc is not usable: {exc.detail}") from None
        store.put("hlc", str(hlc.last))
        store.put("cursor", next_cursor)
    return next_cursor
