"""Pairing a new device into a keyed room with a short code, sans I/O.

A keyed room's secret is a long random key (ROOM_KEY_BYTES, 256 bits) that
nobody types. A member opens a pairing window: a six-digit code, valid a few
minutes, for a few tries. The new device, given the code, runs a
password-authenticated key exchange with that member and receives the room
key under the exchange's session key.

The exchange is CPace (draft-irtf-cfrg-cpace, suite CPACE-X25519-SHA512,
initiator-responder with explicit mutual confirmation), as the `cpace`
package implements it on the `cryptography` package's X25519:

    new device (A)                                   member (B)
                      <- challenge {nonce_b}
    pair_hello {share Ya, nonce_a} ->
                                                   derive ISK; Tb
                      <- pair_reply {share Yb, tag Tb}
    derive ISK, check Tb;
    pair_confirm {tag Ta} ->
                                                   check Ta
                      <- pair_key {sealed room key}

with sid = "<nonce_b>|<nonce_a>", CI = "mw-pair|1|<room>", the code as the
password. The room key travels under ChaCha20-Poly1305 with a key derived
from the ISK (WRAP_LABEL), once per exchange (a zero nonce), the CI as
associated data.

Why a captured exchange gives an eavesdropper nothing to test guesses
against: every value in it is either random (the nonces), a share
Y = y·G(code) with y a fresh secret scalar, or a MAC or ciphertext under
keys derived from ISK = H(sid, y_a·y_b·G(code), transcript). For a guess c,
the eavesdropper can compute G(c), but relating it to Ya or Yb needs a
discrete logarithm (or the Diffie-Hellman value y_a·y_b·G, which needs one
of the scalars): no value of the transcript is computable from the code
and the public parts alone, so there is nothing to compare a guess with.
An active guesser commits to one guess per `pair_hello` (its share fixes
the generator it used), so a window bounds it to MAX_TRIES guesses in all
(a chance of 10 in a million), and one address to MAX_TRIES_PER_ADDRESS: a
device guessing from one address cannot use up the window of a device
pairing from another.

A window also has a one-time `token` (128 random bits) that stands in for
the code in a pairing link (a QR code): the same exchange with the token as
the password; it is spent on its first use and dies with its window.
tests/unit/test_pairing.py checks the transcript against the values a
guesser can compute from the true code.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from cpace import CPace, CPaceError, CPaceRole
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

CODE_DIGITS = 6
ROOM_KEY_BYTES = 32
MAX_TRIES = 10
"""`pair_hello`s a window takes (each is one guess of the code), then it closes."""
MAX_TRIES_PER_ADDRESS = 3
"""`pair_hello`s a window takes from one source address; that address is then
refused (`too_many_tries`) while the window stays open for others."""
TOKEN_BYTES = 16
WINDOW_S = 120.0
MIN_WINDOW_S, MAX_WINDOW_S = 30.0, 600.0
MAX_USES = 8
"""Devices one window may pair (the host asks for 1 by default)."""
WRAP_LABEL = b"mw-pair-wrap"
_ZERO_NONCE = bytes(12)


class PairingError(Exception):
    """The exchange failed; `code` is `wrong_code` (the confirmation did not
    hold) or `protocol` (a malformed share or message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def new_room_key() -> str:
    """A fresh room key: 256 random bits, base64url without padding (43 characters)."""
    return b64(secrets.token_bytes(ROOM_KEY_BYTES))


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_token() -> str:
    """A pairing link's one-time secret: 128 random bits, base64url (22 characters)."""
    return b64(secrets.token_bytes(TOKEN_BYTES))


def channel_id(room: str) -> bytes:
    return b"mw-pair|1|" + room.encode()


def session_id(server_nonce: str, client_nonce: str) -> bytes:
    """CPace's sid: both sides' nonces (ASCII tokens), so no run repeats another's."""
    return f"{server_nonce}|{client_nonce}".encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise PairingError("protocol", "not base64url") from None


def wrap_key(isk: bytes) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(hashlib.sha512(WRAP_LABEL + isk).digest()[:32])


# ----------------------------------------------------------------- the window


@dataclass(frozen=True, slots=True)
class Secret:
    """What a new device pairs with: the six-digit `code` a member shows, or
    the `token` of its pairing link (the exchange's password either way)."""

    kind: Literal["code", "token"]
    value: str


@dataclass
class Window:
    """A member's open pairing window."""

    code: str
    expires_at: float
    tries_left: int = MAX_TRIES
    uses_left: int = 1
    token: str | None = None
    """The pairing link's secret until it is used (None: spent, or none made)."""
    tries_by: dict[str, int] = field(default_factory=dict)
    """Tries taken per source address (at most MAX_TRIES entries)."""

    def refusal(self, now: float) -> str | None:
        """Why a new exchange cannot start now, or None (it then costs a try)."""
        if now >= self.expires_at:
            return "the pairing window has expired"
        if self.tries_left <= 0 or self.uses_left <= 0:
            return "the pairing window is closed"
        return None

    def address_spent(self, address: str) -> bool:
        """This address took all the tries it may of this window."""
        return self.tries_by.get(address, 0) >= MAX_TRIES_PER_ADDRESS

    def take_try(self, address: str = "") -> None:
        self.tries_left -= 1
        self.tries_by[address] = self.tries_by.get(address, 0) + 1

    def paired(self) -> None:
        self.uses_left -= 1

    @property
    def spent(self) -> bool:
        return self.tries_left <= 0 or self.uses_left <= 0


# ---------------------------------------------------------------- the sides


StartCPace = Callable[[CPaceRole, bytes, bytes, bytes], CPace]
"""Starts one side of a CPace run from (role, prs, sid, ci). The default draws a
fresh scalar; test vectors pass one that uses a fixed scalar
(sidecar/compat/pake.py)."""


def _fresh(role: CPaceRole, prs: bytes, sid: bytes, ci: bytes) -> CPace:
    return CPace.start(role=role, prs=prs, sid=sid, ci=ci)


def _start(
    role: CPaceRole, code: str, room: str, server_nonce: str, client_nonce: str,
    start: StartCPace,
) -> CPace:  # fmt: skip
    return start(role, code.encode(), session_id(server_nonce, client_nonce), channel_id(room))


class Responder:
    """The member's side of one exchange (`start`: see StartCPace)."""

    def __init__(
        self, code: str, room: str, server_nonce: str, client_nonce: str,
        start: StartCPace = _fresh,
    ) -> None:  # fmt: skip
        self._room = room
        self._cpace = _start(CPaceRole.RESPONDER, code, room, server_nonce, client_nonce, start)

    def hello(self, share_a: str) -> tuple[str, str]:
        """The new device's share: ours and our confirmation tag."""
        try:
            self._cpace.derive(unb64(share_a))
        except CPaceError as exc:
            raise PairingError("protocol", str(exc)) from None
        return b64(self._cpace.public_share), b64(self._cpace.tag())

    def confirm(self, tag_a: str, room_key: str) -> str:
        """The new device's tag; when it holds, the room key sealed for it."""
        if not self._cpace.verify(unb64(tag_a)):
            raise PairingError("wrong_code", "the confirmation does not hold: wrong code")
        sealed = wrap_key(self._cpace.isk).encrypt(
            _ZERO_NONCE, room_key.encode(), channel_id(self._room)
        )
        return b64(sealed)


class Initiator:
    """The new device's side of one exchange (`start`: see StartCPace)."""

    def __init__(
        self, code: str, room: str, server_nonce: str, client_nonce: str,
        start: StartCPace = _fresh,
    ) -> None:  # fmt: skip
        self._room = room
        self._cpace = _start(CPaceRole.INITIATOR, code, room, server_nonce, client_nonce, start)

    @property
    def share(self) -> str:
        return b64(self._cpace.public_share)

    def reply(self, share_b: str, tag_b: str) -> str:
        """The member's share and tag: our tag when the member knows the code."""
        try:
            self._cpace.derive(unb64(share_b))
        except CPaceError as exc:
            raise PairingError("protocol", str(exc)) from None
        if not self._cpace.verify(unb64(tag_b)):
            raise PairingError("wrong_code", "the member's confirmation does not hold: wrong code")
        return b64(self._cpace.tag())

    def room_key(self, sealed: str) -> str:
        try:
            plain = wrap_key(self._cpace.isk).decrypt(
                _ZERO_NONCE, unb64(sealed), channel_id(self._room)
            )
        except InvalidTag:
            raise PairingError("protocol", "the sealed room key does not open") from None
        return plain.decode()
