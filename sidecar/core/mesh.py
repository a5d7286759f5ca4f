"""Which pairs of peers keep a data channel, who offers, and how fast a lost
channel is tried again (docs/protocol.md, "Who connects"), sans I/O."""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.contract import MeshPolicy, SignalPeer


def wants(mesh: MeshPolicy, a: SignalPeer, b: SignalPeer, leader_id: str | None = None) -> bool:
    """Whether the pair (a, b) keeps a data channel under `mesh` (docs/api.md).

    With `controllers`, a pair with a controller, and also a pair with the
    leader (`leader_id`): when no controller runs (the booth laptop restarting),
    the leader is a display that holds the room's retained state, and a screen
    switched on meanwhile gets it from there. While a controller leads, this
    adds no channel."""
    if mesh == "full":
        return True
    return "controller" in (a.peer_type, b.peer_type) or (
        leader_id is not None and leader_id in (a.peer_id, b.peer_id)
    )


def unwanted(
    mesh: MeshPolicy, me: SignalPeer, linked: Sequence[SignalPeer], leader_id: str | None
) -> list[str]:
    """The channels to close when the room is listed under `leader_id`: those the
    mesh keeps no more (two displays paired while one of them led, once a
    controller leads again). None while there is no confirmed leader: a list made
    during a change of leader may be partial, and a healthy channel stays."""
    if leader_id is None:
        return []
    return [p.peer_id for p in linked if not wants(mesh, me, p, leader_id)]


def make_room_for(me: SignalPeer, newcomer: SignalPeer, linked: Sequence[SignalPeer]) -> str | None:
    """At MAX_LINKS channels, which one to give up for a channel with `newcomer`:
    a pair with a controller outranks a pair of displays (kept while a display led,
    or by a full mesh), so a display that led a large room takes the booth back.
    None: no room (the newcomer is no controller's pair, or every channel is)."""
    if me.peer_type == "controller" or newcomer.peer_type != "controller":
        return None
    displays = sorted(p.peer_id for p in linked if p.peer_type != "controller")
    return displays[-1] if displays else None


def is_offerer(my_id: str, their_id: str) -> bool:
    """The lower peer id of a pair makes the offer: no glare."""
    return my_id < their_id


def backoff_s(attempt: int) -> float:
    """Delay before renegotiation attempt `attempt` (1-based): 0.25 s doubling, 5 s cap."""
    return float(min(0.25 * 2 ** max(attempt - 1, 0), 5.0))


MAX_LINKS = 64
"""Channels one peer keeps: a room is a handful of devices."""
OFFER_BURST = 6
OFFER_REFILL_MS = 5000


class OfferBudget:
    """How many new transports a peer may offer us: OFFER_BURST at once, one per
    OFFER_REFILL_MS after that (a token bucket per peer, the longest-quiet
    forgotten beyond 4 * MAX_LINKS peers)."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[float, float]] = {}  # peer -> (tokens, at ms)

    def take(self, peer_id: str, now_ms: float) -> bool:
        """One offer from `peer_id` at `now_ms`: whether it may be taken."""
        tokens, at = self._tokens.get(peer_id, (float(OFFER_BURST), now_ms))
        tokens = min(float(OFFER_BURST), tokens + (now_ms - at) / OFFER_REFILL_MS)
        if tokens < 1.0:
            self._tokens[peer_id] = (tokens, now_ms)
            return False
        self._tokens.pop(peer_id, None)  # re-inserted last: the longest-quiet go first
        self._tokens[peer_id] = (tokens - 1.0, now_ms)
        if len(self._tokens) > 4 * MAX_LINKS:
            del self._tokens[next(iter(self._tokens))]
        return True
