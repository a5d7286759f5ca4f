"""What identifies and locates a peer: its mDNS record (docs/protocol.md,
"Discovery") and its entry in the leader's list of members."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct, field

from sidecar.contract.base import (
    MAX_ADDRESSES,
    PROTOCOL_VERSION,
    Count,
    DisplayClass,
    IPv4Address,
    Millis,
    PeerId,
    PeerName,
    PeerType,
    Port,
    Role,
    RoomName,
    Term,
    _Wire,
)


class SignalPeer(_Wire):
    """A room member as the leader lists it: enough to rank it and to reach it.

    `addresses` and `port` locate its signaling server (bound by every peer at
    start, serving only while it leads), so on leader loss the followers can
    reach the successor at once, without a new discovery round. `webrtc` is
    false for a browser without RTCPeerConnection (a TV browser, a kiosk
    webview): its channels go through the leader's relay from the first offer.
    """

    peer_id: PeerId
    name: PeerName
    peer_type: PeerType
    display_class: DisplayClass | None
    started_at: Millis
    addresses: Annotated[list[IPv4Address], Meta(max_length=MAX_ADDRESSES)] = field(
        default_factory=list
    )
    port: Port = 0
    webrtc: bool = True


# ------------------------------------------------------------------ discovery


class PeerRecord(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """What one peer announces over mDNS (docs/protocol.md, "Discovery"): the TXT
    record's fields plus the addresses and port of the service. A record is a
    hint, never proof of life."""

    peer_id: PeerId
    name: PeerName
    peer_type: PeerType
    display_class: DisplayClass | None
    started_at: Millis
    role: Role
    leader_id: PeerId | None
    term: Term
    room: RoomName
    v: Count = PROTOCOL_VERSION
    addresses: Annotated[tuple[IPv4Address, ...], Meta(max_length=MAX_ADDRESSES)] = ()
    port: Port = 0

    @classmethod
    def of(
        cls, peer: SignalPeer, *, role: Role, leader_id: str | None, term: int, room: str
    ) -> PeerRecord:
        """The record announcing `peer` in the given role."""
        return cls(
            peer_id=peer.peer_id,
            name=peer.name,
            peer_type=peer.peer_type,
            display_class=peer.display_class,
            started_at=peer.started_at,
            role=role,
            leader_id=leader_id,
            term=term,
            room=room,
            addresses=tuple(peer.addresses),
            port=peer.port,
        )

    def as_signal_peer(self) -> SignalPeer:
        """The member entry of the peer this record announces."""
        return SignalPeer(
            peer_id=self.peer_id,
            name=self.name,
            peer_type=self.peer_type,
            display_class=self.display_class,
            started_at=self.started_at,
            addresses=list(self.addresses),
            port=self.port,
        )
