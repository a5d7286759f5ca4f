"""A member's pairing window and the exchanges in progress on it, sans I/O.

The signaling registry hands it the `pair_hello` and `pair_confirm` frames
of connections that have not registered (sidecar/core/pairing.py has the
exchange itself). Rules: an exchange starts only while a window is open,
unexpired and has tries and uses left; each `pair_hello` costs a try (it
is one guess of the code); a confirmation that holds costs a use and
sends the room key; the window closes when it expires or has no tries or
uses left, and the member's host hears of every change.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.contract import PairConfirm, PairHello, PairingReason, PairKey, PairReply
from sidecar.core.pairing import PairingError, Responder, Window
from sidecar.core.signaling import ConnId

MAX_EXCHANGES = 4
"""Exchanges in progress at once (a window pairs a handful of devices)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to send (a frame, or a refusal that ends the connection), and
    whether the host should hear of the window (`update`: `tried` when a try
    was taken, `paired`, or `exhausted` when it closed with no try left)."""

    reply: PairReply | PairKey | Refusal
    update: PairingReason | None = None


class PairingDesk:
    def __init__(self, room: str) -> None:
        self._room = room
        self.window: Window | None = None
        self._exchanges: dict[ConnId, Responder] = {}

    def open(self, window: Window) -> None:
        """A new window (it replaces any open one)."""
        self.window = window
        self._exchanges.clear()

    def close(self) -> bool:
        """Close the window; True if one was open."""
        was_open = self.window is not None
        self.window = None
        self._exchanges.clear()
        return was_open

    def next_deadline(self) -> float | None:
        return self.window.expires_at if self.window is not None else None

    def expire(self, now: float) -> bool:
        """Close the window if its time is up; True when it just closed."""
        if self.window is not None and now >= self.window.expires_at:
            return self.close()
        return False

    def hello(self, conn_id: ConnId, server_nonce: str, msg: PairHello, now: float) -> Outcome:
        window = self.window
        if window is None:
            return Outcome(Refusal("pairing_closed", "no pairing window is open here"))
        if (why := window.refusal(now)) is not None:
            return Outcome(Refusal("pairing_closed", why))
        if msg.room != self._room:
            return Outcome(Refusal("wrong_room", f"this peer is not in room {msg.room!r}"))
        if len(self._exchanges) >= MAX_EXCHANGES:
            return Outcome(Refusal("pairing_busy", "too many pairings at once; try again"))
        window.take_try()
        try:
            responder = Responder(window.code, self._room, server_nonce, msg.nonce)
            share, tag = responder.hello(msg.share)
        except (PairingError, ValueError) as exc:
            return self._spent(Outcome(Refusal("invalid", f"bad pairing share: {exc}"), "tried"))
        self._exchanges[conn_id] = responder
        return self._spent(Outcome(PairReply(share=share, tag=tag), "tried"))

    def confirm(self, conn_id: ConnId, msg: PairConfirm, room_key: str) -> Outcome:
        """An exchange admitted while the window was open completes even if its
        try was the window's last (the window closed for new ones only)."""
        responder = self._exchanges.pop(conn_id, None)
        if responder is None:
            return Outcome(Refusal("unexpected", "pair_confirm without a pair_hello"))
        window = self.window
        if window is not None and window.uses_left <= 0:
            return Outcome(Refusal("pairing_closed", "the pairing window has no use left"))
        try:
            sealed = responder.confirm(msg.tag, room_key)
        except PairingError as exc:
            return Outcome(Refusal(exc.code, str(exc)))
        if window is None:
            return Outcome(PairKey(sealed=sealed), "paired")
        window.paired()
        return self._spent(Outcome(PairKey(sealed=sealed), "paired"))

    def forget(self, conn_id: ConnId) -> None:
        self._exchanges.pop(conn_id, None)

    def _spent(self, outcome: Outcome) -> Outcome:
        """A window with no tries or uses left closes (the host hears `exhausted`)."""
        window = self.window
        if window is not None and window.spent:
            self.window = None
            reason: PairingReason = "paired" if outcome.update == "paired" else "exhausted"
            return Outcome(outcome.reply, reason)
        return outcome
