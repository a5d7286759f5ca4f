"""The room key's cryptography, in one place and sans I/O.

A keyed room's members share a secret that never crosses the network. It
protects three things (docs/protocol.md has the exact formats):

* **Signaling sessions.** Each WebSocket to the leader gets a session key,
  HMAC-SHA256(room key, both sides' fresh nonces). Every frame after the
  challenge, the registration included, travels `sealed`: its text with a
  sequence number and a MAC under the session key. Only a member can open a
  session, and nothing in it can be altered, dropped, replayed or injected by
  a device in the middle, even one that relays the frames of both sides.
* **Data-channel setup.** Each offer and answer carries an HMAC of its SDP
  (with the DTLS fingerprint in it) bound to sender, receiver, channel and
  transport, checked by the other peer itself: the leader relays it but
  cannot swap it.
* **mDNS records.** Each record is signed, addresses and port included, with
  the time it was signed (`ts`): a record of another room, a forged one, or
  one replayed from an earlier run is ignored.

HMAC-SHA256 throughout, truncated to 128 bits where it travels.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

MAC_CHARS = 32
"""Hex digits of a MAC on the wire (128 bits)."""


def _mac(key: bytes, text: bytes) -> str:
    return hmac.new(key, text, hashlib.sha256).hexdigest()[:MAC_CHARS]


def matches(expected: str, given: str | None) -> bool:
    # Bytes, since compare_digest raises TypeError on non-ASCII str input.
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def new_nonce() -> str:
    """A fresh 128-bit nonce, as 32 hex digits."""
    return secrets.token_hex(16)


# ---------------------------------------------------------------- signaling


def session_key(room_key: str, server_nonce: str, client_nonce: str, room: str) -> bytes:
    """The key of one signaling session (both nonces are fresh for it)."""
    text = f"mw-session|{server_nonce}|{client_nonce}|{room}".encode()
    return hmac.new(room_key.encode(), text, hashlib.sha256).digest()


CLIENT_TO_SERVER = "c"
SERVER_TO_CLIENT = "s"


class Sealer:
    """One side of a sealed session: numbers and MACs what it sends, checks
    what it receives. Sequence numbers start at 1 in each direction and grow
    by one per frame, so a frame dropped, replayed or reordered is noticed."""

    def __init__(self, key: bytes, sending: str, receiving: str) -> None:
        self._key = key
        self._sending = sending
        self._receiving = receiving
        self._sent = 0
        self._received = 0

    def seal(self, body: str) -> tuple[int, str]:
        """The sequence number and MAC of the next frame sent."""
        self._sent += 1
        return self._sent, self._mac(self._sending, self._sent, body)

    def open(self, seq: int, body: str, mac: str) -> bool:
        """Whether a received frame is the next one and intact."""
        if seq != self._received + 1 or not matches(self._mac(self._receiving, seq, body), mac):
            return False
        self._received = seq
        return True

    def _mac(self, direction: str, seq: int, body: str) -> str:
        return _mac(self._key, f"{direction}|{seq}|".encode() + body.encode())


# ------------------------------------------------------------ data channels


def sdp_auth(room_key: str, kind: str, from_: str, to: str, link: str, epoch: int, sdp: str) -> str:
    """The MAC of an offer's or answer's SDP, bound to who sends it to whom,
    for which channel and transport."""
    text = f"mw-sdp|{kind}|{from_}|{to}|{link}|{epoch}|".encode() + sdp.encode()
    return _mac(room_key.encode(), text)


# ---------------------------------------------------------------- mDNS records

AUTH_KEY = b"auth"


def txt_auth(
    properties: dict[bytes, bytes | None], room_key: str, addresses: Iterable[str], port: int
) -> str:
    """The MAC of a record: every TXT entry but `auth` (sorted, `key=value`, or
    the key alone for an entry without `=`), then the addresses (sorted) and
    the port the record advertises."""
    lines = [
        key if value is None else key + b"=" + value
        for key, value in sorted(properties.items())
        if key != AUTH_KEY
    ]
    lines.append(b"addresses=" + ",".join(sorted(addresses)).encode())
    lines.append(b"port=" + str(port).encode())
    return _mac(room_key.encode(), b"\n".join(lines))
