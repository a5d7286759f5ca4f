"""The retained-state core (sidecar/core/state.py): which write wins, and that every
peer ends with the same map whatever the order, duplicates and partitions."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sidecar.core.state as state_module
from sidecar.core.state import (
    MAX_DRIFT_MS,
    MAX_KEY_BYTES,
    Entry,
    RoomState,
    StateError,
    Version,
    chunks,
)

T0 = 1_800_000_000_000


def write(state: RoomState, key: str, value: object, now: int = T0) -> Entry:
    return state.set(key, value, len(repr(value)), now)


def as_map(state: RoomState) -> dict[str, object]:
    return {e.key: e.value for e in state.current()}


def test_the_later_write_wins_and_an_older_one_changes_nothing() -> None:
    a, b = RoomState("a"), RoomState("b")
    first = write(a, "slide", 1, T0)
    second = write(b, "slide", 2, T0 + 5)
    assert a.merge(second, T0 + 5) and not b.merge(first, T0 + 5)
    assert as_map(a) == as_map(b) == {"slide": 2}
    assert not a.merge(second, T0 + 5)  # a duplicate changes nothing


def test_a_tie_in_time_is_broken_by_the_origin_the_same_way_everywhere() -> None:
    a, b = RoomState("aaaa"), RoomState("bbbb")
    wa, wb = write(a, "k", "from a", T0), write(b, "k", "from b", T0)
    a.merge(wb, T0)
    b.merge(wa, T0)
    assert as_map(a) == as_map(b) == {"k": "from b"}  # "bbbb" > "aaaa"


def test_a_write_made_after_seeing_another_is_later_even_with_a_slow_clock() -> None:
    fast, slow = RoomState("fast"), RoomState("slow")
    ahead = write(fast, "k", "fast", T0 + 60_000)  # a clock a minute ahead
    slow.merge(ahead, T0)
    reply = write(slow, "k", "slow, after reading it", T0)
    assert reply.version > ahead.version
    assert fast.merge(reply, T0 + 60_000)
    assert as_map(fast) == as_map(slow) == {"k": "slow, after reading it"}


def test_writes_in_one_millisecond_are_ordered_by_the_counter() -> None:
    a = RoomState("a")
    versions = [write(a, "k", n, T0).version for n in range(3)]
    assert versions == sorted(versions) and len(set(versions)) == 3
    assert as_map(a) == {"k": 2}


def test_a_cleared_key_does_not_come_back_with_an_older_value() -> None:
    a, b = RoomState("a"), RoomState("b")
    old = write(a, "k", "old", T0)
    b.merge(old, T0)
    clear = write(b, "k", None, T0 + 1)
    assert a.merge(clear, T0 + 1)
    assert not a.merge(old, T0 + 2) and as_map(a) == {} and a.get("k") == clear
    assert len(a) == 0 and a.tombstones == 1


def test_a_version_a_day_ahead_is_not_believed() -> None:
    a, liar = RoomState("a"), RoomState("liar")
    forged = write(liar, "k", "mine forever", T0 + MAX_DRIFT_MS + 1)
    assert not a.merge(forged, T0)
    assert as_map(a) == {}


def test_bounds_refuse_our_writes_and_ignore_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "MAX_KEYS", 2)
    monkeypatch.setattr(state_module, "MAX_STATE_BYTES", 100)
    a = RoomState("a")
    write(a, "x", 1)
    write(a, "y", 2)
    with pytest.raises(StateError, match="at most 2 keys"):
        write(a, "z", 3)
    write(a, "x", None, T0 + 1)  # a cleared key makes room
    write(a, "z", 3, T0 + 2)
    with pytest.raises(StateError, match="at most 100 bytes"):
        a.set("y", "v", 100, T0 + 3)
    assert as_map(a) == {"y": 2, "z": 3}
    big = Entry("w", "v", Version(T0, 0, "b"), 101)  # from a peer with other bounds
    assert not a.merge(big, T0)
    for bad in ("", "k" * (MAX_KEY_BYTES + 1), "line\nbreak"):
        with pytest.raises(StateError):
            write(a, bad, 1)


def test_tombstones_are_bounded_and_the_oldest_go_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "MAX_TOMBSTONES", 8)
    a = RoomState("a")
    for n in range(9):
        write(a, f"k{n}", None, T0 + n)
    assert a.tombstones == 6  # over the bound: down to three quarters of it
    assert [e.key for e in a.snapshot()] == [f"k{n}" for n in range(3, 9)]


def test_thousands_of_clears_do_not_cost_a_scan_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer may send 2048 clears a message: the tombstones are sorted once per
    quarter of the bound, not scanned once per clear."""
    scans = 0
    forget = RoomState._forget_tombstones

    def counted(self: RoomState) -> None:
        nonlocal scans
        scans += 1
        forget(self)

    monkeypatch.setattr(RoomState, "_forget_tombstones", counted)
    a = RoomState("a")
    for n in range(20_000):
        a.merge(Entry(f"k{n}", None, Version(T0 + n, 0, "b"), 4), T0)
    assert a.tombstones <= state_module.MAX_TOMBSTONES
    assert scans <= 20_000 // (state_module.MAX_TOMBSTONES // 4) + 1


