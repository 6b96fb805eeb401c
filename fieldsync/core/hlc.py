"""Hybrid logical clock (Kulkarni et al., 2014): timestamps that follow causality on wrong clocks.

A :class:`Timestamp` is ``(millis, counter, node)``: physical milliseconds since the Unix epoch,
a logical counter that orders events within one millisecond, and the id of the node (device id,
or the server's node name) that breaks the remaining ties. Timestamps compare as that tuple.

Text form, fixed width so that string order equals time order::

    001732412345678-000000-3f2c9e1a-7d1b-4c55-9a0e-5b7f0c2d9e41
    millis (15 digits) - counter (6 digits) - node id

``millis`` has 15 decimal digits (good until the year 33658), ``counter`` 6 (at most 999999;
when it would overflow the clock moves ``millis`` on by one instead), ``node`` is 1 to 64
characters from ``[A-Za-z0-9._-]``. Because every field before the node has a fixed width and
the node alphabet is ASCII, comparing two encoded strings compares the tuples.

One :class:`HLC` per node. :meth:`HLC.now` stamps a local event and is strictly increasing even
when the wall clock goes backwards; :meth:`HLC.receive` folds in a timestamp from elsewhere (a
pulled change, a received submission) and returns a stamp later than both. A remote timestamp
further ahead of the local wall clock than ``max_drift_ms`` raises :class:`ClockDriftError`
and leaves the clock unchanged, so one device with a bad clock cannot drag everybody's clocks
into the future.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fieldsync.errors import InvalidInput

__all__ = [
    "COUNTER_MAX",
    "DEFAULT_MAX_DRIFT_MS",
    "HLC",
    "MILLIS_MAX",
    "ClockDriftError",
    "InvalidTimestamp",
    "Timestamp",
    "format_timestamp",
    "parse_timestamp",
    "wall_clock_millis",
]

MILLIS_DIGITS = 15
COUNTER_DIGITS = 6
MILLIS_MAX = 10**MILLIS_DIGITS - 1
COUNTER_MAX = 10**COUNTER_DIGITS - 1
NODE_MAX_LENGTH = 64
DEFAULT_MAX_DRIFT_MS = 24 * 3600 * 1000

_NODE_PATTERN = rf"[A-Za-z0-9._-]{{1,{NODE_MAX_LENGTH}}}"
_NODE_RE = re.compile(_NODE_PATTERN)
_TEXT_RE = re.compile(rf"([0-9]{{{MILLIS_DIGITS}}})-([0-9]{{{COUNTER_DIGITS}}})-({_NODE_PATTERN})")


class InvalidTimestamp(InvalidInput):
    """A timestamp or node id that does not follow the format in the module docstring."""

    title = "Invalid HLC timestamp"


class ClockDriftError(InvalidInput):
    """A remote timestamp lies further in the future than the allowed drift."""

    code = "clock_drift"
    title = "Clock too far ahead"


@dataclass(frozen=True, order=True, slots=True)
class Timestamp:
    """One HLC reading; instances order as ``(millis, counter, node)``."""

    millis: int
    counter: int
    node: str

    def __post_init__(self) -> None:
        for name, value, top in (
            ("millis", self.millis, MILLIS_MAX),
            ("counter", self.counter, COUNTER_MAX),
        ):
            if type(value) is not int or not 0 <= value <= top:
                raise InvalidTimestamp(f"HLC {name} must be an integer from 0 to {top}")
        check_node(self.node)

    def __str__(self) -> str:
        return format_timestamp(self)


def check_node(node: object) -> str:
    """Return ``node`` if it is a valid node id, else raise :class:`InvalidTimestamp`."""
    if not isinstance(node, str) or not _NODE_RE.fullmatch(node):
        raise InvalidTimestamp(
            f"HLC node id must be 1 to {NODE_MAX_LENGTH} characters from [A-Za-z0-9._-]"
        )
    return node


def format_timestamp(ts: Timestamp) -> str:
    """The fixed-width text form, e.g. ``001732412345678-000000-node``."""
    return f"{ts.millis:0{MILLIS_DIGITS}d}-{ts.counter:0{COUNTER_DIGITS}d}-{ts.node}"


def parse_timestamp(text: str) -> Timestamp:
    """Parse the text form; raise :class:`InvalidTimestamp` on anything else."""
    match = _TEXT_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidTimestamp(f"not an HLC timestamp: {text!r:.100}")
    return Timestamp(int(match[1]), int(match[2]), match[3])


def wall_clock_millis() -> int:
    """Milliseconds since the Unix epoch from the system clock."""
    return time.time_ns() // 1_000_000


class HLC:
    """A hybrid logical clock for one node; safe to share between threads.

    ``clock`` returns physical milliseconds (inject a fake in tests). ``last`` restores the
    clock from persisted state (a tablet saves :attr:`last` with its local store), so that
    stamps stay increasing across restarts.
    """

    def __init__(
        self,
        node: str,
        *,
        clock: Callable[[], int] = wall_clock_millis,
        max_drift_ms: int = DEFAULT_MAX_DRIFT_MS,
        last: Timestamp | None = None,
    ) -> None:
        self.node = check_node(node)
        self._clock = clock
        self.max_drift_ms = max_drift_ms
        self._millis = last.millis if last is not None else 0
        self._counter = last.counter if last is not None else 0
        self._lock = threading.Lock()

    @property
    def last(self) -> Timestamp:
        """The latest timestamp issued or observed (with this node's id)."""
        with self._lock:
            return Timestamp(self._millis, self._counter, self.node)

    def now(self) -> Timestamp:
        """A stamp for a local event, strictly greater than every earlier one of this clock."""
        with self._lock:
            physical = self._physical()
            if physical > self._millis:
                self._set(physical, 0)
            else:
                self._set(self._millis, self._counter + 1)
            return Timestamp(self._millis, self._counter, self.node)

    def receive(self, remote: Timestamp | str) -> Timestamp:
        """Fold in a timestamp from another node; the result exceeds both it and the local clock.

        Raises :class:`ClockDriftError` (clock unchanged) if ``remote`` is more than
        ``max_drift_ms`` ahead of the local wall clock.
        """
        if isinstance(remote, str):
            remote = parse_timestamp(remote)
        with self._lock:
            physical = self._physical()
            if remote.millis - physical > self.max_drift_ms:
                raise ClockDriftError(
                    f"timestamp {format_timestamp(remote)} is {remote.millis - physical} ms "
                    f"ahead of this clock (at most {self.max_drift_ms} ms allowed)"
                )
            top = max(self._millis, remote.millis, physical)
            if top == self._millis == remote.millis:
                counter = max(self._counter, remote.counter) + 1
            elif top == self._millis:
                counter = self._counter + 1
            elif top == remote.millis:
                counter = remote.counter + 1
            else:
                counter = 0
            self._set(top, counter)
            return Timestamp(self._millis, self._counter, self.node)

    def _physical(self) -> int:
        physical = self._clock()
        if type(physical) is not int or not 0 <= physical <= MILLIS_MAX:
            raise InvalidTimestamp(f"physical clock reading out of range: {physical!r}")
        return physical

    def _set(self, millis: int, counter: int) -> None:
        if counter > COUNTER_MAX:  # counter exhausted: borrow the next millisecond
            millis, counter = millis + 1, 0
        if millis > MILLIS_MAX:
            raise InvalidTimestamp("HLC exhausted: millis beyond the encodable range")
        self._millis, self._counter = millis, counter
