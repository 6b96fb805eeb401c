"""Helper functions registered in every form expression, next to CEL's own.

CEL has no calendar arithmetic on plain dates and does not mix ``int`` with ``double``; the
forms need both. Every helper here is total and deterministic: it never raises, it returns
``null`` (``None``) when an argument is ``null`` or of the wrong kind, and it never reads the
clock (there is deliberately no ``today()``: the same answers must give the same result on the
tablet today and on the server next week).

Dates are ISO strings (``"2024-03-01"``), date-times are ISO 8601 strings with an offset
(``"2024-03-01T09:30:00+02:00"``): the same shapes the answers use.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})")


def parse_date(value: Any) -> date | None:
    """An ISO ``YYYY-MM-DD`` string as a date, or None."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 date-time string with an offset as an aware datetime, or None."""
    if not isinstance(value, str) or not _DATETIME.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _day(value: Any) -> date | None:
    """A date, or the local calendar date of a date-time."""
    parsed = parse_date(value)
    if parsed is not None:
        return parsed
    moment = parse_datetime(value)
    return moment.date() if moment is not None else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def days_between(start: Any, end: Any) -> int | None:
    """Whole days from ``start`` to ``end`` (negative when ``end`` is earlier)."""
    first, last = _day(start), _day(end)
    if first is None or last is None:
        return None
    return (last - first).days


def years_between(start: Any, end: Any) -> int | None:
    """Completed years from ``start`` to ``end`` (an age), negative when ``end`` is earlier."""
    first, last = _day(start), _day(end)
    if first is None or last is None:
        return None
    if last < first:
        years = years_between(end, start)
        return None if years is None else -years
    return last.year - first.year - ((last.month, last.day) < (first.month, first.day))


def _shift_months(value: Any, months: Any) -> str | None:
    day = parse_date(value)
    if day is None or not _is_int(months):
        return None
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        return None
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last)).isoformat()


def add_days(value: Any, days: Any) -> str | None:
    """The date ``days`` days after ``value`` (before, when negative)."""
    day = parse_date(value)
    if day is None or not _is_int(days):
        return None
    try:
        return date.fromordinal(day.toordinal() + days).isoformat()
    except (ValueError, OverflowError):
        return None


def add_months(value: Any, months: Any) -> str | None:
    """The same day ``months`` later; the 31st becomes the month's last day when needed."""
    return _shift_months(value, months)


def add_years(value: Any, years: Any) -> str | None:
    """The same day ``years`` later; 29 February becomes 28 February in a common year."""
    if not _is_int(years):
        return None
    return _shift_months(value, years * 12)


def hours_between(start: Any, end: Any) -> float | None:
    """Hours (a double) from date-time ``start`` to date-time ``end``, offsets respected."""
    first, last = parse_datetime(start), parse_datetime(end)
    if first is None or last is None:
        return None
    return (last - first).total_seconds() / 3600.0


def date_part(value: Any) -> str | None:
    """The local calendar date of a date-time (a date is returned unchanged)."""
    day = _day(value)
    return day.isoformat() if day is not None else None


def round_number(value: Any, digits: Any = 0) -> float | None:
    """``value`` rounded half away from zero to ``digits`` decimals, as a double."""
    if not _is_number(value) or not _is_int(digits) or not 0 <= digits <= 10:
        return None
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def _extreme(pick: Callable[..., Any]) -> Callable[..., Any]:
    def helper(*values: Any) -> int | float | None:
        if not values or not all(_is_number(value) for value in values):
            return None
        result = pick(values)
        return result if all(_is_int(value) for value in values) else float(result)

    return helper


HELPERS: dict[str, Callable[..., Any]] = {
    "days_between": days_between,
    "years_between": years_between,
    "add_days": add_days,
    "add_months": add_months,
    "add_years": add_years,
    "hours_between": hours_between,
    "date_part": date_part,
    "round": round_number,
    "min": _extreme(min),
    "max": _extreme(max),
}
"""Name in expressions -> implementation."""

NATIVE_FUNCTIONS = frozenset(
    {
        "size", "has", "int", "uint", "double", "string", "bytes", "timestamp",
        "duration", "dyn", "type", "matches",
    }
)  # fmt: skip
"""CEL's own global functions (methods such as ``x.startsWith(...)`` are not listed)."""
