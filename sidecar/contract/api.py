"""The stdio API (docs/api.md): method params and results, and the
notifications the host hears."""

from __future__ import annotations

import re
from typing import Annotated, Any

from msgspec import Meta, Struct, field

from sidecar.contract.base import (
    ROOM_MAX_BYTES,
    ChannelPath,
    ConnectionState,
    Count,
    DisconnectReason,
    DisplayClass,
    FoundBy,
    IceTransportPolicy,
    IPv4Address,
    LeaderState,
    MeshPolicy,
    Millis,
    PairingCode,
    PairingReason,
    PairingState,
    PairingToken,
    PeerId,
    PeerName,
    PeerType,
    Port,
    RendezvousState,
    RendezvousTarget,
    RoomKey,
    RoomKeyReason,
    RoomName,
    StateEntry,
    StateKey,
    Term,
    _Wire,
)
from sidecar.contract.targets import parse_target

# --------------------------------------------------------------------------- types


class PeerInfo(_Wire):
    """One peer of the room as this sidecar sees it."""

    peer_id: PeerId
    name: PeerName
    peer_type: PeerType
    display_class: DisplayClass | None
    started_at: Millis
    is_leader: bool
    connection_state: ConnectionState
    relayed: bool = False
    """The data channel to this peer goes through a TURN relay."""
    via: ChannelPath = "direct"
    """`relay`: the channel travels through the leader's signaling (a web peer
    whose direct path did not open); `direct`: a WebRTC data channel."""


ICE_URL = re.compile(
    r"^(?P<scheme>stun|turns?):"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?$"
)


def ice_url_problem(url: str) -> str | None:
    """Why `url` is not a STUN/TURN URI (RFC 7064, 7065) aiortc can use, or None."""
    m = ICE_URL.match(url)
    if m is None:
        return f"{url[:80]!r} is not stun:, turn: or turns: host[:port][?transport=udp|tcp]"
    if m["port"] is not None and not 1 <= int(m["port"]) <= 65535:
        return f"port {m['port']} is out of range"
    if m["scheme"] == "stun" and m["transport"] is not None:
        return "a STUN URI takes no transport"
    if m["scheme"] == "turns" and m["transport"] == "udp":
        return "turns: runs over TLS, so over TCP"
    return None


class IceServer(_Wire):
    """A STUN or TURN server, as in the WebRTC RTCIceServer dictionary."""

    urls: (
        Annotated[str, Meta(max_length=512)]
        | Annotated[list[Annotated[str, Meta(max_length=512)]], Meta(min_length=1, max_length=8)]
    )
    username: Annotated[str, Meta(max_length=512)] | None = None
    credential: Annotated[str, Meta(max_length=512)] | None = None

    def problem(self) -> str | None:
        """Why this server cannot be used, or None."""
        for url in [self.urls] if isinstance(self.urls, str) else self.urls:
            if why := ice_url_problem(url):
                return why
            if url.startswith("turn") and (self.username is None or self.credential is None):
                return "a TURN server needs username and credential"
        return None


# --------------------------------------------------------------- method params


class StartPeerParams(_Wire):
    name: PeerName
    peer_type: PeerType
    display_class: DisplayClass | None = None
    signaling_port: Port = 3010
    room: RoomName = "default"
    room_key: RoomKey | None = None
    create_room_key: bool = False
    """Make a new room key (this is the room's first device): `webrtc:room_key` gives it."""
    pairing_code: PairingCode | None = None
    """Join a keyed room by pairing with a member's open window (`open_pairing`)."""
    pairing_token: PairingToken | None = None
    """The same with a pairing link's one-time token instead of the code."""
    mesh: MeshPolicy = "controllers"
    echo: bool = False
    ice_servers: list[IceServer] = field(default_factory=list)
    ice_transport_policy: IceTransportPolicy = "all"
    interfaces: list[IPv4Address] | None = None
    rendezvous: Annotated[list[RendezvousTarget], Meta(max_length=8)] = field(default_factory=list)
    """Signaling servers of the room to ask over unicast (sidecar/core/rendezvous.py)."""

    def __post_init__(self) -> None:
        # Cross-field rules; the "field: reason" form is what ParamError parses.
        if self.peer_type == "display" and self.display_class is None:
            raise ValueError("display_class: required when peer_type is display")
        if self.peer_type == "controller" and self.display_class is not None:
            raise ValueError("display_class: must be absent or null for a controller")
        if len(self.room.encode()) > ROOM_MAX_BYTES:
            # It travels in one TXT string ("room=…", 255 bytes at most).
            raise ValueError(f"room: longer than {ROOM_MAX_BYTES} bytes as UTF-8")
        if len(self.ice_servers) > 8:
            raise ValueError("ice_servers: at most 8")
        for n, server in enumerate(self.ice_servers):
            if why := server.problem():
                raise ValueError(f"ice_servers[{n}]: {why}")
        keyed_ways = [
            self.room_key is not None,
            self.create_room_key,
            self.pairing_code is not None,
            self.pairing_token is not None,
        ]
        if sum(keyed_ways) > 1:
            raise ValueError(
                "room_key: give at most one of room_key, create_room_key, pairing_code,"
                " pairing_token"
            )
        if self.ice_transport_policy == "relay" and not any(
            url.startswith("turn")
            for server in self.ice_servers
            for url in ([server.urls] if isinstance(server.urls, str) else server.urls)
        ):
            raise ValueError("ice_transport_policy: relay needs a TURN server in ice_servers")
        for n, text in enumerate(self.rendezvous):
            try:
                parse_target(text)
            except ValueError as exc:
                raise ValueError(f"rendezvous[{n}]: {exc}") from None


