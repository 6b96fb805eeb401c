"""The tablet client: enrol, pull, fill (validate and seal into the outbox), push, status.

All crypto and validation come from the shared pure modules (``fieldsync.core``): the envelope
format, the receipts, the HLC and the form engine are the server's own code. The wire contract
is ``docs/protocol.md``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fieldsync.core.envelopes import MalformedEnvelope, seal
from fieldsync.core.forms import (
    FormDefinition,
    SettingsError,
    load_form,
    validate,
)
from fieldsync.core.hlc import HLC, parse_timestamp
from fieldsync.core.keys import (
    DEFAULT_SUITE,
    PublicKeyInfo,
    encode_signing_public_key,
    generate_signing_key,
)
from sync_client import caseload, outbox
from sync_client.caseload import PullReport
from sync_client.errors import (
    AlreadyEnrolled,
    InvalidAnswers,
    LocalDataError,
    NotEnrolled,
    ProtocolError,
)
from sync_client.outbox import PushReport
from sync_client.store import SCRYPT_N, Store, utc_now
from sync_client.transport import API, RetryPolicy, Transport, json_object

# The device takes the server's clock as authoritative (the server already refuses device
# stamps more than MAX_CLOCK_DRIFT ahead of it), so a tablet whose clock is days behind still
# catches up on pull. This bound only guards against a nonsensical server answer.
SERVER_CLOCK_TOLERANCE_MS = 366 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Filled:
    submission_id: str
    case_id: str
    form_id: str
    form_version: int


class Client:
    """One tablet: a local store in ``home`` opened with ``passphrase``.

    ``transport`` replaces httpx's network transport (tests: ``httpx.WSGITransport``,
    ``httpx.MockTransport`` or a fault-injecting wrapper). ``progress`` receives one-line
    progress messages (the CLI prints them on stderr).
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        passphrase: str,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        progress: Callable[[str], None] | None = None,
        scrypt_n: int = SCRYPT_N,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.home = Path(home)
        self._passphrase = passphrase
        self._retry = retry or RetryPolicy()
        self._http_transport = transport
        self._timeout = timeout
        self._progress = progress or (lambda message: None)
        self._scrypt_n = scrypt_n
        self._sleep = sleep
        self._store: Store | None = None
        self._server_transport: Transport | None = None

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.home, self._passphrase)
        return self._store

    def close(self) -> None:
        if self._server_transport is not None:
            self._server_transport.close()
            self._server_transport = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def device(self) -> dict[str, Any]:
        device = self.store.get("device")
        if device is None:
            raise NotEnrolled(f"{self.home} holds no enrolled device: run "
                              "'fieldsync-client enroll' first")
        return dict(device)

    def _transport(self, base_url: str, token: str | None) -> Transport:
        return Transport(base_url, token=token, retry=self._retry,
                         transport=self._http_transport, timeout=self._timeout,
                         sleep=self._sleep, on_retry=self._progress)

    def _server(self) -> Transport:
        """The connection to the enrolled server, kept open for the client's lifetime."""
        if self._server_transport is None:
            device = self.device()
            self._server_transport = self._transport(device["server"], device["token"])
        return self._server_transport

    def _hlc(self, device_id: str) -> HLC:
        saved = self.store.get("hlc")
        last = parse_timestamp(saved) if saved else None
        return HLC(device_id, last=last, max_drift_ms=SERVER_CLOCK_TOLERANCE_MS)

    # -- enrol ------------------------------------------------------------------------------

    def enroll(self, server: str, code: str, *, label: str = "",
               suite: str = DEFAULT_SUITE) -> dict[str, Any]:
        """Redeem an enrolment code: make the device key, register it, keep what the server
        sends (device id and token, server keys, receipt key, limits)."""
        created = not Store.exists(self.home)
        store = Store.create(self.home, self._passphrase, scrypt_n=self._scrypt_n) \
            if created else self.store
        self._store = store
        try:
            if store.get("device") is not None:
                raise AlreadyEnrolled(f"{self.home} already holds device "
                                      f"{store.get('device')['device_id']}; use another --home")
            key = generate_signing_key()
            transport = self._server_transport = self._transport(server, None)
            response = transport.request("POST", f"{API}/devices/enroll", json={
                "code": code, "suite": suite, "label": label,
                "public_key": encode_signing_public_key(key.public_key()),
            }, idempotent=False)
            body = json_object(response)
            try:
                device: dict[str, Any] = {
                    "device_id": str(body["device_id"]), "token": str(body["device_token"]),
                    "suite": str(body["suite"]), "user": dict(body["user"]),
                    "server": server.rstrip("/"),
                    "private_key": key.private_bytes(
                        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()).hex(),
                    "enrolled_at": utc_now(),
                }
                keys = caseload.check_keys(body)
            except (KeyError, TypeError, ValueError) as exc:
                raise ProtocolError(f"enrolment answer is incomplete: {exc}") from None
            with store.transaction():
                store.put("device", device)
                store.put("keys", keys)
                store.put("cursor", 0)
            transport.token = str(device["token"])
            return {k: v for k, v in device.items() if k not in ("token", "private_key")}
        except BaseException:
            if self._server_transport is not None:
                self._server_transport.close()
                self._server_transport = None
            if created:
                self.close()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{store.path}{suffix}").unlink(missing_ok=True)
            raise

    # -- pull -------------------------------------------------------------------------------

    def pull(self) -> PullReport:
        """Refresh keys, download changed forms, then page through case changes."""
        device = self.device()
        return caseload.pull(self.store, self._server(), self._hlc(device["device_id"]),
                             self._progress)

    # -- local reads ------------------------------------------------------------------------

    def forms(self) -> list[dict[str, Any]]:
        rows = []
        for form_id, version in self.store.form_versions():
            record = self.store.get_form(form_id, version) or {}
            definition = record.get("definition", {})
            title = definition.get("title") or {}
            rows.append({"form_id": form_id, "version": version,
                         "title": title.get("en") or next(iter(title.values()), form_id),
                         "mode": (definition.get("case") or {}).get("mode"),
                         "roles": (definition.get("case") or {}).get("roles", ["officer"]),
                         "hash": record.get("hash")})
        return rows

    def cases(self) -> list[dict[str, Any]]:
        return self.store.cases()

    def _form(self, form_id: str, version: int | None) -> FormDefinition:
        versions = [v for f, v in self.store.form_versions() if f == form_id]
        if version is None and versions:
            version = max(versions)
        record = self.store.get_form(form_id, version) if version is not None else None
        if record is None:
            which = f"{form_id} v{version}" if version is not None and versions else form_id
            raise LocalDataError(f"form {which} is not on this tablet: run 'fieldsync-client "
                                 "pull', then see 'fieldsync-client forms'")
        return load_form(record["definition"])

    # -- fill -------------------------------------------------------------------------------

    def fill(self, form_id: str, answers: Any, *, case_id: str | None = None,
             version: int | None = None) -> Filled:
        """Validate ``answers`` with the form engine and seal them into the outbox.

        Raises :class:`InvalidAnswers` (nothing stored) when the engine refuses them.
        """
        device = self.device()
        store = self.store
        form = self._form(form_id, version)
        role = device["user"].get("role")
        if role not in form.case.roles:
            raise LocalDataError(f"a {role} may not fill {form_id}: it is for "
                                 f"{', '.join(form.case.roles)}")
        if form.case.mode == "create":
            if case_id is not None:
                raise LocalDataError(f"form {form_id} opens a new case: do not give --case")
            case_id = str(uuid.uuid4())
            base: dict[str, Any] = {"revision": 0, "heads": []}
        else:
            if case_id is None:
                raise LocalDataError(f"form {form_id} updates an existing case: give --case "
                                     "CASE_ID (see 'fieldsync-client cases')")
            case = store.get_case(case_id)
            if case is None:
                raise LocalDataError(f"case {case_id} is not on this tablet: run "
                                     "'fieldsync-client pull', then see 'fieldsync-client cases'")
            base = {"revision": int(case["revision"]), "heads": list(case["heads"])}
            pending = (store.get("pending_heads") or {}).get(case_id)
            if pending and store.in_outbox(pending["submission_id"]):
                # This tablet's own unsent edit of the case is the newest thing it has seen:
                # the next edit builds on it, so the two are ordered, never in conflict.
                base = {"revision": pending["revision"], "heads": [pending["submission_id"]]}
        settings = (store.get("manifest") or {}).get("settings") or {}
        try:
            result = validate(form, answers, settings=settings)
        except SettingsError as exc:
            raise LocalDataError(f"the server's form settings do not fit {form_id}: {exc}") \
                from None
        if not result.ok:
            count = len(result.errors)
            raise InvalidAnswers(f"the answers do not pass form {form_id} v{form.version} "
                                 f"({count} field{'s' if count != 1 else ''})", result.errors)
        keys = store.get("keys")
        recipient = _recipient(keys, device["suite"])
        submission_id = str(uuid.uuid4())
        with store.transaction():
            hlc = self._hlc(device["device_id"])
            stamp = hlc.now()
            payload = {"submission_id": submission_id, "form_id": form.form_id,
                       "form_version": form.version, "case_id": case_id, "base": base,
                       "answers": answers}
            try:
                envelope = seal(payload, submission_id=submission_id,
                                device_id=device["device_id"], form_id=form.form_id,
                                form_version=form.version, hlc=stamp, recipient=recipient,
                                signing_key=_signing_key(device))
            except MalformedEnvelope as exc:
                raise LocalDataError(f"cannot seal the submission: {exc.detail}") from None
            store.add_outbox(submission_id, form.form_id, form.version, envelope.to_bytes())
            store.put("hlc", str(stamp))
            pending_heads = store.get("pending_heads") or {}
            pending_heads[case_id] = {"submission_id": submission_id,
                                      "revision": int(base["revision"]) + 1}
            store.put("pending_heads", pending_heads)
            if form.case.mode == "create":
                store.put_case(provisional_case(case_id, submission_id, result.operations))
        return Filled(submission_id, case_id, form.form_id, form.version)

    # -- push -------------------------------------------------------------------------------

    def push(self) -> PushReport:
        """Send the outbox in batches; remove an item only when its receipt verifies."""
        self.device()
        return outbox.push(self.store, self._server(), self._progress)

    # -- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        device = self.device()
        store = self.store
        return {
            "device_id": device["device_id"],
            "user": device["user"],
            "server": device["server"],
            "outbox": [{"submission_id": i.submission_id, "form_id": i.form_id,
                        "form_version": i.form_version, "created_at": i.created_at}
                       for i in store.outbox()],
            "rejected": store.rejected(),
            "cursor": store.get("cursor", 0),
            "hlc": store.get("hlc"),
            "last_pull": store.get("last_pull"),
            "last_push": store.get("last_push"),
            "forms": len(store.form_versions()),
            "cases": len(store.cases()),
        }


# -- helpers --------------------------------------------------------------------------------


def _recipient(keys: Mapping[str, Any], suite: str) -> PublicKeyInfo:
    for wire in keys["server_keys"]:
        if wire["suite"] == suite:
            return PublicKeyInfo.from_wire(wire)
    raise LocalDataError(f"the server offers no {suite} key: run 'fieldsync-client pull'")


def _signing_key(device: Mapping[str, Any]) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_der_private_key(bytes.fromhex(device["private_key"]), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def provisional_case(case_id: str, submission_id: str,
                     operations: list[dict[str, Any]]) -> dict[str, Any]:
    """The tablet's own copy of a case it has just opened, so that the officer can go on
    filling forms for it offline; the server's version replaces it on the next pull."""
    properties = {
        op["property"]: {"value": op["value"], "policy": op.get("policy", "lww"),
                         "sensitivity": op.get("sensitivity", "restricted"), "hlc": None,
                         "conflict": False}
        for op in operations if op.get("type") == "set"
    }
    return {"case_id": case_id, "case_number": None, "status": "active", "revision": 1,
            "heads": [submission_id], "properties": properties, "seq": 0,
            "provisional": True}
