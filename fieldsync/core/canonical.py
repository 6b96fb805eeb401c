"""Canonical JSON encoding: one byte string per value, so that hashes and signatures agree.

Rules: UTF-8, keys sorted by code point, no insignificant white space, no NaN or infinities,
non-ASCII characters kept as UTF-8 (not ``\\u`` escapes). Integers stay integers; floats use
Python's shortest round-trip representation.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` canonically (see module docstring)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_hash(value: Any) -> str:
    """Hex SHA-256 of the canonical encoding, prefixed with the algorithm name."""
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()
