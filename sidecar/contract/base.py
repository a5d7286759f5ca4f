"""The scalar types, limits and base Struct every message is built from, and
the helpers that validate them (part of `sidecar.contract`)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

PROTOCOL_VERSION = 4
"""Version of the signaling and data-channel protocol, announced as TXT `v`
(2: channels carry `sync` and survive a change of transport; 3: they carry
the room's retained state; 4: keyed sessions are encrypted under keys of an
ephemeral exchange, and the room key is stretched)."""


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
        pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?(?!\n)$",
        description="host[:port]: an IPv4 address or a host name, port 3010 by default",
    ),
]
DisconnectReason = Literal["closed", "timeout", "failed", "left", "revoked"]
Role = Literal["candidate", "leader", "follower"]

SAFE_INT_MAX = 2**53 - 1
"""Every integer on the wire and in the API fits a JavaScript number exactly."""
# Every pattern ends in `(?!\n)$`: Python's `$` also matches before a final
# newline (msgspec checks with re.search), JavaScript's does not; so both refuse
# "id\n" alike (the web peer checks envelopes against the same schema).
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*(?!\n)$"
PeerId = Annotated[
    str,
    Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+(?!\n)$", description="peer UUID"),
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
    str,
    Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+(?!\n)$", description="channel id"),
]
Epoch = Annotated[int, Meta(ge=1, le=2**31, description="transport number of a channel")]
Token = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+(?!\n)$")]
"""Nonces, MACs, keys and signatures: short, plain ASCII."""
MAX_ADDRESSES = 8
"""Addresses one peer may list: a device has a handful of interfaces."""
MAX_MEMBERS = 256
"""Peers one peer list may name."""

_IPV4 = r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}(?!\n)$"
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
PairingCode = Annotated[str, Meta(pattern=r"^[0-9]{6}(?!\n)$", description="six digits")]
PairingToken = Annotated[
    str,
    Meta(
        min_length=22,
        max_length=22,
        pattern=r"^[A-Za-z0-9_-]+(?!\n)$",
        description="a pairing link's one-time secret (128 bits, base64url)",
    ),
]
Share = Annotated[str, Meta(min_length=43, max_length=43, pattern=r"^[A-Za-z0-9_-]+(?!\n)$")]
"""A CPace share: 32 bytes, base64url without padding."""
PairTag = Annotated[str, Meta(min_length=86, max_length=86, pattern=r"^[A-Za-z0-9_-]+(?!\n)$")]
"""A CPace confirmation tag: 64 bytes, base64url without padding."""
PairingState = Literal["open", "closed"]
PairingReason = Literal["opened", "tried", "paired", "expired", "exhausted", "closed"]
RoomKeyReason = Literal["created", "rotated"]
MAX_STATE_ENTRIES = 2048
"""Entries one `state` message may carry (keys and cleared keys of a full room)."""


class _Wire(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=False):
    """Base of every message: fields by name, unknown fields rejected."""


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


def payload_size(payload: Any) -> int:
    """Serialized size of a control payload, the figure the 64 KiB limit applies to."""
    return len(msgspec.json.encode(payload))
