"""Leader priority as one comparable value (docs/protocol.md, "Election").

A Controller ranks above a Display; between equals, the earlier start ranks
higher; the lower peer UUID breaks the remaining tie. `a > b` reads "a has
the higher priority", so `max(candidates)` is the rightful leader.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import total_ordering
from typing import Protocol

from sidecar.contract import PeerType

_TYPE_RANK: dict[PeerType, int] = {"controller": 0, "display": 1}


@total_ordering
@dataclass(frozen=True, slots=True, eq=True)
class Priority:
    peer_type: PeerType
    started_at: int
    peer_id: str

    def _rank(self) -> tuple[int, int, str]:
        # Smaller rank = higher priority: every component is "lower wins".
        return (_TYPE_RANK[self.peer_type], self.started_at, self.peer_id)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Priority):
            return NotImplemented
        return self._rank() > other._rank()

    def encode(self) -> str:
        """Compact text form for the mDNS TXT record `priority`."""
        return f"{_TYPE_RANK[self.peer_type]}:{self.started_at}:{self.peer_id}"

    @classmethod
    def decode(cls, text: str) -> Priority:
        """Inverse of `encode`; raises ValueError on anything malformed."""
        rank, started, peer_id = text.split(":", 2)
        types = {v: k for k, v in _TYPE_RANK.items()}
        started_at = int(started)
        if int(rank) not in types or started_at < 0 or not peer_id:
            raise ValueError(f"malformed priority {text!r}")
        return cls(types[int(rank)], started_at, peer_id)


class _Ranked(Protocol):
    @property
    def peer_type(self) -> PeerType: ...
    @property
    def started_at(self) -> int: ...
    @property
    def peer_id(self) -> str: ...


def priority_of(peer: _Ranked) -> Priority:
    """Priority of anything that carries the three ranking fields."""
    return Priority(peer.peer_type, peer.started_at, peer.peer_id)
