"""Server sequence numbers.

``next_value("sync")`` increments a counter row, which locks it until the transaction commits.
Sequence numbers are therefore committed in increasing order, and a pull that has seen number
``n`` can never later find a change numbered below ``n`` appear. Call it as late as possible in
a transaction: it serialises writers from that point to their commit.
"""

from __future__ import annotations

from sqlalchemy import bindparam, update

from fieldsync.extensions import db
from fieldsync.models import Counter

_RESERVE = (update(Counter).where(Counter.name == bindparam("counter"))
            .values(value=Counter.value + bindparam("count")).returning(Counter.value))


def next_value(name: str, count: int = 1) -> int:
    """Reserve ``count`` consecutive values and return the first of them."""
    new_value = db.session.execute(_RESERVE, {"counter": name, "count": count}).scalar_one()
    return int(new_value) - count + 1


def current_value(name: str) -> int:
    return int(db.session.get(Counter, name).value)  # type: ignore[union-attr]
