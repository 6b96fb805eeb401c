"""Canonical JSON encoding: one byte string per value, so that hashes and signatures agree.

Rules: UTF-8, keys sorted by code point, no insignificant white space, no NaN or infinities,
non-ASCII characters kept as UTF-8 (not ``\\u`` escapes). Integers stay integers; floats use
Python's shortest round-trip representation.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` canonically (see module docstring)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_hash(value: Any) -> str:
    """Hex SHA-256 of the canonical encoding, prefixed with the algorithm name."""
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
LONE_SURROGATE = "a \\u escape of a lone surrogate (half of a UTF-16 pair) is not text"


def has_lone_surrogate(text: str, value: Any) -> bool:
    """True if ``value``, parsed from the JSON ``text``, holds half a surrogate pair: JSON
    parsers accept ``"\\ud800"`` alone, but no UTF-8 text (so no database column) can hold
    it. Only a text with such an escape is checked in full (an escaped pair is fine)."""
    if not _SURROGATE_ESCAPE.search(text):
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
