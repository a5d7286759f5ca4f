"""Delivery across transport replacements: nothing lost, nothing doubled (sans I/O).

A simulated channel: the sender's Outbox, the receiver's Inbox, and between them
a transport whose queues can die at any moment, taking what was in flight with
them (both the messages and the acks coming back). A new transport then opens
with the sync exchange of `sidecar.core.delivery`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.delivery import Inbox, Outbox, Sent
from sidecar.core.flow import SendWindow


@dataclass
class SimChannel:
    outbox: Outbox = field(default_factory=lambda: Outbox(SendWindow(limit=8)))
    inbox: Inbox = field(default_factory=Inbox)
    wire: deque[Sent] = field(default_factory=deque)  # sender -> receiver
    acks: deque[int] = field(default_factory=deque)  # receiver -> sender
    backlog: deque[Sent] = field(default_factory=deque)
    delivered: list[str] = field(default_factory=list)
    now: float = 0.0
    next_id: int = 0

    def open_transport(self) -> None:
        """Both sides sync; the sender resends what the receiver lacks, then the backlog."""
        self.wire.clear()
        self.acks.clear()
        self.outbox.new_transport()
        count = self.inbox.sync()
        for again in self.outbox.on_sync(count, self.now):
            self.wire.append(again)
        self.drain()

    def send(self) -> None:
        message = Sent(f"m{self.next_id}", f"text {self.next_id}", 1 + self.next_id % 3)
        self.next_id += 1
        self.backlog.append(message)
        self.drain()

    def drain(self) -> None:
        while self.backlog and self.outbox.can_send(self.backlog[0].cost):
            message = self.backlog.popleft()
            self.outbox.on_sent(message, self.now)
            self.wire.append(message)

    def deliver_one(self) -> None:
        if self.wire:
            message = self.wire.popleft()
            self.delivered.append(message.message_id)
            if self.inbox.on_message(message.cost):
                count = self.inbox.take_ack()
                assert count is not None
                self.acks.append(count)

    def ack_later(self) -> None:
        count = self.inbox.take_ack()
        if count is not None:
            self.acks.append(count)

    def return_ack(self) -> None:
        if self.acks:
            self.outbox.on_ack(self.acks.popleft(), self.now)
            self.drain()


def test_a_new_channel_syncs_from_zero_and_holds_sends_until_then() -> None:
    ch = SimChannel()
    ch.send()
    assert not ch.wire and ch.backlog  # paused until the first sync
    ch.open_transport()
    assert [m.message_id for m in ch.wire] == ["m0"]


def test_what_died_in_flight_is_sent_again_and_what_arrived_is_not() -> None:
    ch = SimChannel()
    ch.open_transport()
    for _ in range(4):
        ch.send()
    ch.deliver_one()
    ch.deliver_one()  # m0, m1 arrived; no ack went back yet
    ch.open_transport()  # the transport died with m2, m3 in flight
    assert [m.message_id for m in ch.wire] == ["m2", "m3"]
    while ch.wire:
        ch.deliver_one()
    assert ch.delivered == ["m0", "m1", "m2", "m3"]


def test_a_sync_that_does_not_continue_the_channel_is_refused() -> None:
    out = Outbox()
    out.new_transport()
    out.on_sync(0, 0.0)
    for n in range(3):
        out.on_sent(Sent(f"m{n}", "x", 1), 0.0)
    out.on_ack(2, 0.1)
    out.new_transport()
    with pytest.raises(ValueError):
        out.on_sync(1, 0.2)  # fewer than acknowledged: the other side restarted
    with pytest.raises(ValueError):
        out.on_sync(4, 0.2)  # more than were ever sent
    assert [m.message_id for m in out.unacked()] == ["m2"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["send", "deliver", "ack", "flush", "die"]), max_size=120))
def test_any_schedule_delivers_every_message_once_in_order(steps: list[str]) -> None:
    ch = SimChannel()
    ch.open_transport()
    for step in steps:
        ch.now += 0.01
        if step == "send":
            ch.send()
        elif step == "deliver":
            ch.deliver_one()
        elif step == "ack":
            ch.return_ack()
        elif step == "flush":
            ch.ack_later()
        else:
            ch.open_transport()
        assert ch.outbox.window.in_flight <= 8 or len(ch.outbox.unacked()) == 1
    # Settle on a last transport that does not die.
    ch.open_transport()
    for _ in range(10_000):
        if not (ch.wire or ch.acks or ch.backlog):
            break
        ch.deliver_one()
        ch.ack_later()
        ch.return_ack()
    assert ch.delivered == [f"m{n}" for n in range(ch.next_id)]
    assert ch.outbox.unacked() == []
