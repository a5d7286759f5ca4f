"""Priority is a strict total order: controller > display, earlier > later, lower id wins."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.priority import Priority

priorities = st.builds(
    Priority,
    peer_type=st.sampled_from(["controller", "display"]),
    started_at=st.integers(min_value=0, max_value=2**53),
    peer_id=st.text(alphabet="0123456789abcdef-", min_size=1, max_size=8),
)


def test_controller_outranks_display_even_when_started_later() -> None:
    controller = Priority("controller", started_at=2_000, peer_id="ffff")
    display = Priority("display", started_at=1_000, peer_id="0000")
    assert controller > display
    assert max([display, controller]) is controller


def test_earlier_start_outranks_later_within_a_type() -> None:
    assert Priority("display", 1_000, "b") > Priority("display", 1_001, "a")


def test_lower_uuid_breaks_the_tie() -> None:
    assert Priority("display", 1_000, "1f") > Priority("display", 1_000, "2a")


def test_sorting_puts_the_rightful_leader_first() -> None:
    peers = [
        Priority("display", 5, "a"),
        Priority("controller", 9, "z"),
        Priority("display", 1, "b"),
        Priority("controller", 9, "c"),
    ]
    ranked = sorted(peers, reverse=True)
    assert [p.peer_id for p in ranked] == ["c", "z", "b", "a"]


@given(priorities)
def test_irreflexive(a: Priority) -> None:
    assert not a < a
    assert not a > a


@given(priorities, priorities)
def test_total_and_asymmetric(a: Priority, b: Priority) -> None:
    # Exactly one of a<b, a==b, a>b holds; equality only for identical fields.
    assert [a < b, a == b, a > b].count(True) == 1
    assert (a == b) == (
        (a.peer_type, a.started_at, a.peer_id) == (b.peer_type, b.started_at, b.peer_id)
    )
    assert (a < b) == (b > a)


@given(priorities, priorities, priorities)
def test_transitive(a: Priority, b: Priority, c: Priority) -> None:
    if a > b and b > c:
        assert a > c


@given(priorities)
def test_text_form_round_trips(p: Priority) -> None:
    assert Priority.decode(p.encode()) == p


@given(st.text(max_size=30))
def test_decoding_garbage_raises_value_error_only(text: str) -> None:
    with contextlib.suppress(ValueError):
        Priority.decode(text)
