"""What the leader queues for one connection, sans I/O: when a slow receiver is
cut off, and when the sender of a relay flood is cut off instead.

The signaling server writes each connection's frames in order from a queue
(sidecar/net/signaling/server.py). A receiver whose socket takes nothing while
OUTBOX_LIMIT_CHARS wait for it is stuck and is cut off. But relayed frames are
another member's traffic: when one sender has RELAY_LIMIT_CHARS of relay
frames waiting for one receiver, the frame is not queued and the *sender* is
cut off, so a member cannot get a slow phone thrown out of the room by
flooding it. An honest relayed channel has its window in flight at most
(sidecar/core/flow.py: about 140 KiB, under 300 KiB once sealed twice).
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import Enum

OUTBOX_LIMIT_CHARS = 4 * 1024 * 1024
RELAY_LIMIT_CHARS = 1024 * 1024


class Verdict(Enum):
    QUEUE = "queue"
    CUT_RECEIVER = "cut_receiver"
    """The receiver takes nothing while this much waits: it is stuck."""
    CUT_SENDER = "cut_sender"
    """A relay frame over its sender's share of this receiver's queue, or over
    the queue's limit."""


class ConnQueue:
    def __init__(
        self, limit: int = OUTBOX_LIMIT_CHARS, relay_limit: int = RELAY_LIMIT_CHARS
    ) -> None:
        self._limit = limit
        self._relay_limit = relay_limit
        self.queued = 0
        self._relayed: dict[Hashable, int] = {}

    def offer(self, size: int, relay_from: Hashable | None = None) -> Verdict:
        """A frame of `size` characters for this receiver (`relay_from`: relayed
        from that connection). QUEUE counts it as waiting."""
        if relay_from is not None:
            waiting = self._relayed.get(relay_from, 0) + size
            if waiting > self._relay_limit:
                return Verdict.CUT_SENDER
        if self.queued + size > self._limit:
            # Full: a relay frame's sender goes (several senders together must
            # not get a slow receiver thrown out); the leader's own frames not
            # taken mean the receiver is stuck.
            return Verdict.CUT_SENDER if relay_from is not None else Verdict.CUT_RECEIVER
        if relay_from is not None:
            self._relayed[relay_from] = waiting
        self.queued += size
        return Verdict.QUEUE

    def sent(self, size: int, relay_from: Hashable | None = None) -> None:
        """A queued frame went out."""
        self.queued -= size
        if relay_from is not None:
            left = self._relayed.pop(relay_from, 0) - size
            if left > 0:
                self._relayed[relay_from] = left

    def relayed_from(self, sender: Hashable) -> int:
        return self._relayed.get(sender, 0)
