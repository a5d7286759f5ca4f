"""Which TCP connections the signaling server keeps, sans I/O.

Every peer listens on its signaling port, and anyone on the network can open
connections to it. Unbounded, a device could hold hundreds of half-open
connections (a partial HTTP request, a WebSocket that never registers) and
use up the process's file descriptors (256 on macOS), after which the leader
accepts no follower and aioice opens no socket. So:

* a connection must become a registered member within HANDSHAKE_S of being
  accepted (the HTTP upgrade and the registration together take a few
  milliseconds on a LAN), or it is closed;
* one address may hold at most PER_ADDRESS connections that have not
  registered yet; more are closed at once;
* all connections together are at most TOTAL: a new one then takes the place
  of the oldest one that has not registered; members are never pushed out.

After registration the registry's own rules hold: heartbeats every 2 s, and
at most FRAME_RATE frames per second (sidecar/core/registry.py).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

HANDSHAKE_S = 5.0
PER_ADDRESS = 8
TOTAL = 128


@dataclass(slots=True)
class _Entry:
    address: str
    opened_at: float
    registered: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    admit: bool
    evict: tuple[Hashable, ...] = ()


class Admission:
    def __init__(
        self, per_address: int = PER_ADDRESS, total: int = TOTAL, handshake_s: float = HANDSHAKE_S
    ) -> None:
        self.per_address = per_address
        self.total = total
        self.handshake_s = handshake_s
        self._entries: dict[Hashable, _Entry] = {}  # insertion order = age
        self.refused = 0
        """Connections closed at once (over a limit), for the log."""

    def __len__(self) -> int:
        return len(self._entries)

    def opened(self, key: Hashable, address: str, now: float) -> Verdict:
        """A connection was accepted from `address`: keep it (and close `evict`),
        or close it at once."""
        pending = sum(
            1 for e in self._entries.values() if e.address == address and not e.registered
        )
        if pending >= self.per_address:
            self.refused += 1
            return Verdict(admit=False)
        evict: list[Hashable] = []
        if len(self._entries) >= self.total:
            oldest = next((k for k, e in self._entries.items() if not e.registered), None)
            if oldest is None:  # every slot is a member's: the newcomer waits its turn
                self.refused += 1
                return Verdict(admit=False)
            del self._entries[oldest]
            evict.append(oldest)
        self._entries[key] = _Entry(address, now)
        return Verdict(admit=True, evict=tuple(evict))

    def registered(self, key: Hashable) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.registered = True

    def closed(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def expired(self, now: float) -> list[Hashable]:
        """Connections that did not register in time (forgotten: close them)."""
        late = [
            key
            for key, entry in self._entries.items()
            if not entry.registered and now - entry.opened_at >= self.handshake_s
        ]
        for key in late:
            del self._entries[key]
        return late

    def next_deadline(self) -> float | None:
        waiting = [e.opened_at for e in self._entries.values() if not e.registered]
        return min(waiting) + self.handshake_s if waiting else None
