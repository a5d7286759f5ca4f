"""The signaling frames (docs/protocol.md, "Signaling"): on the leader's
WebSocket, tagged by "type"."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, field

from sidecar.contract.base import (
    MAX_MEMBERS,
    MAX_PAYLOAD_BYTES,
    PROTOCOL_VERSION,
    Count,
    Epoch,
    LinkId,
    PairTag,
    PeerId,
    RoomKey,
    RoomName,
    Share,
    Term,
    Token,
    _Wire,
)
from sidecar.contract.records import PeerRecord, SignalPeer

# ------------------------------------------------------------------ signaling
# Frames on the leader's WebSocket, tagged by "type". The leader opens with
# `challenge`; a peer that is not registered may only send `register`, whose
# `proof` (with a room key) is an HMAC-SHA256 of the nonce: the key is never sent.


class _Signal(_Wire, tag_field="type"):
    pass


class Challenge(_Signal, tag="challenge"):
    """The server's first frame: a fresh `nonce`, and `share`, its ephemeral
    X25519 public key for this connection (a keyed room's session keys)."""

    nonce: Token
    share: Token


class Register(_Signal, tag="register"):
    """First frame of a follower. `identity` is its public key (its peer id is
    the key's hash) and `signature` its signature over the challenge and what
    it claims (sidecar/core/identity.py). `seq` grows with each registration of
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


class RelayShare(_Wire):
    """In the offer and the answer of a relay transport (SDP `relay`): the
    sender's ephemeral X25519 `share`, its `identity` key (whose hash is its
    peer id) and that key's `signature` over what the share is for. The two
    peers' keys for the relayed frames come from these shares alone
    (sidecar/core/relayseal.py): the leader that carries them cannot read them."""

    share: Share
    identity: Share
    signature: Token


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
    relay: RelayShare | None = None
    """A relay transport's share (SDP `relay`), else none."""


class Answer(_Signal, tag="answer"):
    from_: PeerId = field(name="from")
    to: PeerId
    sdp: SdpText
    link: LinkId
    epoch: Epoch
    auth: Token | None = None
    relay: RelayShare | None = None


class Candidate(_Signal, tag="candidate"):
    from_: PeerId = field(name="from")
    to: PeerId
    candidate: Annotated[str, Meta(max_length=1024)] | None
    sdp_mid: Annotated[str, Meta(max_length=64)] | None = None
    sdp_mline_index: Annotated[int, Meta(ge=0, le=1024)] | None = None
    link: LinkId | None = None
    epoch: Epoch | None = None
    auth: Token | None = None


RELAY_BOX_CHARS = 4 * ((MAX_PAYLOAD_BYTES + 4096 + 16 + 2) // 3)
"""The longest sealed message a relay frame carries (base64url of the
largest envelope and its 16-byte tag)."""


class Relay(_Signal, tag="relay"):
    """One data-channel message of the channel `link` carried through the
    leader, for a web peer whose direct path did not open: the transport
    `epoch` is a relay one (an `offer` and `answer` whose SDP is `relay`).
    `data` is the message sealed end to end under the two peers' keys for
    that transport (base64url), `seq` its number in its direction."""

    from_: PeerId = field(name="from")
    to: PeerId
    link: LinkId
    epoch: Epoch
    seq: Count
    data: Annotated[str, Meta(max_length=RELAY_BOX_CHARS, pattern=r"^[A-Za-z0-9_-]*(?!\n)$")]


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
    """A frame of a keyed room's session (sidecar/core/roomkey.py): `box` is the
    frame's own JSON text encrypted and authenticated under the session key of
    its direction (base64url), `seq` its number in this direction. The
    client's first frame carries its `nonce` and its ephemeral `share`."""

    seq: Count
    box: Annotated[str, Meta(max_length=350 * 1024, pattern=r"^[A-Za-z0-9_-]*(?!\n)$")]
    nonce: Token | None = None
    share: Token | None = None


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
    CPace message (sidecar/core/pairing.py). Never sealed. `secret` says
    which password it was made with: the window's six-digit `code`, or the
    one-time `token` of a pairing link."""

    room: RoomName
    share: Share
    nonce: Token
    v: Count = PROTOCOL_VERSION
    secret: Literal["code", "token"] = "code"


class PairReply(_Signal, tag="pair_reply"):
    share: Share
    tag: PairTag


class PairConfirm(_Signal, tag="pair_confirm"):
    tag: PairTag


class PairKey(_Signal, tag="pair_key"):
    """The room key, sealed under the exchange's key; then the server closes."""

    sealed: Annotated[str, Meta(max_length=2048, pattern=r"^[A-Za-z0-9_-]+(?!\n)$")]


MAX_REVOKED = 64
"""Devices one rotation may shut out."""


class Rekey(_Signal, tag="rekey"):
    """A member rotates the room key: to the leader, which sends it to every
    member but those in `revoke`, and closes their connections. Always sealed
    (only keyed rooms have a key to rotate)."""

    room_key: RoomKey
    revoke: Annotated[list[PeerId], Meta(max_length=MAX_REVOKED)] = field(default_factory=list)
    """Devices shut out: they never hear the new key."""


class Rekeyed(_Signal, tag="rekeyed"):
    """The leader to the member that rotated: who took the new key (the leader
    and the rotating member included) and who was shut out."""

    took: Annotated[list[PeerId], Meta(max_length=MAX_MEMBERS)]
    revoked: Annotated[list[PeerId], Meta(max_length=MAX_REVOKED)]


SignalMessage = (
    Challenge
    | PairHello
    | PairReply
    | PairConfirm
    | PairKey
    | Rekey
    | Rekeyed
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


_signal_decoder: msgspec.json.Decoder[SignalMessage] = msgspec.json.Decoder(SignalMessage)


def decode_signal(frame: bytes | str) -> SignalMessage:
    """Decode one signaling frame; raises msgspec.DecodeError or ValidationError."""
    return _signal_decoder.decode(frame)
