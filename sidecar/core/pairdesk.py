"""A member's pairing window and the exchanges in progress on it, sans I/O.

The signaling registry hands it the `pair_hello` and `pair_confirm` frames
of connections that have not registered (sidecar/core/pairing.py has the
exchange itself). Rules: an exchange starts only while a window is open,
unexpired and has tries and uses left, and the source address has tries
left of it; each `pair_hello` costs a try (it is one guess of the code); a
confirmation that holds costs a use and sends the room key; a pairing
link's token works once; the window closes when it expires or has no tries
or uses left, and the member's host hears of every change, with the
address each try came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.contract import PairConfirm, PairHello, PairingReason, PairKey, PairReply
from sidecar.core.pairing import PairingError, Responder, Window
from sidecar.core.signaling import ConnId

MAX_EXCHANGES = 8
"""Exchanges in progress at once (a window pairs a handful of devices); one
source address has at most one in progress, so a guesser cannot hold them."""


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
    address: str | None = None
    """Where the try, or the device that paired, came from."""


class PairingDesk:
    def __init__(self, room: str) -> None:
        self._room = room
        self.window: Window | None = None
        # conn -> (the exchange, its secret's kind, where from, the window it was admitted on)
        self._exchanges: dict[ConnId, tuple[Responder, str, str, Window]] = {}

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

    def hello(
        self, conn_id: ConnId, server_nonce: str, msg: PairHello, now: float, address: str = ""
    ) -> Outcome:
        window = self.window
        why = "no pairing window is open here" if window is None else window.refusal(now)
        if msg.secret == "token" and (window is None or why is not None or window.token is None):
            return Outcome(Refusal("token_spent", "this pairing link was used or has expired"))
        if window is None or why is not None:
            return Outcome(Refusal("pairing_closed", why or "no pairing window is open here"))
        if msg.room != self._room:
            return Outcome(Refusal("wrong_room", f"this peer is not in room {msg.room!r}"))
        if window.address_spent(address):
            return Outcome(
                Refusal("too_many_tries", "this address has used its tries of the window")
            )
        busy = any(source == address for _, _, source, _ in self._exchanges.values())
        if busy or len(self._exchanges) >= MAX_EXCHANGES:
            return Outcome(Refusal("pairing_busy", "too many pairings at once; try again"))
        window.take_try(address)
        password = window.token if msg.secret == "token" and window.token else window.code
        try:
            responder = Responder(password, self._room, server_nonce, msg.nonce)
            share, tag = responder.hello(msg.share)
        except (PairingError, ValueError) as exc:
            refused = Refusal("invalid", f"bad pairing share: {exc}")
            return self._spent(Outcome(refused, "tried", address))
        self._exchanges[conn_id] = (responder, msg.secret, address, window)
        return self._spent(Outcome(PairReply(share=share, tag=tag), "tried", address))

    def confirm(
        self, conn_id: ConnId, msg: PairConfirm, room_key: str, address: str = ""
    ) -> Outcome:
        """An exchange admitted while the window was open completes even if its
        try was the window's last (the window closed for new ones only), but
        never beyond the window's uses, and a token pairs once: of two exchanges
        admitted at once, the second to confirm is refused."""
        exchange = self._exchanges.pop(conn_id, None)
        if exchange is None:
            return Outcome(Refusal("unexpected", "pair_confirm without a pair_hello"))
        responder, secret, _, window = exchange
        if window.uses_left <= 0:
            return Outcome(Refusal("pairing_closed", "the pairing window has no use left"))
        if secret == "token" and window.token is None:
            return Outcome(Refusal("token_spent", "this pairing link was used or has expired"))
        try:
            sealed = responder.confirm(msg.tag, room_key)
        except PairingError as exc:
            return Outcome(Refusal(exc.code, str(exc)))
        window.paired()
        if secret == "token":
            window.token = None  # a pairing link works once
        outcome = Outcome(PairKey(sealed=sealed), "paired", address)
        return self._spent(outcome) if window is self.window else outcome

    def forget(self, conn_id: ConnId) -> None:
        self._exchanges.pop(conn_id, None)

    def _spent(self, outcome: Outcome) -> Outcome:
        """A window with no tries or uses left closes (the host hears `exhausted`)."""
        window = self.window
        if window is not None and window.spent:
            self.window = None
            reason: PairingReason = "paired" if outcome.update == "paired" else "exhausted"
            return Outcome(outcome.reply, reason, outcome.address)
        return outcome
