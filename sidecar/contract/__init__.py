"""The contract: every message the sidecar reads or writes, as msgspec Structs.

These Structs are the single definition of the wire formats, split by audience:
`api` (the stdio JSON-RPC API, docs/api.md), `signaling` (the frames between
peers and the leader, docs/protocol.md "Signaling"), `records` (what a peer
announces and how the leader lists it), `envelopes` (the `live-control` data
channel), on the scalar types and limits of `base`; `targets` parses a
rendezvous address. The JSON Schema, docs/openrpc.json and the TypeScript types
are generated from them (sidecar/host/schema.py), never written by hand.

Importing this package loads msgspec and the standard library, nothing else.
"""

from __future__ import annotations

from sidecar.contract.api import (
    ICE_URL as ICE_URL,
)
from sidecar.contract.api import (
    NOTIFICATIONS as NOTIFICATIONS,
)
from sidecar.contract.api import (
    ConnectedParams as ConnectedParams,
)
from sidecar.contract.api import (
    DisconnectedParams as DisconnectedParams,
)
from sidecar.contract.api import (
    IceServer as IceServer,
)
from sidecar.contract.api import (
    LeaderChangedParams as LeaderChangedParams,
)
from sidecar.contract.api import (
    LeaderStatus as LeaderStatus,
)
from sidecar.contract.api import (
    MessageParams as MessageParams,
)
from sidecar.contract.api import (
    NetworkChangedParams as NetworkChangedParams,
)
from sidecar.contract.api import (
    NoParams as NoParams,
)
from sidecar.contract.api import (
    OpenPairingParams as OpenPairingParams,
)
from sidecar.contract.api import (
    PairedParams as PairedParams,
)
from sidecar.contract.api import (
    PairingParams as PairingParams,
)
from sidecar.contract.api import (
    PairingWindow as PairingWindow,
)
from sidecar.contract.api import (
    PeerInfo as PeerInfo,
)
from sidecar.contract.api import (
    PeerListChangedParams as PeerListChangedParams,
)
from sidecar.contract.api import (
    PingPeerParams as PingPeerParams,
)
from sidecar.contract.api import (
    PingResult as PingResult,
)
from sidecar.contract.api import (
    RendezvousStatus as RendezvousStatus,
)
from sidecar.contract.api import (
    RoomKeyParams as RoomKeyParams,
)
from sidecar.contract.api import (
    RotateRoomKeyParams as RotateRoomKeyParams,
)
from sidecar.contract.api import (
    RotationResult as RotationResult,
)
from sidecar.contract.api import (
    SendControlMessageParams as SendControlMessageParams,
)
from sidecar.contract.api import (
    SendResult as SendResult,
)
from sidecar.contract.api import (
    StartPeerParams as StartPeerParams,
)
from sidecar.contract.api import (
    ice_url_problem as ice_url_problem,
)
from sidecar.contract.base import (
    MAX_ADDRESSES as MAX_ADDRESSES,
)
from sidecar.contract.base import (
    MAX_MEMBERS as MAX_MEMBERS,
)
from sidecar.contract.base import (
    MAX_PAYLOAD_BYTES as MAX_PAYLOAD_BYTES,
)
from sidecar.contract.base import (
    MAX_STATE_ENTRIES as MAX_STATE_ENTRIES,
)
from sidecar.contract.base import (
    PROTOCOL_VERSION as PROTOCOL_VERSION,
)
from sidecar.contract.base import (
    ROOM_MAX_BYTES as ROOM_MAX_BYTES,
)
from sidecar.contract.base import (
    SAFE_INT_MAX as SAFE_INT_MAX,
)
from sidecar.contract.base import (
    ChannelPath as ChannelPath,
)
from sidecar.contract.base import (
    ConnectionState as ConnectionState,
)
from sidecar.contract.base import (
    Count as Count,
)
from sidecar.contract.base import (
    DisconnectReason as DisconnectReason,
)
from sidecar.contract.base import (
    DisplayClass as DisplayClass,
)
from sidecar.contract.base import (
    Epoch as Epoch,
)
from sidecar.contract.base import (
    FoundBy as FoundBy,
)
from sidecar.contract.base import (
    IceTransportPolicy as IceTransportPolicy,
)
from sidecar.contract.base import (
    IPv4Address as IPv4Address,
)
from sidecar.contract.base import (
    LeaderState as LeaderState,
)
from sidecar.contract.base import (
    LinkId as LinkId,
)
from sidecar.contract.base import (
    MeshPolicy as MeshPolicy,
)
from sidecar.contract.base import (
    Millis as Millis,
)
from sidecar.contract.base import (
    PairingCode as PairingCode,
)
from sidecar.contract.base import (
    PairingReason as PairingReason,
)
from sidecar.contract.base import (
    PairingState as PairingState,
)
from sidecar.contract.base import (
    PairTag as PairTag,
)
from sidecar.contract.base import (
    ParamError as ParamError,
)
from sidecar.contract.base import (
    PeerId as PeerId,
)
from sidecar.contract.base import (
    PeerName as PeerName,
)
from sidecar.contract.base import (
    PeerType as PeerType,
)
from sidecar.contract.base import (
    Port as Port,
)
from sidecar.contract.base import (
    RendezvousState as RendezvousState,
)
from sidecar.contract.base import (
    RendezvousTarget as RendezvousTarget,
)
from sidecar.contract.base import (
    Role as Role,
)
from sidecar.contract.base import (
    RoomKey as RoomKey,
)
from sidecar.contract.base import (
    RoomKeyReason as RoomKeyReason,
)
from sidecar.contract.base import (
    RoomName as RoomName,
)
from sidecar.contract.base import (
    Share as Share,
)
from sidecar.contract.base import (
    StateEntry as StateEntry,
)
from sidecar.contract.base import (
    StateKey as StateKey,
)
from sidecar.contract.base import (
    StateVersion as StateVersion,
)
from sidecar.contract.base import (
    Term as Term,
)
from sidecar.contract.base import (
    Token as Token,
)
from sidecar.contract.base import (
    convert_params as convert_params,
)
from sidecar.contract.base import (
    param_error_from as param_error_from,
)
from sidecar.contract.base import (
    payload_size as payload_size,
)
from sidecar.contract.envelopes import (
    AckEnvelope as AckEnvelope,
)
from sidecar.contract.envelopes import (
    ByeEnvelope as ByeEnvelope,
)
from sidecar.contract.envelopes import (
    ControlEnvelope as ControlEnvelope,
)
from sidecar.contract.envelopes import (
    Envelope as Envelope,
)
from sidecar.contract.envelopes import (
    PingEnvelope as PingEnvelope,
)
from sidecar.contract.envelopes import (
    PongEnvelope as PongEnvelope,
)
from sidecar.contract.envelopes import (
    Retained as Retained,
)
from sidecar.contract.envelopes import (
    StateEnvelope as StateEnvelope,
)
from sidecar.contract.envelopes import (
    SyncEnvelope as SyncEnvelope,
)
from sidecar.contract.envelopes import (
    decode_envelope as decode_envelope,
)
from sidecar.contract.records import (
    PeerRecord as PeerRecord,
)
from sidecar.contract.records import (
    SignalPeer as SignalPeer,
)
from sidecar.contract.signaling import (
    MAX_REVOKED as MAX_REVOKED,
)
from sidecar.contract.signaling import (
    MAX_ROOM_INFO as MAX_ROOM_INFO,
)
from sidecar.contract.signaling import (
    RELAY_BOX_CHARS as RELAY_BOX_CHARS,
)
from sidecar.contract.signaling import (
    RELAY_SDP as RELAY_SDP,
)
from sidecar.contract.signaling import (
    Answer as Answer,
)
from sidecar.contract.signaling import (
    Candidate as Candidate,
)
from sidecar.contract.signaling import (
    Challenge as Challenge,
)
from sidecar.contract.signaling import (
    Heartbeat as Heartbeat,
)
from sidecar.contract.signaling import (
    HeartbeatAck as HeartbeatAck,
)
from sidecar.contract.signaling import (
    Leave as Leave,
)
from sidecar.contract.signaling import (
    Offer as Offer,
)
from sidecar.contract.signaling import (
    PairConfirm as PairConfirm,
)
from sidecar.contract.signaling import (
    PairHello as PairHello,
)
from sidecar.contract.signaling import (
    PairKey as PairKey,
)
from sidecar.contract.signaling import (
    PairReply as PairReply,
)
from sidecar.contract.signaling import (
    PeerList as PeerList,
)
from sidecar.contract.signaling import (
    PeerSignal as PeerSignal,
)
from sidecar.contract.signaling import (
    Query as Query,
)
from sidecar.contract.signaling import (
    Register as Register,
)
from sidecar.contract.signaling import (
    Registered as Registered,
)
from sidecar.contract.signaling import (
    Rekey as Rekey,
)
from sidecar.contract.signaling import (
    Rekeyed as Rekeyed,
)
from sidecar.contract.signaling import (
    Relay as Relay,
)
from sidecar.contract.signaling import (
    RelayShare as RelayShare,
)
from sidecar.contract.signaling import (
    RoomInfo as RoomInfo,
)
from sidecar.contract.signaling import (
    SdpText as SdpText,
)
from sidecar.contract.signaling import (
    Sealed as Sealed,
)
from sidecar.contract.signaling import (
    SignalError as SignalError,
)
from sidecar.contract.signaling import (
    SignalMessage as SignalMessage,
)
from sidecar.contract.signaling import (
    decode_signal as decode_signal,
)
from sidecar.contract.targets import (
    DEFAULT_PORT as DEFAULT_PORT,
)
from sidecar.contract.targets import (
    MAX_TARGETS as MAX_TARGETS,
)
from sidecar.contract.targets import (
    Target as Target,
)
from sidecar.contract.targets import (
    parse_target as parse_target,
)
from sidecar.contract.targets import (
    parse_targets as parse_targets,
)
