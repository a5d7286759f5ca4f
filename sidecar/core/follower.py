"""A follower's registration at its leader, once joined, sans I/O: the
heartbeats, when the leader counts as lost, and which frames from it count.

The same rules in both languages: sidecar/net/signaling/client.py and
frontend-hook/src/web/signaling.ts are its shells (a WebSocket each), and
the traces in tests/vectors/follower/ decide both.

* A heartbeat every HEARTBEAT_INTERVAL_S; the leader is lost when no ack came
  for MISSED_LIMIT intervals.
* A process that was suspended (its deadline passed by more than SUSPEND_MS)
  does not count its own sleep as the leader's silence: it beats at once and
  grants the leader a fresh interval; what the leader sent meanwhile (its ack,
  or its close) is read next.
* The term is the highest heard (registered, heartbeat acks, peer lists); a
  peer list of an older term is stale and ignored. A list naming another
  leader is a redirect: it is passed on, and the close follows.
* In a keyed room every frame is sealed: one that is not (or is out of
  sequence) loses the leader, except a plain `error` (refusals come unsealed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sidecar.contract import (
    Answer,
    Candidate,
    HeartbeatAck,
    Offer,
    PeerList,
    Rekey,
    Rekeyed,
    Relay,
    SignalError,
    SignalMessage,
)
from sidecar.core.clock import SUSPEND_MS
from sidecar.core.signaling import HEARTBEAT_INTERVAL_S, MISSED_LIMIT

LostReason = Literal["silence", "unsealed"]


@dataclass(frozen=True, slots=True)
class Beat:
    """Send `heartbeat {seq, term}`."""

    seq: int
    term: int


@dataclass(frozen=True, slots=True)
class Deliver:
    """A frame for the owner: a peer list, an offer, answer, candidate or relay,
    a rekey (or the outcome of ours), or an error the leader reports."""

    frame: PeerList | Offer | Answer | Candidate | Relay | Rekey | Rekeyed | SignalError


@dataclass(frozen=True, slots=True)
class Lost:
    """The leader is lost to us (reported once; nothing follows)."""

    reason: LostReason
    silent_ms: float


Output = Beat | Deliver | Lost


class FollowerCore:
    def __init__(
        self,
        *,
        term: int,
        now: float,
        keyed: bool,
        interval_ms: float = HEARTBEAT_INTERVAL_S * 1000,
        missed_limit: int = MISSED_LIMIT,
    ) -> None:
        self.term = term
        """The leader's term as last heard."""
        self.keyed = keyed
        self._interval = interval_ms
        self._silence = interval_ms * missed_limit
        self._last_ack = now
        self._next_beat = now + interval_ms
        self._seq = 0
        self.lost = False
        self._out: list[Output] = []

    def take(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        if self.lost:
            return None
        return min(self._next_beat, self._last_ack + self._silence)

    def received(self, frame: SignalMessage, now: float) -> None:
        """A frame from the leader, opened (keyed rooms) or as it came (open rooms)."""
        if self.lost:
            return
        match frame:
            case HeartbeatAck():
                self._last_ack = now
                self.term = max(self.term, frame.term)
            case PeerList():
                if frame.term < self.term:
                    return  # stale
                self.term = frame.term
                self._out.append(Deliver(frame))
            case Offer() | Answer() | Candidate() | Relay() | SignalError():
                self._out.append(Deliver(frame))
            case Rekey() | Rekeyed() if self.keyed:
                self._out.append(Deliver(frame))
            case _:
                pass  # nothing a leader sends a member after registering

    def unsealed(self, is_error: bool, now: float) -> None:
        """(Keyed) A frame that does not open with the session's key; `is_error`:
        it is a plain `error` (a refusal, which comes unsealed)."""
        if not self.lost and not is_error:
            self._lose("unsealed", now)

    def tick(self, now: float) -> None:
        due = self.next_deadline()
        if due is None:
            return
        if now - due > SUSPEND_MS:  # we were not running: the leader's silence is ours
            self._last_ack = now
            self._next_beat = now
        if now >= self._last_ack + self._silence:
            self._lose("silence", now)
            return
        if now >= self._next_beat:
            self._seq += 1
            self._next_beat = max(self._next_beat + self._interval, now)
            self._out.append(Beat(self._seq, self.term))

    def _lose(self, reason: LostReason, now: float) -> None:
        self.lost = True
        self._out.append(Lost(reason, now - self._last_ack))
