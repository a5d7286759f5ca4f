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
    Sealed,
    SignalError,
    SignalMessage,
    decode_signal,
)
from sidecar.core.roomkey import Ephemeral, new_nonce, open_session, session_binding

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
    REVOKED = 4011  # shut out of the room by a member's rotation of the key
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


class ClientSession:
    """The client's side of a keyed room's session, frame by frame: every frame
    it sends is sealed (the first carries our nonce and ephemeral share), every
    frame it receives must open. Raises ValueError when the challenge's share is
    not one."""

    def __init__(
        self,
        room_key: str,
        room: str,
        challenge: Challenge,
        *,
        mine: Ephemeral | None = None,
        nonce: str | None = None,
    ) -> None:
        self._mine = mine or Ephemeral()
        self._nonce: str | None = nonce or new_nonce()
        self.binding = session_binding(self._nonce, challenge.share, self._mine.share)
        """This session, as the registration signed in it names it."""
        self._box = open_session(
            room_key,
            room,
            side="client",
            mine=self._mine,
            server_nonce=challenge.nonce,
            client_nonce=self._nonce,
            server_share=challenge.share,
            client_share=self._mine.share,
        )

    def frame(self, msg: SignalMessage) -> str:
        seq, box = self._box.seal(encode_signal(msg))
        first, self._nonce = self._nonce, None
        share = self._mine.share if first is not None else None
        return encode_signal(Sealed(seq=seq, box=box, nonce=first, share=share))

    def open(self, msg: SignalMessage) -> SignalMessage | None:
        """The frame inside a sealed one; None when it is not sealed with this
        session's key, not the next one, not a frame, or itself sealed."""
        if not isinstance(msg, Sealed):
            return None
        text = self._box.open(msg.seq, msg.box)
        if text is None:
            return None
        try:
            inner = decode_signal(text)
        except msgspec.DecodeError:
            return None
        return None if isinstance(inner, Sealed) else inner
