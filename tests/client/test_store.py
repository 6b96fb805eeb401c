"""The encrypted local store on its own."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from sync_client.errors import StoreError, WrongPassphrase
from sync_client.store import FILENAME, Store
from tests.client.conftest import FAST_KDF, PASSPHRASE

SECRET_CASE = {"case_id": "c-1", "revision": 3, "heads": [],
               "properties": {"name": {"value": "Gheorghe Secretescu"}}}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    store = Store.create(tmp_path / "home", PASSPHRASE, scrypt_n=FAST_KDF)
    with store.transaction():
        store.put("device", {"token": "the-device-token-value"})
        store.put_case(SECRET_CASE)
        store.put_case({**SECRET_CASE, "case_id": "c-2"})
        store.add_outbox("s-1", "home_visit", 1, b"sealed-envelope-bytes")
    store.close()
    return tmp_path / "home"


def test_values_come_back_with_the_right_passphrase(home: Path) -> None:
    with Store.open(home, PASSPHRASE) as store:
        assert store.get("device") == {"token": "the-device-token-value"}
        assert store.get_case("c-1") == SECRET_CASE
        [item] = store.outbox()
        assert (item.submission_id, item.form_id, item.envelope) == (
            "s-1", "home_visit", b"sealed-envelope-bytes")


def test_wrong_passphrase_is_a_clear_error(home: Path) -> None:
    with pytest.raises(WrongPassphrase, match=f"^wrong passphrase for {home}$"):
        Store.open(home, "not the passphrase")


def test_nothing_sensitive_is_on_disk_in_clear(home: Path) -> None:
    raw = b"".join(path.read_bytes() for path in home.iterdir())
    for secret in (b"Gheorghe", b"Secretescu", b"the-device-token-value",
                   b"sealed-envelope-bytes"):
        assert secret not in raw
    assert stat.S_IMODE((home / FILENAME).stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_a_blob_moved_to_another_row_does_not_decrypt(home: Path) -> None:
    with sqlite3.connect(home / FILENAME) as db:
        blob = db.execute("SELECT blob FROM cases WHERE case_id = 'c-1'").fetchone()[0]
        db.execute("UPDATE cases SET blob = ? WHERE case_id = 'c-2'", (blob,))
    db.close()
    with Store.open(home, PASSPHRASE) as store:
        assert store.get_case("c-1") == SECRET_CASE
        with pytest.raises(StoreError, match="does not decrypt"):
            store.get_case("c-2")


def test_missing_damaged_and_duplicate_stores(tmp_path: Path, home: Path) -> None:
    with pytest.raises(StoreError, match="no client store in"):
        Store.open(tmp_path / "nowhere", PASSPHRASE)
    with pytest.raises(StoreError, match="already exists"):
        Store.create(home, PASSPHRASE)
    with pytest.raises(StoreError, match="must not be empty"):
        Store.open(home, "")
    bogus = tmp_path / "bogus"
    bogus.mkdir()
    (bogus / FILENAME).write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="bogus"):
        Store.open(bogus, PASSPHRASE)


def test_a_failed_transaction_leaves_nothing(home: Path) -> None:
    with Store.open(home, PASSPHRASE) as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.add_outbox("s-2", "home_visit", 1, b"other")
            store.put("cursor", 99)
            raise RuntimeError("power cut")
        assert [i.submission_id for i in store.outbox()] == ["s-1"]
        assert store.get("cursor") is None
