"""``docs/protocol.md`` is the wire contract: every endpoint and every rejection code is in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "protocol.md").read_text()


def codes_raised(path: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, (ROOT / path).read_text()))


def test_every_push_rejection_code_is_documented() -> None:
    codes = (codes_raised("fieldsync/services/ingest.py", r'Rejected\(\s*"([a-z_]+)"')
             | codes_raised("fieldsync/services/casestore.py", r'CaseRejection\(\s*"([a-z_]+)"')
             | codes_raised("fieldsync/core/envelopes.py", r'code = "([a-z_]+)"')
             - {"envelope_rejected"})  # the abstract base class
    assert {"device_mismatch", "unknown_case", "decrypt_failed"} <= codes  # the scan works
    table = DOC.split("### 6.4 Rejection codes", 1)[1].split("\n## ", 1)[0]
    assert sorted(c for c in codes if f"| `{c}` |" not in table) == []


def test_every_device_endpoint_is_documented() -> None:
    routes = re.findall(r'@blueprint\.(get|post)\("([^"]+)"\)',
                        (ROOT / "fieldsync/api/sync.py").read_text())
    assert len(routes) >= 6
    for method, route in routes:
        path = "/api/v1" + re.sub(r"<(?:int:)?([a-z_]+)>", r"<\1>", route)
        assert f"`{method.upper()} {path}" in DOC, (method, path)


def test_every_http_error_code_a_device_can_meet_is_documented() -> None:
    errors = codes_raised("fieldsync/errors.py", r'code = "([a-z_]+)"') - {
        "bad_request", "already_exists", "state_conflict", "invalid_form_definition",
        "form_version_immutable", "keyring_error"}  # staff-only or operator-only
    table = DOC.split("## 8. Error codes", 1)[1].split("\n## ", 1)[0]
    assert sorted(c for c in errors if f"| `{c}` |" not in table) == []
