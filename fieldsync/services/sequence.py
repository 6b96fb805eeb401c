"""Server sequence numbers.

``next_value("sync")`` increments a counter row, which locks it until the transaction commits.
Sequence numbers are therefore committed in increasing order, and a pull that has seen number
``n`` can never later find a change numbered below ``n`` appear. Call it as late as possible in
a transaction: it serialises writers from that point to their commit.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, bindparam

from fieldsync.database import core
from fieldsync.extensions import db
from fieldsync.models import Counter

_COUNTERS = cast(Table, Counter.__table__)
_RESERVE = (_COUNTERS.update().where(_COUNTERS.c.name == bindparam("counter"))
            .values(value=_COUNTERS.c.value + bindparam("count"))
            .returning(_COUNTERS.c.value))


def next_value(name: str, count: int = 1) -> int:
    """Reserve ``count`` consecutive values and return the first of them (a Core statement:
    a Counter object loaded in the session is not refreshed by it)."""
    new_value = core(_RESERVE, {"counter": name, "count": count}).scalar_one()
    return int(new_value) - count + 1


def current_value(name: str) -> int:
    return int(db.session.get(Counter, name).value)  # type: ignore[union-attr]
