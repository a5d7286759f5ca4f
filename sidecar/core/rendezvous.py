"""Finding the room where multicast does not reach, sans I/O.

A host may give `start_peer` a few rendezvous addresses (`host[:port]`, an
IPv4 address or a host name): the signaling servers of devices of the room,
typically the addresses the room had last time (`get_leader_status`'s
`room_addresses`). The peer asks each over unicast what it knows of the
room (docs/protocol.md, "Rendezvous"); any running peer answers, with its
own record and its leader's, and the answers feed the election exactly like
mDNS records. Nothing here blocks the start or the election: a target that
does not answer is asked again later, at a bounded rate, and its state is
reported to the host.

When to ask (`Rendezvous.due`): every target at once on start and when the
network comes back; while no leader is known, again after ASK_FIRST_S,
doubling up to ASK_MAX_S; once in a room, every ASK_IN_ROOM_S (it keeps the
room's view fresh and lets two halves of a room that only rendezvous joins
find each other). A target asked and not yet answered is not asked again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sidecar.contract.targets import DEFAULT_PORT as DEFAULT_PORT
from sidecar.contract.targets import MAX_TARGETS as MAX_TARGETS
from sidecar.contract.targets import Target as Target
from sidecar.contract.targets import parse_target as parse_target
from sidecar.contract.targets import parse_targets as parse_targets

ASK_FIRST_S = 0.5
ASK_MAX_S = 5.0
ASK_IN_ROOM_S = 10.0
ASK_TIMEOUT_S = 1.5
"""One question: connect, challenge, answer (a LAN round trip is milliseconds)."""
RESOLVE_TIMEOUT_S = 2.0
MAX_RESOLVED = 4
"""Addresses of one host name that are asked."""

TargetState = Literal["waiting", "asking", "answered", "unreachable", "refused"]


@dataclass
class TargetStatus:
    """What the host is told of one target."""

    target: Target
    state: TargetState = "waiting"
    addresses: tuple[str, ...] = ()
    """What it resolved to (itself, for an address)."""
    error: str | None = None
    answers: int = 0
    next_at: float = 0.0
    interval: float = ASK_FIRST_S


@dataclass
class Rendezvous:
    """When to ask which target, and what became of each."""

    targets: tuple[Target, ...]
    statuses: dict[Target, TargetStatus] = field(init=False)

    def __post_init__(self) -> None:
        self.statuses = {t: TargetStatus(t) for t in self.targets}

    def due(self, now: float) -> list[Target]:
        """The targets to ask now; each is then `asking` until its outcome."""
        ready = [
            s.target for s in self.statuses.values() if s.state != "asking" and s.next_at <= now
        ]
        for target in ready:
            self.statuses[target].state = "asking"
        return ready

    def next_deadline(self) -> float | None:
        times = [s.next_at for s in self.statuses.values() if s.state != "asking"]
        return min(times, default=None)

    def resolved(self, target: Target, addresses: list[str]) -> None:
        self.statuses[target].addresses = tuple(addresses)

    def answered(self, target: Target, now: float, in_room: bool) -> None:
        s = self.statuses[target]
        s.state, s.error, s.answers = "answered", None, s.answers + 1
        s.interval = ASK_FIRST_S
        s.next_at = now + (ASK_IN_ROOM_S if in_room else ASK_FIRST_S)

    def failed(
        self, target: Target, now: float, why: str, refused: bool = False, in_room: bool = False
    ) -> None:
        """No answer (`refused`: it answered no: another room, a wrong key)."""
        s = self.statuses[target]
        s.state, s.error = ("refused" if refused else "unreachable"), why
        s.next_at = now + (ASK_IN_ROOM_S if in_room else s.interval)
        s.interval = min(s.interval * 2, ASK_MAX_S)

    def ask_all_soon(self, now: float) -> None:
        """The network came back, or the leader was lost: ask everyone now."""
        for s in self.statuses.values():
            s.interval = ASK_FIRST_S
            if s.state != "asking":
                s.next_at = now

    def addresses(self) -> set[str]:
        """Every address the host gave (resolved): we may send to these."""
        return {a for s in self.statuses.values() for a in s.addresses}
