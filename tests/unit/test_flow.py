"""The data channel's flow control: the send window and the receiver's acks."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.flow import (
    ACK_EVERY_DATAGRAMS,
    DATAGRAM_PAYLOAD_BYTES,
    WINDOW_DATAGRAMS,
    AckClock,
    SendWindow,
    datagrams,
)


def test_a_message_costs_the_datagrams_it_fills() -> None:
    assert datagrams(0) == 1
    assert datagrams(1) == 1
    assert datagrams(DATAGRAM_PAYLOAD_BYTES) == 1
    assert datagrams(DATAGRAM_PAYLOAD_BYTES + 1) == 2
    assert datagrams(64 * 1024 + 200) == 57  # the largest control message


def test_the_window_fills_and_an_ack_reopens_it() -> None:
    window = SendWindow(limit=4)
    for _ in range(4):
        assert window.has_room(1)
        window.on_sent(1, 0.0)
    assert not window.has_room(1)
    window.on_ack(1, 0.0)
    assert window.in_flight == 3 and window.has_room(1) and not window.has_room(2)
    window.on_ack(4, 0.0)
    assert window.in_flight == 0


def test_a_message_larger_than_the_window_goes_alone() -> None:
    window = SendWindow(limit=4)
    assert window.has_room(10)
    window.on_sent(10, 0.0)
    assert not window.has_room(1)
    window.on_ack(1, 0.0)
    assert window.has_room(10)


def test_a_window_with_data_in_flight_and_no_ack_is_stalled() -> None:
    window = SendWindow()
    assert window.stalled_for(100.0) == 0.0  # nothing in flight
    window.on_sent(1, 10.0)
    window.on_sent(1, 12.0)  # more in flight does not restart the clock
    assert window.stalled_for(15.0) == 5.0
    window.on_ack(1, 15.0)  # progress
    assert window.stalled_for(16.0) == 1.0
    window.on_ack(2, 16.0)
    assert window.stalled_for(100.0) == 0.0


@pytest.mark.parametrize("count", [-1, 3])
def test_an_ack_outside_what_was_sent_is_refused(count: int) -> None:
    window = SendWindow()
    window.on_sent(1, 0.0)
    window.on_sent(1, 0.0)
    window.on_ack(1, 0.0)
    with pytest.raises(ValueError, match="expected"):
        window.on_ack(count if count >= 0 else 0, 0.0)


def test_the_receiver_acks_every_quarter_window_and_otherwise_later() -> None:
    clock = AckClock()
    assert ACK_EVERY_DATAGRAMS * 4 == WINDOW_DATAGRAMS
    due = [clock.on_message(1) for _ in range(ACK_EVERY_DATAGRAMS)]
    assert due == [False] * (ACK_EVERY_DATAGRAMS - 1) + [True]
    assert clock.take() == ACK_EVERY_DATAGRAMS
    assert clock.take() is None  # nothing new
    assert not clock.on_message(1)
    assert clock.take() == ACK_EVERY_DATAGRAMS + 1  # cumulative
    assert clock.on_message(40)  # one large message is due at once


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=300),
    steps=st.lists(st.sampled_from(["send", "deliver", "timer"]), min_size=1, max_size=2000),
)
def test_every_message_arrives_in_order_within_the_window(
    sizes: list[int], steps: list[str]
) -> None:
    """A sender, a receiver and a FIFO network between them, driven in any order:
    the window is never exceeded (bar a lone large message), and once the
    network drains and the ack timer fires, nothing is stuck."""
    window, clock = SendWindow(), AckClock()
    backlog = deque(enumerate(sizes))
    wire: deque[tuple[int, int]] = deque()  # (message index, cost) sender → receiver
    acks: deque[int] = deque()  # receiver → sender
    arrived: list[int] = []

    def send_what_fits() -> None:
        while backlog and window.has_room(backlog[0][1]):
            index, cost = backlog.popleft()
            window.on_sent(cost, 0.0)
            wire.append((index, cost))
            assert window.in_flight <= max(WINDOW_DATAGRAMS, cost)

    def step(action: str) -> None:
        if action == "send":
            send_what_fits()
        elif action == "deliver" and wire:
            index, cost = wire.popleft()
            arrived.append(index)
            if clock.on_message(cost):
                acks.append(clock.take() or 0)
        elif action == "timer" and (count := clock.take()) is not None:
            acks.append(count)
        while acks:
            window.on_ack(acks.popleft(), 0.0)
            send_what_fits()

    for action in steps:
        step(action)
    for _ in range(10 * len(sizes) + 10):  # then let it settle: bounded
        step("send")
        step("deliver")
        step("timer")
    assert arrived == list(range(len(sizes)))
    assert window.in_flight == 0 and window.acked == len(sizes)
