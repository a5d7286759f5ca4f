"""Which pairs of peers keep a data channel, who offers, and how fast a lost
channel is tried again (docs/protocol.md, "Who connects"), sans I/O."""

from __future__ import annotations

from sidecar.contract import MeshPolicy, SignalPeer


def wants(mesh: MeshPolicy, a: SignalPeer, b: SignalPeer) -> bool:
    """Whether the pair (a, b) keeps a data channel under `mesh` (docs/api.md)."""
    if mesh == "full":
        return True
    return "controller" in (a.peer_type, b.peer_type)


def is_offerer(my_id: str, their_id: str) -> bool:
    """The lower peer id of a pair makes the offer: no glare."""
    return my_id < their_id


def backoff_s(attempt: int) -> float:
    """Delay before renegotiation attempt `attempt` (1-based): 0.25 s doubling, 5 s cap."""
    return float(min(0.25 * 2 ** max(attempt - 1, 0), 5.0))
