"""Every message the sidecar reads or writes, as msgspec Structs.

These Structs are the single definition of the wire formats: the stdio
JSON-RPC API (docs/api.md), the signaling protocol between peers and the leader
(docs/protocol.md, "Signaling") and the envelope carried over the `live-control`
data channel. The JSON Schema, the OpenRPC document and the TypeScript types
are generated from them (see `sidecar.schema`), never written by hand.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct, field

from sidecar.rendezvous import parse_target

PROTOCOL_VERSION = 3
"""Version of the signaling and data-channel protocol, announced as TXT `v`
(2: channels carry `sync` and survive a change of transport; 3: they carry
the room's retained state)."""

MAX_PAYLOAD_BYTES = 64 * 1024
"""Largest control-message payload, measured as its JSON serialization."""

PeerType = Literal["controller", "display"]
DisplayClass = Literal["audience", "stage", "lobby"]
ConnectionState = Literal["new", "connecting", "connected", "disconnected", "self"]
LeaderState = Literal["idle", "offline", "discovering", "electing", "leader", "follower"]
MeshPolicy = Literal["controllers", "full"]
IceTransportPolicy = Literal["all", "relay"]
ChannelPath = Literal["direct", "relay"]
FoundBy = Literal["mdns", "rendezvous"]
RendezvousState = Literal["waiting", "asking", "answered", "unreachable", "refused"]
RendezvousTarget = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=260,
        pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        description="host[:port]: an IPv4 address or a host name, port 3010 by default",
    ),
]
DisconnectReason = Literal["closed", "timeout", "failed", "left"]
Role = Literal["candidate", "leader", "follower"]

SAFE_INT_MAX = 2**53 - 1
"""Every integer on the wire and in the API fits a JavaScript number exactly."""
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
PeerId = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$", description="peer UUID")
]
PeerName = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=_NO_CONTROL, description="device name")
]
RoomName = Annotated[str, Meta(min_length=1, max_length=64, pattern=_NO_CONTROL)]
ROOM_MAX_BYTES = 250
Count = Annotated[int, Meta(ge=0, le=SAFE_INT_MAX)]
Millis = Annotated[
    int, Meta(ge=0, le=SAFE_INT_MAX, description="milliseconds since the Unix epoch")
]
Port = Annotated[int, Meta(ge=0, le=65535)]
Term = Annotated[int, Meta(ge=0, le=SAFE_INT_MAX)]
LinkId = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$", description="channel id")
]
Epoch = Annotated[int, Meta(ge=1, le=2**31, description="transport number of a channel")]
Token = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
"""Nonces, MACs, keys and signatures: short, plain ASCII."""
MAX_ADDRESSES = 8
"""Addresses one peer may list: a device has a handful of interfaces."""
MAX_MEMBERS = 256
"""Peers one peer list may name."""

_IPV4 = r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$"
IPv4Address = Annotated[str, Meta(pattern=_IPV4, description="dotted-quad IPv4 address")]
StateKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        pattern=_NO_CONTROL,
        description="retained-state key: at most 128 bytes of UTF-8, no control characters",
    ),
]
RoomKey = Annotated[
    str,
    Meta(
        min_length=16,
        max_length=1024,
        description="the room's secret: at least 16 characters (create_room_key makes 43)",
    ),
]
PairingCode = Annotated[str, Meta(pattern=r"^[0-9]{6}$", description="six digits")]
Share = Annotated[str, Meta(min_length=43, max_length=43, pattern=r"^[A-Za-z0-9_-]+$")]
"""A CPace share: 32 bytes, base64url without padding."""
PairTag = Annotated[str, Meta(min_length=86, max_length=86, pattern=r"^[A-Za-z0-9_-]+$")]
"""A CPace confirmation tag: 64 bytes, base64url without padding."""
PairingState = Literal["open", "closed"]
PairingReason = Literal["opened", "tried", "paired", "expired", "exhausted", "closed"]
RoomKeyReason = Literal["created", "rotated"]
MAX_STATE_ENTRIES = 2048
"""Entries one `state` message may carry (keys and cleared keys of a full room)."""


