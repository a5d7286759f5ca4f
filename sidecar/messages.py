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

PROTOCOL_VERSION = 2
"""Version of the signaling and data-channel protocol, announced as TXT `v`
(2: channels carry `sync` and survive a change of transport)."""

MAX_PAYLOAD_BYTES = 64 * 1024
"""Largest control-message payload, measured as its JSON serialization."""

PeerType = Literal["controller", "display"]
DisplayClass = Literal["audience", "stage", "lobby"]
ConnectionState = Literal["new", "connecting", "connected", "disconnected", "self"]
LeaderState = Literal["idle", "offline", "discovering", "electing", "leader", "follower"]
MeshPolicy = Literal["controllers", "full"]
DisconnectReason = Literal["closed", "timeout", "failed", "left"]
Role = Literal["candidate", "leader", "follower"]

PeerId = Annotated[str, Meta(min_length=1, max_length=64, description="peer UUID")]
PeerName = Annotated[str, Meta(min_length=1, max_length=64, description="device name")]
RoomName = Annotated[str, Meta(min_length=1, max_length=64)]
ROOM_MAX_BYTES = 250
Millis = Annotated[int, Meta(ge=0, description="milliseconds since the Unix epoch")]
Port = Annotated[int, Meta(ge=0, le=65535)]
Term = Annotated[int, Meta(ge=0)]
LinkId = Annotated[str, Meta(min_length=1, max_length=64, description="data-channel id")]
Epoch = Annotated[int, Meta(ge=1, le=2**31, description="transport number of a channel")]

_IPV4 = r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$"
IPv4Address = Annotated[str, Meta(pattern=_IPV4, description="dotted-quad IPv4 address")]


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


class IceServer(_Wire):
    """A STUN or TURN server, as in the WebRTC RTCIceServer dictionary."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


# --------------------------------------------------------------- method params


class StartPeerParams(_Wire):
    name: PeerName
    peer_type: PeerType
    display_class: DisplayClass | None = None
    signaling_port: Port = 3010
    room: RoomName = "default"
    room_key: Annotated[str, Meta(min_length=1, max_length=1024)] | None = None
    mesh: MeshPolicy = "controllers"
    echo: bool = False
    ice_servers: list[IceServer] = field(default_factory=list)
    interfaces: list[IPv4Address] | None = None

    def __post_init__(self) -> None:
        # Cross-field rules; the "field: reason" form is what ParamError parses.
        if self.peer_type == "display" and self.display_class is None:
            raise ValueError("display_class: required when peer_type is display")
        if self.peer_type == "controller" and self.display_class is not None:
            raise ValueError("display_class: must be absent or null for a controller")
        if any(ch < " " for ch in self.name):
            raise ValueError("name: must not contain control characters")
        if len(self.room.encode()) > ROOM_MAX_BYTES:
            # It travels in one TXT string ("room=…", 255 bytes at most).
            raise ValueError(f"room: longer than {ROOM_MAX_BYTES} bytes as UTF-8")


class SendControlMessageParams(_Wire):
    payload: Any
    to: PeerId | list[PeerId] | None = None
    display_class: DisplayClass | None = None


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


NOTIFICATIONS: dict[str, type[Struct]] = {
    "webrtc:connected": ConnectedParams,
    "webrtc:disconnected": DisconnectedParams,
    "webrtc:message": MessageParams,
    "webrtc:leader_changed": LeaderChangedParams,
    "webrtc:peer_list_changed": PeerListChangedParams,
    "webrtc:network_changed": NetworkChangedParams,
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
    addresses: list[IPv4Address] = field(default_factory=list)
    port: Port = 0


class Challenge(_Signal, tag="challenge"):
    nonce: str


class Register(_Signal, tag="register"):
    """First frame of a follower. With a room key, `proof` answers the
    challenge and `client_nonce` asks the leader to prove the key in turn.
    `seq` grows with each registration of the peer: a newer one replaces an
    older connection of the same peer, an older one is refused."""

    peer: SignalPeer
    room: RoomName
    v: int = PROTOCOL_VERSION
    proof: str | None = None
    client_nonce: str | None = None
    seq: Annotated[int, Meta(ge=0, le=2**53 - 1)] = 0


class Registered(_Signal, tag="registered"):
    leader_id: PeerId
    term: Term
    peers: list[SignalPeer]
    proof: str | None = None


class PeerList(_Signal, tag="peer_list"):
    leader_id: PeerId
    term: Term
    peers: list[SignalPeer]


class Offer(_Signal, tag="offer"):
    """A new transport for the data channel `link` (`epoch` 1: a new channel;
    higher: a replacement transport of the same channel)."""

    from_: PeerId = field(name="from")
    to: PeerId
    sdp: str
    link: LinkId
    epoch: Epoch


class Answer(_Signal, tag="answer"):
    from_: PeerId = field(name="from")
    to: PeerId
    sdp: str
    link: LinkId
    epoch: Epoch


class Candidate(_Signal, tag="candidate"):
    from_: PeerId = field(name="from")
    to: PeerId
    candidate: str | None
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    link: LinkId | None = None
    epoch: Epoch | None = None


class Heartbeat(_Signal, tag="heartbeat"):
    seq: int
    term: Term


class HeartbeatAck(_Signal, tag="heartbeat_ack"):
    seq: int
    term: Term


class Leave(_Signal, tag="leave"):
    peer_id: PeerId


class SignalError(_Signal, tag="error"):
    code: str
    message: str


SignalMessage = (
    Challenge
    | Register
    | Registered
    | PeerList
    | Offer
    | Answer
    | Candidate
    | Heartbeat
    | HeartbeatAck
    | Leave
    | SignalError
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
    leader_id: str | None
    term: Term
    room: RoomName
    v: int = PROTOCOL_VERSION
    addresses: tuple[IPv4Address, ...] = ()
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
    id: str
    from_: PeerId = field(name="from")
    sent_at: Millis
    payload: Any


class PingEnvelope(_Envelope, tag="ping"):
    seq: int
    sent_at: Millis


class PongEnvelope(_Envelope, tag="pong"):
    seq: int
    sent_at: Millis


class ByeEnvelope(_Envelope, tag="bye"):
    """Sent before closing on purpose, so the other side reports `left`."""


class AckEnvelope(_Envelope, tag="ack"):
    """Flow control (sidecar/flow.py): the receiver has taken the first `count`
    control messages of this channel."""

    count: Annotated[int, Meta(ge=0)]


class SyncEnvelope(_Envelope, tag="sync"):
    """First message on every transport of a channel (sidecar/delivery.py): the
    sender has taken the first `received` control messages of the channel."""

    received: Annotated[int, Meta(ge=0)]


Envelope = ControlEnvelope | PingEnvelope | PongEnvelope | ByeEnvelope | AckEnvelope | SyncEnvelope


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
_OWN_RULE = re.compile(r"^(?P<field>[a-z_]+): (?P<reason>.+)$")


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
