"""Pairing with a member's signaling server: the new device's side of the
exchange of sidecar/core/pairing.py, over one WebSocket (docs/protocol.md,
"Pairing"). A member without an open window refuses at once; a wrong code is
refused after the member's confirmation fails to hold."""

from __future__ import annotations

import aiohttp

from sidecar.contract import (
    Challenge,
    PairConfirm,
    PairHello,
    PairKey,
    PairReply,
    SignalError,
)
from sidecar.core.pairing import Initiator, PairingError, Secret
from sidecar.core.roomkey import new_nonce
from sidecar.core.signaling import (
    encode_signal,
    tag,
)
from sidecar.net.signaling.query import QueryFailed, exchange_with, next_frame


class PairFailed(Exception):
    """`final`: this member refused the code for good (wrong, a link already
    used, or too many tries from here): asking it again will not help."""

    def __init__(self, reason: str, final: bool = False) -> None:
        super().__init__(reason)
        self.final = final


async def pair_with(address: str, port: int, room: str, secret: Secret, timeout: float) -> str:
    """The room key, from the member at `address:port`; raises PairFailed."""
    try:
        return await exchange_with(address, port, timeout, lambda ws: _exchange(ws, room, secret))
    except QueryFailed as exc:
        raise PairFailed(str(exc)) from None


async def _exchange(ws: aiohttp.ClientWebSocketResponse, room: str, secret: Secret) -> str:
    challenge = await next_frame(ws)
    if not isinstance(challenge, Challenge):
        raise PairFailed(f"expected a challenge, got {tag(challenge)}")
    nonce = new_nonce()
    me = Initiator(secret.value, room, challenge.nonce, nonce)
    hello = PairHello(room=room, share=me.share, nonce=nonce, secret=secret.kind)
    await ws.send_str(encode_signal(hello))
    reply = await next_frame(ws)
    _refused(reply)
    if not isinstance(reply, PairReply):
        raise PairFailed(f"expected pair_reply, got {tag(reply)}")
    try:
        confirm = me.reply(reply.share, reply.tag)
    except PairingError as exc:
        raise PairFailed(str(exc), final=exc.code == "wrong_code") from None
    await ws.send_str(encode_signal(PairConfirm(tag=confirm)))
    sealed = await next_frame(ws)
    _refused(sealed)
    if not isinstance(sealed, PairKey):
        raise PairFailed(f"expected pair_key, got {tag(sealed)}")
    try:
        return me.room_key(sealed.sealed)
    except PairingError as exc:
        raise PairFailed(str(exc)) from None


def _refused(msg: object) -> None:
    if isinstance(msg, SignalError):
        final = msg.code in ("wrong_code", "token_spent", "too_many_tries")
        raise PairFailed(f"{msg.code}: {msg.message}", final=final)