class _Wire(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=False):
    """Base of every message: fields by name, unknown fields rejected."""


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
    mesh: MeshPolicy = "controllers"
    echo: bool = False
    ice_servers: list[IceServer] = field(default_factory=list)
    ice_transport_policy: IceTransportPolicy = "all"
    interfaces: list[IPv4Address] | None = None
    rendezvous: Annotated[list[RendezvousTarget], Meta(max_length=8)] = field(default_factory=list)
    """Signaling servers of the room to ask over unicast (sidecar/rendezvous.py)."""

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
        ]
        if sum(keyed_ways) > 1:
            raise ValueError(
                "room_key: give at most one of room_key, create_room_key, pairing_code"
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
    """`pair_hello`s it still takes (each is one guess of the code)."""
    uses_left: Count


class RendezvousStatus(_Wire):
    """One rendezvous target given to start_peer, and what became of it."""

    target: str
    state: RendezvousState
    addresses: list[str]
    """What it resolved to."""
    error: str | None = None


class PingResult(_Wire):
    rtt_ms: float


class StateVersion(_Wire):
    """A write's place in the room's order: `time` (the writer's hybrid clock)
    first, then `counter`, then the writer's peer id; the larger is later."""

    time: Millis
    counter: Count


class StateEntry(_Wire):
    """One key of the room's retained state; `value` null: the key was cleared."""

    key: StateKey
    value: Any
    origin: PeerId
    """The peer that wrote this value."""
    version: StateVersion


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


class PairingParams(_Wire):
    """This device's pairing window changed: opened, a device paired or a
    try failed, or it closed (expired, no tries or uses left, closed)."""

    state: PairingState
    reason: PairingReason
    window: PairingWindow | None


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


# ------------------------------------------------------------------ signaling
# Frames on the leader's WebSocket, tagged by "type". The leader opens with
# `challenge`; a peer that is not registered may only send `register`, whose
# `proof` (with a room key) is an HMAC-SHA256 of the nonce: the key is never sent.


class _Signal(_Wire, tag_field="type"):
    pass


class SignalPeer(_Wire):
    """A room member as the leader lists it: enough to rank it and to reach it.

    `addresses` and `port` locate its signaling server (bound by every peer at
    start, serving only while it leads), so on leader loss the followers can
    reach the successor at once, without a new discovery round.
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


class Challenge(_Signal, tag="challenge"):
    nonce: Token


class Register(_Signal, tag="register"):
    """First frame of a follower. `identity` is its public key (its peer id is
    the key's hash) and `signature` its signature over the challenge and what
    it claims (sidecar/identity.py). `seq` grows with each registration of
    the peer: a newer one replaces an older connection of the same peer, an
    older one is refused. In a keyed room it travels sealed."""

    peer: SignalPeer
    room: RoomName
    identity: Token
    signature: Token
    v: Count = PROTOCOL_VERSION
    seq: Count = 0


class Registered(_Signal, tag="registered"):
    leader_id: PeerId
    term: Term
    peers: Annotated[list[SignalPeer], Meta(max_length=MAX_MEMBERS)]


class PeerList(_Signal, tag="peer_list"):
    leader_id: PeerId
    term: Term
    peers: Annotated[list[SignalPeer], Meta(max_length=MAX_MEMBERS)]


SdpText = Annotated[str, Meta(max_length=64 * 1024)]


class Offer(_Signal, tag="offer"):
    """A new transport for the data channel `link` (`epoch` 1: a new channel;
    higher: a replacement transport of the same channel). In a keyed room
    `auth` is the MAC of the SDP that the receiving peer checks itself."""

    from_: PeerId = field(name="from")
    to: PeerId
    sdp: SdpText
    link: LinkId
    epoch: Epoch
    auth: Token | None = None


class Answer(_Signal, tag="answer"):
    from_: PeerId = field(name="from")
    to: PeerId
    sdp: SdpText
    link: LinkId
    epoch: Epoch
    auth: Token | None = None


class Candidate(_Signal, tag="candidate"):
    from_: PeerId = field(name="from")
    to: PeerId
    candidate: Annotated[str, Meta(max_length=1024)] | None
    sdp_mid: Annotated[str, Meta(max_length=64)] | None = None
    sdp_mline_index: Annotated[int, Meta(ge=0, le=1024)] | None = None
    link: LinkId | None = None
    epoch: Epoch | None = None
    auth: Token | None = None


class Relay(_Signal, tag="relay"):
    """One data-channel message of the channel `link` carried through the
    leader, for a web peer whose direct path did not open: the transport
    `epoch` is a relay one (an `offer` and `answer` whose SDP is `relay`)."""

    from_: PeerId = field(name="from")
    to: PeerId
    link: LinkId
    epoch: Epoch
    data: Annotated[str, Meta(max_length=MAX_PAYLOAD_BYTES + 4096)]


PeerSignal = Offer | Answer | Candidate | Relay
"""What peers send one another through the leader."""

RELAY_SDP = "relay"
"""The SDP of an offer or answer for a transport carried through the leader."""


class Heartbeat(_Signal, tag="heartbeat"):
    seq: Count
    term: Term


class HeartbeatAck(_Signal, tag="heartbeat_ack"):
    seq: Count
    term: Term


class Leave(_Signal, tag="leave"):
    peer_id: PeerId


class SignalError(_Signal, tag="error"):
    code: Annotated[str, Meta(max_length=64)]
    message: Annotated[str, Meta(max_length=1024)]


class Sealed(_Signal, tag="sealed"):
    """A frame of a keyed room's session (sidecar/roomkey.py): `body` is the
    frame's own JSON text, `seq` its number in this direction, `mac` its MAC
    under the session key. The client's first frame carries its `nonce`."""

    seq: Count
    body: Annotated[str, Meta(max_length=256 * 1024)]
    mac: Token
    nonce: Token | None = None


class Query(_Signal, tag="query"):
    """Instead of `register`: what does this peer know of the room? Any peer
    answers (`room_info`, then it closes), leader or not; in a keyed room the
    query travels sealed, so only members get an answer."""

    room: RoomName
    v: Count = PROTOCOL_VERSION


MAX_ROOM_INFO = 16


class RoomInfo(_Signal, tag="room_info"):
    """The answer to `query`: the answering peer's record, then its leader's
    (and, from a leader, its members'), at most MAX_ROOM_INFO."""

    records: Annotated[list[PeerRecord], Meta(max_length=MAX_ROOM_INFO)]


class PairHello(_Signal, tag="pair_hello"):
    """Instead of `register`, from a device without the room key: the first
    CPace message (sidecar/pairing.py). Never sealed."""

    room: RoomName
    share: Share
    nonce: Token
    v: Count = PROTOCOL_VERSION


class PairReply(_Signal, tag="pair_reply"):
    share: Share
    tag: PairTag


class PairConfirm(_Signal, tag="pair_confirm"):
    tag: PairTag


class PairKey(_Signal, tag="pair_key"):
    """The room key, sealed under the exchange's key; then the server closes."""

    sealed: Annotated[str, Meta(max_length=2048, pattern=r"^[A-Za-z0-9_-]+$")]


class Rekey(_Signal, tag="rekey"):
    """A member rotates the room key: to the leader, which sends it to every
    member. Always sealed (only keyed rooms have a key to rotate)."""

    room_key: RoomKey


SignalMessage = (
    Challenge
    | PairHello
    | PairReply
    | PairConfirm
    | PairKey
    | Rekey
    | Query
    | RoomInfo
    | Register
    | Registered
    | PeerList
    | Offer
    | Answer
    | Candidate
    | Relay
    | Heartbeat
    | HeartbeatAck
    | Leave
    | SignalError
    | Sealed
)


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


# ------------------------------------------------------------- data channel
# Envelopes on the `live-control` channel, tagged by "type".


class _Envelope(_Wire, tag_field="type"):
    pass


class ControlEnvelope(_Envelope, tag="control"):
    """A control message. `echo`: it is itself an echo (never echoed again)."""

    id: Annotated[str, Meta(min_length=1, max_length=64)]
    from_: PeerId = field(name="from")
    sent_at: Millis
    payload: Any
    echo: bool = False
    retain: Retained | None = None
    """The payload is also the value of this key, as of this version."""


class Retained(_Wire):
    key: StateKey
    version: StateVersion


class StateEnvelope(_Envelope, tag="state"):
    """Retained state: the sender's whole map (first on a new channel, in
    several messages when large) or keys it learned since. Counted in the
    send window like control messages."""

    entries: Annotated[list[StateEntry], Meta(max_length=MAX_STATE_ENTRIES)]


class PingEnvelope(_Envelope, tag="ping"):
    seq: Count
    sent_at: Millis


class PongEnvelope(_Envelope, tag="pong"):
    """`busy`: the receiver's host is not reading; its acks are held back."""

    seq: Count
    sent_at: Millis
    busy: bool = False


class ByeEnvelope(_Envelope, tag="bye"):
    """Sent before closing on purpose, so the other side reports `left`."""


class AckEnvelope(_Envelope, tag="ack"):
    """Flow control (sidecar/flow.py): the receiver has taken the first `count`
    control messages of this channel."""

    count: Count


class SyncEnvelope(_Envelope, tag="sync"):
    """First message on every transport of a channel (sidecar/delivery.py): the
    sender has taken the first `received` control messages of the channel."""

    received: Count


Envelope = (
    ControlEnvelope
    | StateEnvelope
    | PingEnvelope
    | PongEnvelope
    | ByeEnvelope
    | AckEnvelope
    | SyncEnvelope
)


# ------------------------------------------------------------------ decoding


class ParamError(ValueError):
    """A message failed validation; `field` names where, `reason` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def as_data(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


_AT_PATH = re.compile(r"^(?P<reason>.*) - at `\$(?P<path>[^`]*)`$")
_NAMED_FIELD = re.compile(r"field `(?P<field>[^`]+)`")
_OWN_RULE = re.compile(r"^(?P<field>[a-z_]+(?:\[[0-9]+\])?): (?P<reason>.+)$")


def param_error_from(exc: msgspec.ValidationError) -> ParamError:
    """Turn msgspec's message into (field, reason), whatever form it took."""
    text = str(exc)
    if m := _AT_PATH.match(text):
        path = m["path"].lstrip(".") or "params"
        reason = m["reason"]
        if f := _NAMED_FIELD.search(reason):  # missing/unknown field inside a nested object
            path = f"{path}.{f['field']}" if path != "params" else f["field"]
        return ParamError(path, reason)
    if f := _NAMED_FIELD.search(text):
        return ParamError(f["field"], text)
    if m := _OWN_RULE.match(text):
        return ParamError(m["field"], m["reason"])
    return ParamError("params", text)


T = TypeVar("T")


def convert_params(params: object, into: type[T]) -> T:
    """Validate already-decoded JSON against a Struct, raising ParamError."""
    if params is None or params == []:
        params = {}
    if not isinstance(params, dict):
        raise ParamError("params", "params are passed by name: send a JSON object")
    try:
        return msgspec.convert(params, into, strict=True)
    except msgspec.ValidationError as exc:
        raise param_error_from(exc) from None


_signal_decoder: msgspec.json.Decoder[SignalMessage] = msgspec.json.Decoder(SignalMessage)
_envelope_decoder: msgspec.json.Decoder[Envelope] = msgspec.json.Decoder(Envelope)


def decode_signal(frame: bytes | str) -> SignalMessage:
    """Decode one signaling frame; raises msgspec.DecodeError or ValidationError."""
    return _signal_decoder.decode(frame)


def decode_envelope(frame: bytes | str) -> Envelope:
    """Decode one data-channel message; raises msgspec.DecodeError or ValidationError."""
    return _envelope_decoder.decode(frame)


def payload_size(payload: Any) -> int:
    """Serialized size of a control payload, the figure the 64 KiB limit applies to."""
    return len(msgspec.json.encode(payload))
