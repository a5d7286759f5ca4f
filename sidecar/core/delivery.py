"""Delivery on a data channel whose transport can be replaced, sans I/O.

A peer's network changes under a running channel: its address moves (DHCP,
a roam between access points), or one of two interfaces goes away. WebRTC
cannot move a connection (aiortc has no ICE restart), so the channel gets a
new transport: a new peer connection, negotiated through the leader, under
the same logical channel. Nothing may be lost or doubled on the way, and
the host is not told of a disconnection that it did not have.

The rules, per direction:

* The sender numbers its control messages (their position on the channel)
  and keeps the text of each until the receiver acknowledges it (cumulative
  acks, see `sidecar.core.flow`). The send window bounds what is kept: at most
  `WINDOW_DATAGRAMS` datagrams, or one larger message alone.
* A transport opens `paused`: each side first sends `sync` with the number
  of control messages it has taken on the channel so far; nothing else goes
  out before the other side's `sync` arrived.
* On the other side's `sync(n)`, the sender counts the first n messages as
  acknowledged and sends again, in order, every message from n on; then
  whatever waits behind the window. A message the receiver took before the
  old transport died is thus never sent twice, and one that was lost with
  it is sent again, before any later message.
* A `sync` that counts fewer messages than were acknowledged, or more than
  were sent, means the other side is not continuing this channel (it
  restarted it): the channel ends, and the sender reports what was never
  acknowledged.

A new channel is the same thing with counts of zero.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from sidecar.core.flow import AckClock, SendWindow


@dataclass(slots=True)
class Sent:
    """A control message sent on the channel and not yet acknowledged."""

    message_id: str
    text: str
    cost: int


class Outbox:
    """The sender's side of one logical channel."""

    def __init__(self, window: SendWindow | None = None) -> None:
        self.window = window or SendWindow()
        self._unacked: deque[Sent] = deque()
        self.paused = True
        """A transport is open but the other side's `sync` has not come yet."""

    @property
    def sent(self) -> int:
        """Control messages sent on the channel since it opened."""
        return self.window.sent

    def can_send(self, cost: int) -> bool:
        return not self.paused and self.window.has_room(cost)

    def on_sent(self, message: Sent, now: float) -> None:
        self.window.on_sent(message.cost, now)
        self._unacked.append(message)

    def on_ack(self, count: int, now: float) -> None:
        """Raises ValueError for a count outside what was sent and not acked."""
        before = self.window.acked
        self.window.on_ack(count, now)
        for _ in range(count - before):
            self._unacked.popleft()

    def new_transport(self) -> None:
        """A new transport opened: hold everything until the other side's sync."""
        self.paused = True

    def on_sync(self, count: int, now: float) -> list[Sent]:
        """The other side has taken `count` messages: what to send again, in
        order, before anything else. Raises ValueError when `count` does not
        continue this channel."""
        self.on_ack(count, now)
        self.paused = False
        return list(self._unacked)

    def unacked(self) -> list[Sent]:
        """What was sent and never acknowledged (to report when the channel ends)."""
        return list(self._unacked)


class Inbox:
    """The receiver's side: what was taken, and when to acknowledge it."""

    def __init__(self, clock: AckClock | None = None) -> None:
        self.clock = clock or AckClock()

    @property
    def received(self) -> int:
        return self.clock.received

    def on_message(self, cost: int) -> bool:
        """Count one message taken; True when an ack is due now."""
        return self.clock.on_message(cost)

    def take_ack(self) -> int | None:
        return self.clock.take()

    def sync(self) -> int:
        """The count for a new transport's `sync`; it acknowledges everything."""
        self.clock.pending = 0
        return self.clock.received
