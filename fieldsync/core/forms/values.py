"""One answer against its field: type check, normalisation, static constraints.

:func:`normalise` returns the value as the engine stores it and as expressions see it, or
raises :class:`Invalid` with the message shown to the user. Values are JSON values:

======================  ================================================================
type                    accepted -> stored
======================  ================================================================
text                    a string
integer                 an integer within +/-(2**53 - 1); not a boolean, not ``1.0``
decimal                 an integer or a finite number -> a float
boolean                 ``true`` or ``false``
date                    ``"YYYY-MM-DD"`` (a real calendar date)
datetime                ISO 8601 with seconds optional and an offset (``Z`` or ``+02:00``)
select_one              one of the choice values
select_multiple         a list of distinct choice values -> in the order of the choices
geopoint                ``{lat, lon, accuracy?}``, lat in [-90, 90], lon in [-180, 180],
                        accuracy (metres) >= 0 -> floats
attachment              ``{sha256, media_type, size}``: 64 lowercase hex digits, an
                        ``image/...`` media type, a size in bytes >= 0
======================  ================================================================
"""

from __future__ import annotations

import math
import re
from typing import Any

from fieldsync.core.forms.functions import parse_date, parse_datetime
from fieldsync.core.forms.model import Field

MAX_INTEGER = 2**53 - 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_IMAGE = re.compile(r"image/[a-z0-9][a-z0-9.+-]*")


class Invalid(ValueError):
    """The answer does not fit the field; ``str()`` is the message for the user."""


def is_blank(value: Any) -> bool:
    """``null``, ``""`` and ``[]`` mean "not answered" (for every type but repeat)."""
    return value is None or value == "" or value == []


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("expected text")
    return value


def _integer(field: Field, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid("expected an integer")
    if abs(value) > MAX_INTEGER:
        raise Invalid("integer out of range")
    return value


def _decimal(field: Field, value: Any) -> float:
    if not _number(value) or not math.isfinite(value) or abs(value) > 1e300:
        raise Invalid("expected a number")
    return float(value)


def _boolean(field: Field, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("expected true or false")
    return value


def _date(field: Field, value: Any) -> str:
    if parse_date(value) is None:
        raise Invalid("expected a date (YYYY-MM-DD)")
    return str(value)


def _datetime(field: Field, value: Any) -> str:
    if parse_datetime(value) is None:
        raise Invalid("expected a date and time with offset (ISO 8601)")
    return str(value)


def _select_one(field: Field, value: Any) -> str:
    if not isinstance(value, str) or value not in field.choice_values:
        raise Invalid(f"not one of the choices: {', '.join(field.choice_values)}")
    return value


def _select_multiple(field: Field, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Invalid("expected a list of choices")
    unknown = [item for item in value if item not in field.choice_values]
    if unknown:
        raise Invalid(f"not one of the choices: {unknown[0]}")
    if len(set(value)) != len(value):
        raise Invalid("a choice is repeated")
    return [choice for choice in field.choice_values if choice in value]


def _geopoint(field: Field, value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or not {"lat", "lon"} <= set(value):
        raise Invalid("expected a location {lat, lon, accuracy}")
    extra = sorted(set(value) - {"lat", "lon", "accuracy"})
    if extra:
        raise Invalid(f"unexpected key in location: {extra[0]}")
    limits = {"lat": (-90.0, 90.0), "lon": (-180.0, 180.0), "accuracy": (0.0, math.inf)}
    out: dict[str, float] = {}
    for key in ("lat", "lon", "accuracy"):
        if key not in value:
            continue
        number = value[key]
        low, high = limits[key]
        if not _number(number) or not math.isfinite(number) or not low <= number <= high:
            raise Invalid(f"{key} must be a number between {low:g} and {high:g}")
        out[key] = float(number)
    return out


def _attachment(field: Field, value: Any) -> dict[str, Any]:
    keys = {"sha256", "media_type", "size"}
    if not isinstance(value, dict) or set(value) != keys:
        raise Invalid("expected an attachment reference {sha256, media_type, size}")
    if not isinstance(value["sha256"], str) or not _SHA256.fullmatch(value["sha256"]):
        raise Invalid("sha256 must be 64 lowercase hexadecimal digits")
    if not isinstance(value["media_type"], str) or not _IMAGE.fullmatch(value["media_type"]):
        raise Invalid("media_type must be an image type (image/...)")
    size = value["size"]
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_INTEGER:
        raise Invalid("size must be a whole number of bytes")
    return {"sha256": value["sha256"], "media_type": value["media_type"], "size": size}


_NORMALISERS = {
    "text": _text,
    "integer": _integer,
    "decimal": _decimal,
    "boolean": _boolean,
    "date": _date,
    "datetime": _datetime,
    "select_one": _select_one,
    "select_multiple": _select_multiple,
    "geopoint": _geopoint,
    "attachment": _attachment,
}


def normalise(field: Field, value: Any) -> Any:
    """The stored form of a (non-blank) ``value`` for ``field``; raises :class:`Invalid`."""
    return _NORMALISERS[field.type](field, value)


def check_static(field: Field, value: Any) -> list[str]:
    """Messages for the declarative constraints (range, length, pattern) ``value`` breaks."""
    problems = []
    if field.min is not None and value < field.min:
        noun = "on or after" if field.type == "date" else "at least"
        problems.append(f"must be {noun} {field.min}")
    if field.max is not None and value > field.max:
        noun = "on or before" if field.type == "date" else "at most"
        problems.append(f"must be {noun} {field.max}")
    if field.min_length is not None and len(value) < field.min_length:
        problems.append(f"must be at least {field.min_length} characters")
    if field.max_length is not None and len(value) > field.max_length:
        problems.append(f"must be at most {field.max_length} characters")
    if field.pattern is not None and not field.pattern.fullmatch(value):
        problems.append("does not match the required pattern")
    return problems
