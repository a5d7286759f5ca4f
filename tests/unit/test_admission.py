"""Which connections the signaling server keeps (sans I/O, fake clock)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.admission import Admission


def test_one_address_holds_a_bounded_number_of_unregistered_connections() -> None:
    adm = Admission(per_address=3, total=100)
    assert [adm.opened(n, "10.0.0.9", 0.0).admit for n in range(5)] == [True] * 3 + [False] * 2
    assert adm.opened("honest", "10.0.0.2", 0.0).admit  # others are not affected
    adm.registered(0)  # a member does not count against its address
    assert adm.opened(10, "10.0.0.9", 0.1).admit


def test_when_full_the_oldest_unregistered_connection_makes_room_never_a_member() -> None:
    adm = Admission(per_address=100, total=3)
    adm.opened("member", "10.0.0.2", 0.0)
    adm.registered("member")
    adm.opened("a", "10.0.0.9", 0.1)
    adm.opened("b", "10.0.0.8", 0.2)
    verdict = adm.opened("c", "10.0.0.7", 0.3)
    assert verdict.admit and verdict.evict == ("a",)
    for key in ("b", "c"):
        adm.registered(key)
    assert not adm.opened("d", "10.0.0.6", 0.4).admit  # all members: wait for a slot


def test_a_connection_that_does_not_register_in_time_is_closed() -> None:
    adm = Admission(handshake_s=5.0)
    adm.opened("slow", "10.0.0.9", 0.0)
    adm.opened("member", "10.0.0.2", 1.0)
    adm.registered("member")
    assert adm.next_deadline() == 5.0
    assert adm.expired(4.99) == []
    assert adm.expired(5.0) == ["slow"]
    assert adm.next_deadline() is None and len(adm) == 1


@given(
    st.lists(
        st.tuples(st.sampled_from(["open", "register", "close", "tick"]), st.integers(0, 30)),
        max_size=200,
    )
)
def test_the_bounds_always_hold(steps: list[tuple[str, int]]) -> None:
    adm = Admission(per_address=4, total=10, handshake_s=1.0)
    now = 0.0
    open_keys: set[str] = set()
    members: set[str] = set()
    for step, n in steps:
        now += 0.1
        key, address = f"k{n}", f"10.0.0.{n % 3}"
        if step == "open" and key not in open_keys:
            verdict = adm.opened(key, address, now)
            open_keys -= set(verdict.evict)
            if verdict.admit:
                open_keys.add(key)
        elif step == "register" and key in open_keys:
            adm.registered(key)
            members.add(key)
        elif step == "close":
            adm.closed(key)
            open_keys.discard(key)
            members.discard(key)
        else:
            open_keys -= set(adm.expired(now))
        assert len(adm) <= 10
        assert members <= open_keys  # a member is never evicted or expired