class SendControlMessageParams(_Wire):
    payload: Any
    to: PeerId | list[PeerId] | None = None
    display_class: DisplayClass | None = None
    retain: StateKey | None = None
    """The payload also becomes the room's current value for this key (null
    clears it), held by every peer and given to every peer that joins."""


class OpenPairingParams(_Wire):
    ttl_s: Annotated[float, Meta(ge=30, le=600)] = 120.0
    """How long the code is valid, in seconds."""
    uses: Annotated[int, Meta(ge=1, le=8)] = 1
    """How many devices may pair with it."""


class PingPeerParams(_Wire):
    peer_id: PeerId


class RotateRoomKeyParams(_Wire):
    revoke: Annotated[list[PeerId], Meta(max_length=64)] = field(default_factory=list)
    """Devices to shut out: they never hear the new key, their connections and
    channels close at once, and they cannot join again with what they hold."""


class NoParams(_Wire):
    """For methods that take no params (an empty object or list is accepted)."""


# --------------------------------------------------------------- method results


class SendResult(_Wire):
    message_id: str
    sent_to: list[str]


class LeaderStatus(_Wire):
    state: LeaderState
    leader_id: str | None
    is_leader: bool
    term: Term
    leader: PeerInfo | None
    signaling_url: str | None
    addresses: list[str] = field(default_factory=list)
    """The local IPv4 addresses the peer announces and listens on now."""
    keyed: bool = False
    """The room has a key (`room_key`): only its members can join it, read or
    send. An open room is open to every device on the network."""
    found_by: list[FoundBy] = field(default_factory=list)
    """How this peer heard of its leader: mDNS, a rendezvous answer, or both
    (empty while leading or unled, or when the leader came in a peer list)."""
    room_addresses: list[str] = field(default_factory=list)
    """`ip:port` of the room's signaling servers, the leader's first: keep
    them and pass them as `rendezvous` next time."""
    rendezvous: list[RendezvousStatus] = field(default_factory=list)
    pairing: PairingWindow | None = None
    """This device's open pairing window, if any."""
    display_url: str | None = None
    """The display page this device serves (`http://<address>:<port>/`): open it
    on a phone, a tablet or a TV to make it a display of the room."""


class PairingWindow(_Wire):
    """An open pairing window of this device (`open_pairing`)."""

    code: PairingCode
    expires_at: Millis
    tries_left: Count
    """`pair_hello`s it still takes (each is one guess of the code; one address
    may take 3 of them)."""
    uses_left: Count
    token: PairingToken | None = None
    """The one-time secret of a pairing link (a QR code), until it is used."""
    pair_url: str | None = None
    """This device's display page with the token: a browser that opens it
    pairs at once (none once the token is used, or without a display page)."""


class RendezvousStatus(_Wire):
    """One rendezvous target given to start_peer, and what became of it."""

    target: str
    state: RendezvousState
    addresses: list[str]
    """What it resolved to."""
    error: str | None = None


class RotationResult(_Wire):
    """What a rotation did: who holds the new key now (this device and the
    leader included) and who was shut out."""

    took: list[PeerId]
    revoked: list[PeerId]


class PingResult(_Wire):
    rtt_ms: float


# --------------------------------------------------------- notifications (out)


class ConnectedParams(_Wire):
    peer: PeerInfo


class DisconnectedParams(_Wire):
    peer_id: str
    reason: DisconnectReason
    unacknowledged: list[str] = field(default_factory=list)
    """Ids of messages sent to that peer (they were in a `sent_to`) that it never
    acknowledged: they may not have reached its host."""


class MessageParams(_Wire):
    from_: str = field(name="from")
    message_id: str
    payload: Any
    sent_at: Millis


class LeaderChangedParams(_Wire):
    leader_id: str | None
    is_leader: bool
    term: Term


class PeerListChangedParams(_Wire):
    peers: list[PeerInfo]


class NetworkChangedParams(_Wire):
    """The addresses in use changed, or went away (`online` false: waiting for
    the network), or came back."""

    addresses: list[str]
    online: bool


class PairedParams(_Wire):
    """This device paired (start_peer with `pairing_code`): keep `room_key` and
    pass it as `room_key` next time."""

    room: RoomName
    room_key: RoomKey


class RoomKeyParams(_Wire):
    """The room has a new key (`created` by this device, or `rotated` by a
    member): keep it; the old one no longer admits anyone."""

    room_key: RoomKey
    reason: RoomKeyReason
    revoked: list[PeerId] = field(default_factory=list)
    """Devices shut out of the room with this key (their channels are closed)."""


class PairingParams(_Wire):
    """This device's pairing window changed: opened, a device paired or a
    try failed, or it closed (expired, no tries or uses left, closed)."""

    state: PairingState
    reason: PairingReason
    window: PairingWindow | None
    address: str | None = None
    """Where the try came from (`tried`), or the device that `paired`: many
    tries from an address the host does not know is someone guessing."""


NOTIFICATIONS: dict[str, type[Struct]] = {
    "webrtc:connected": ConnectedParams,
    "webrtc:disconnected": DisconnectedParams,
    "webrtc:message": MessageParams,
    "webrtc:state": StateEntry,
    "webrtc:leader_changed": LeaderChangedParams,
    "webrtc:peer_list_changed": PeerListChangedParams,
    "webrtc:network_changed": NetworkChangedParams,
    "webrtc:paired": PairedParams,
    "webrtc:room_key": RoomKeyParams,
    "webrtc:pairing": PairingParams,
}
"""Notification method name -> the Struct of its params."""
