"""Hybrid logical clock: ordering, encoding and the drift guard."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldsync.core.hlc import (
    COUNTER_MAX,
    HLC,
    MILLIS_MAX,
    ClockDriftError,
    InvalidTimestamp,
    Timestamp,
    format_timestamp,
    parse_timestamp,
)

NOW = 1_732_412_345_678

nodes = st.text(alphabet="abcXYZ019._-", min_size=1, max_size=12)
timestamps = st.builds(
    Timestamp,
    millis=st.integers(0, MILLIS_MAX),
    counter=st.integers(0, COUNTER_MAX),
    node=nodes,
)
near_timestamps = st.builds(
    Timestamp,
    millis=st.integers(NOW - 5_000, NOW + 5_000),
    counter=st.integers(0, 20),
    node=nodes,
)


class FakeClock:
    """Physical clock that returns whatever the test sets."""

    def __init__(self, millis: int = NOW) -> None:
        self.millis = millis

    def __call__(self) -> int:
        return self.millis


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_text_form_is_fixed_width() -> None:
    ts = Timestamp(NOW, 7, "dev-1")
    assert format_timestamp(ts) == "001732412345678-000007-dev-1"
    assert str(ts) == format_timestamp(ts)


@given(timestamps)
def test_parse_inverts_format(ts: Timestamp) -> None:
    assert parse_timestamp(format_timestamp(ts)) == ts


@given(timestamps, timestamps)
def test_string_order_equals_tuple_order(a: Timestamp, b: Timestamp) -> None:
    sa, sb = format_timestamp(a), format_timestamp(b)
    assert (sa < sb) == (a < b)
    assert (sa == sb) == (a == b)
    assert (a < b) == ((a.millis, a.counter, a.node) < (b.millis, b.counter, b.node))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1732412345678-000000-dev",  # not padded
        "001732412345678-00000-dev",
        "001732412345678-000000-",
        "001732412345678-000000-dév",
        "001732412345678-000000-a b",
        "001732412345678-000000-" + "n" * 65,
        "００1732412345678-000000-dev",  # non-ASCII digits
        "001732412345678-000000-dev\n",
    ],
)
def test_parse_rejects_malformed_text(text: str) -> None:
    with pytest.raises(InvalidTimestamp):
        parse_timestamp(text)


@given(st.text(max_size=40))
def test_parse_raises_only_invalid_timestamp(text: str) -> None:
    try:
        parse_timestamp(text)
    except InvalidTimestamp:
        pass


@pytest.mark.parametrize(
    "args", [(-1, 0, "n"), (MILLIS_MAX + 1, 0, "n"), (0, COUNTER_MAX + 1, "n"), (0, 0, ""),
             (True, 0, "n")]
)
def test_timestamp_validates_fields(args: tuple[int, int, str]) -> None:
    with pytest.raises(InvalidTimestamp):
        Timestamp(*args)


@given(st.lists(st.integers(NOW - 10_000, NOW + 10_000), min_size=1, max_size=50))
def test_now_strictly_increases_even_when_the_wall_clock_goes_back(readings: list[int]) -> None:
    clock = FakeClock()
    hlc = HLC("dev-1", clock=clock)
    previous = None
    for reading in readings:
        clock.millis = reading
        stamp = hlc.now()
        assert stamp.millis >= reading
        if previous is not None:
            assert stamp > previous
            assert format_timestamp(stamp) > format_timestamp(previous)
        previous = stamp


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(st.integers(NOW - 3_000, NOW + 3_000), st.none() | near_timestamps),
        min_size=1,
        max_size=30,
    )
)
def test_receive_exceeds_local_and_remote(steps: list[tuple[int, Timestamp | None]]) -> None:
    clock = FakeClock()
    hlc = HLC("dev-1", clock=clock)
    for reading, remote in steps:
        clock.millis = reading
        before = hlc.last
        stamp = hlc.now() if remote is None else hlc.receive(remote)
        assert (stamp.millis, stamp.counter) > (before.millis, before.counter)
        assert stamp > before
        if remote is not None:
            assert (stamp.millis, stamp.counter) > (remote.millis, remote.counter)
            assert stamp > remote
        assert stamp.node == "dev-1"


def test_receive_accepts_text_and_moves_later_stamps_past_it(clock: FakeClock) -> None:
    hlc = HLC("dev-1", clock=clock)
    remote = Timestamp(NOW + 60_000, 5, "server")
    received = hlc.receive(str(remote))
    assert received == Timestamp(NOW + 60_000, 6, "dev-1")
    assert hlc.now() == Timestamp(NOW + 60_000, 7, "dev-1")
    clock.millis = NOW + 120_000
    assert hlc.now() == Timestamp(NOW + 120_000, 0, "dev-1")


def test_remote_too_far_ahead_is_refused_and_changes_nothing(clock: FakeClock) -> None:
    hlc = HLC("dev-1", clock=clock, max_drift_ms=1_000)
    hlc.now()
    before = hlc.last
    with pytest.raises(ClockDriftError) as caught:
        hlc.receive(Timestamp(NOW + 1_001, 0, "bad-clock"))
    assert caught.value.code == "clock_drift"
    assert hlc.last == before
    assert hlc.receive(Timestamp(NOW + 1_000, 0, "ok-clock")).millis == NOW + 1_000


def test_remote_far_in_the_past_is_fine(clock: FakeClock) -> None:
    hlc = HLC("server", clock=clock, max_drift_ms=1_000)
    assert hlc.receive(Timestamp(0, 0, "old")) == Timestamp(NOW, 0, "server")


def test_counter_overflow_borrows_the_next_millisecond(clock: FakeClock) -> None:
    hlc = HLC("dev-1", clock=clock, last=Timestamp(NOW, COUNTER_MAX, "dev-1"))
    assert hlc.now() == Timestamp(NOW + 1, 0, "dev-1")
    remote = Timestamp(NOW + 1, COUNTER_MAX, "other")
    assert hlc.receive(remote) == Timestamp(NOW + 2, 0, "dev-1")


def test_restored_clock_continues_after_its_last_stamp(clock: FakeClock) -> None:
    first = HLC("dev-1", clock=clock)
    stamps = [first.now() for _ in range(3)]
    clock.millis = NOW - 50_000  # the tablet restarted with its clock set back
    second = HLC("dev-1", clock=clock, last=first.last)
    assert second.now() > stamps[-1]


def test_bad_node_id_is_refused() -> None:
    with pytest.raises(InvalidTimestamp):
        HLC("not ok")
