"""The signaling frames on the wire: encoding, close codes, limits (sans I/O).

`error` codes the leader sends: not_registered, not_leader, wrong_room,
wrong_version, forbidden, id_conflict, bad_identity, bad_address, too_fast
(the refusals, each followed by a close, see `CloseCode`); spoofed,
unknown_peer, already_registered, unexpected, malformed, invalid,
unknown_type, binary (the connection stays open).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import IntEnum
from typing import TypeVar, get_args

import msgspec

from sidecar.contract import (
    Challenge,
    HeartbeatAck,
    PeerList,
    Registered,
    SignalError,
    SignalMessage,
)

log = logging.getLogger("sidecar.signaling")
_T = TypeVar("_T")

SIGNAL_PATH = "/signal"
MAX_FRAME_BYTES = 256 * 1024
HEARTBEAT_INTERVAL_S = 2.0
MISSED_LIMIT = 3
HEARTBEAT_GRACE_S = 0.5
"""Slack on top of MISSED_LIMIT intervals, so a heartbeat that is merely late still counts."""
REGISTER_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 0.5
"""Bound on each closing step (close handshake, server shutdown)."""


ConnId = int
"""Opaque connection id chosen by the adapter."""


class CloseCode(IntEnum):
    """WebSocket close codes this module uses (4000-4999 are ours)."""

    NORMAL = 1000  # the peer left
    GOING_AWAY = 1001  # the server is shutting down
    TOO_BIG = 1009  # frame over MAX_FRAME_BYTES (sent by aiohttp itself)
    STEPPED_DOWN = 4000
    NOT_REGISTERED = 4001  # message before register, or no register in time
    REPLACED = 4002  # the same peer id registered on a newer connection
    FORBIDDEN = 4003  # bad room-key proof
    HEARTBEAT_TIMEOUT = 4008
    NOT_LEADER = 4009
    REJECTED = 4010  # wrong room or version, the leader's own id, a superseded registration
    TOO_FAST = 4029  # more frames than a member ever sends


# The frames only the leader sends; a client sending one is confused.
SERVER_ONLY = (Challenge, Registered, PeerList, HeartbeatAck, SignalError)
KNOWN_TAGS = frozenset(str(t.__struct_config__.tag) for t in get_args(SignalMessage))
_encoder = msgspec.json.Encoder()


def encode_signal(msg: SignalMessage) -> str:
    """One signaling frame as text (binary frames are refused on the wire)."""
    return _encoder.encode(msg).decode()


def tag(msg: SignalMessage) -> str:
    return str(type(msg).__struct_config__.tag)


def call_safely(callback: Callable[[_T], None] | None, arg: _T) -> None:
    if callback is None:
        return
    try:
        callback(arg)
    except Exception:
        log.exception("signaling: callback %r failed", callback)
