"""Flow control of a data channel, sans I/O: a window of datagrams per direction.

aiortc advertises a fixed 1 MiB SCTP receive window and hands each incoming
datagram to Python as it comes, so SCTP never slows a sender down for a busy
receiver: the receiver's UDP buffer (about 200 small datagrams on Linux by
default) overflows, and every drop costs an SCTP retransmission timeout of a
second or more. Delivery then collapses to a few hundred messages a second.

So the sidecar keeps its own window: the sender lets at most
`WINDOW_DATAGRAMS` datagrams of control messages be unacknowledged, and the
receiver acknowledges what it has handed to its host (a cumulative count of
messages, every `ACK_EVERY_DATAGRAMS` datagrams, or `ACK_DELAY_MS` after the
last message when fewer came). Pings, pongs and acks themselves are tiny and
rare and bypass the window. A receiver counts every other message, even one
it cannot decode, so the counts of both sides always agree.

A window that has data in flight and no ack for ACK_STALL_MS while the
channel is otherwise alive means a broken peer: the link is then failed (and
renegotiated) rather than left to hold every later message.
"""

from __future__ import annotations

import math
from collections import deque

DATAGRAM_PAYLOAD_BYTES = 1160
"""User data in one SCTP DATA chunk as aiortc sizes them (its USERDATA_MAX_LENGTH);
aiortc sends one chunk per datagram."""

WINDOW_DATAGRAMS = 64
"""Unacknowledged datagrams a sender may have: far below what a receiver's UDP
buffer holds, and above a round trip's worth at the rates one host sustains."""

ACK_EVERY_DATAGRAMS = 16
"""A receiver acknowledges at once when this many datagrams are unacknowledged
(a quarter of the window: the sender never waits on a full window for long)."""

ACK_DELAY_MS = 20
"""Otherwise it acknowledges this long after the last message: a trickle of
cues costs one ack per 20 ms at most, and no sender waits longer than that."""

ACK_STALL_MS = 6000
"""No ack for this long with data in flight: the peer is broken (the same
bound as the channel's liveness rule, 3 missed pings at 2 s)."""


def datagrams(size: int) -> int:
    """Datagrams that a message of `size` bytes takes on the wire."""
    return max(1, math.ceil(size / DATAGRAM_PAYLOAD_BYTES))


class SendWindow:
    """The sender's side: which messages are unacknowledged, and what they cost."""

    def __init__(self, limit: int = WINDOW_DATAGRAMS) -> None:
        self.limit = limit
        self.in_flight = 0
        """Datagrams sent and not yet acknowledged."""
        self.sent = 0
        """Messages sent through the window since the channel opened."""
        self.acked = 0
        self._costs: deque[int] = deque()
        self._progress_at = 0.0
        """When the window last moved: a first message in flight, or an ack."""

    def has_room(self, cost: int) -> bool:
        """Whether a message of `cost` datagrams may go now. An empty window
        takes any message, so one larger than the window still goes alone."""
        return self.in_flight == 0 or self.in_flight + cost <= self.limit

    def on_sent(self, cost: int, now: float) -> None:
        if self.in_flight == 0:
            self._progress_at = now
        self.sent += 1
        self.in_flight += cost
        self._costs.append(cost)

    def stalled_for(self, now: float) -> float:
        """How long the window has had data in flight without an ack (0: none)."""
        return now - self._progress_at if self.in_flight else 0.0

    def stalled_since(self) -> float | None:
        """When the window last moved, while data is in flight (None: nothing is)."""
        return self._progress_at if self.in_flight else None

    def suspended(self, slept: float) -> None:
        """We were not running for `slept`: that silence was not the receiver's."""
        self._progress_at += slept

    def on_ack(self, count: int, now: float) -> None:
        """The receiver has taken the first `count` messages (cumulative).

        Raises ValueError for a count that goes back or beyond what was sent:
        the channel is reliable and ordered, so that is a broken peer."""
        if not self.acked <= count <= self.sent:
            raise ValueError(f"ack of {count} messages, {self.acked} to {self.sent} expected")
        for _ in range(count - self.acked):
            self.in_flight -= self._costs.popleft()
        self.acked = count
        self._progress_at = now


class AckClock:
    """The receiver's side: when to acknowledge, and what count to send."""

    def __init__(self, every: int = ACK_EVERY_DATAGRAMS) -> None:
        self.every = every
        self.received = 0
        """Messages taken since the channel opened (the count an ack carries)."""
        self.pending = 0
        """Datagrams taken since the last ack."""

    def on_message(self, cost: int) -> bool:
        """Count one message; True when an ack is due now (else one is due later)."""
        self.received += 1
        self.pending += cost
        return self.pending >= self.every

    def take(self) -> int | None:
        """The count to acknowledge, or None when everything is acknowledged."""
        if self.pending == 0:
            return None
        self.pending = 0
        return self.received