def test_chunks_keep_the_order_and_put_a_large_value_alone() -> None:
    a = RoomState("a")
    entries = [a.set(f"k{n}", "v", 300, T0) for n in range(10)] + [a.set("big", "v", 5000, T0)]
    groups = chunks(entries, limit=1000)
    assert [e for g in groups for e in g] == entries
    assert all(sum(e.size for e in g) <= 1000 for g in groups if len(g) > 1)
    assert groups[-1] == [entries[-1]]


# ------------------------------------------------------------- a simulated room


@dataclass
class Room:
    """Peers that write and pass writes on in any order, with duplicates and
    partitions: what each has seen is what it merged."""

    peers: list[RoomState]
    rng: random.Random
    now: int = T0

    def __post_init__(self) -> None:
        self.inflight: list[tuple[int, Entry]] = []  # (to, entry), delivered in any order
        self.writes: list[Entry] = []

    def write(self, who: int, key: str, value: object) -> None:
        self.now += self.rng.choice([0, 0, 1, 7])  # many in one millisecond
        skew = self.rng.choice([0, -500, 300])  # clocks disagree
        entry = self.peers[who].set(key, value, 8, self.now + skew)
        self.writes.append(entry)
        self.send_all(who, [entry])

    def send_all(self, who: int, entries: list[Entry]) -> None:
        for other in range(len(self.peers)):
            if other != who:
                self.inflight.extend((other, e) for e in entries)

    def deliver(self, count: int, reachable: set[int] | None = None) -> None:
        """Deliver up to `count` in-flight writes in random order; some twice,
        some lost (a partition: only to peers in `reachable`)."""
        self.rng.shuffle(self.inflight)
        keep: list[tuple[int, Entry]] = []
        for to, entry in self.inflight:
            if count <= 0 or (reachable is not None and to not in reachable):
                keep.append((to, entry))
                continue
            count -= 1
            if self.peers[to].merge(entry, self.now):
                self.send_all(to, [entry])  # passed on, as sidecar.core.replica does
            if self.rng.random() < 0.1:
                keep.append((to, entry))  # a duplicate, later
        self.inflight = keep

    def heal(self) -> None:
        """Channels open between everyone: snapshots both ways, then quiet."""
        for a in range(len(self.peers)):
            self.send_all(a, self.peers[a].snapshot())
        while self.inflight:
            self.deliver(len(self.inflight))


KEYS = ["slide", "song", "blackout"]
ops = st.lists(
    st.tuples(
        st.integers(0, 3),  # writer
        st.sampled_from(KEYS),
        st.one_of(st.none(), st.integers(0, 9)),  # None clears the key
        st.integers(0, 6),  # deliveries after it
        st.booleans(),  # while partitioned in two halves
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops=ops, seed=st.integers(0, 2**32))
def test_any_order_duplicates_and_partitions_converge_to_the_same_map(
    ops: list[tuple[int, str, int | None, int, bool]], seed: int
) -> None:
    room = Room([RoomState(f"peer-{n}") for n in range(4)], random.Random(seed))
    for who, key, value, deliveries, partitioned in ops:
        room.write(who, key, value)
        half = {0, 1} if who in (0, 1) else {2, 3}
        room.deliver(deliveries, half if partitioned else None)
    room.heal()
    maps = [as_map(p) for p in room.peers]
    assert all(m == maps[0] for m in maps)
    # ... and it is the map the documented order chooses: per key, the write
    # with the largest (time, counter, origin).
    expected: dict[str, object] = {}
    for key in KEYS:
        latest = max(
            (w for w in room.writes if w.key == key), key=lambda w: w.version, default=None
        )
        if latest is not None and latest.value is not None:
            expected[key] = latest.value
    assert maps[0] == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 5), st.sampled_from("abc"))))
def test_versions_are_totally_ordered_like_tuples(raw: list[tuple[int, int, str]]) -> None:
    versions = [Version(*r) for r in raw]
    assert sorted(versions) == [Version(*r) for r in sorted(raw)]
