"""The room key's cryptography, in one place and sans I/O.

A keyed room's members share a secret that never crosses the network in the
clear. It is first stretched (`room_secret`: scrypt, so that a key chosen by
hand cannot be guessed offline at the speed of a hash), and the stretched
secret protects three things (docs/protocol.md has the exact formats):

* **Signaling sessions.** Each WebSocket to the leader gets its own keys,
  from an ephemeral X25519 exchange (the server's share in its challenge, the
  client's in its first frame) authenticated by the room secret: only a
  member can open a session, and a device that holds the room key but only
  listens learns nothing of the sessions it captures (it lacks both
  ephemeral keys). Every frame after the challenge, the registration
  included, travels `sealed`: encrypted and authenticated (ChaCha20-Poly1305)
  under the session key of its direction, numbered, so that nothing in it
  can be read, altered, dropped, replayed or injected, even by a device in
  the middle that relays the frames of both sides.
* **Data-channel setup.** Each offer and answer carries an HMAC of its SDP
  (with the DTLS fingerprint in it) bound to sender, receiver, channel and
  transport, checked by the other peer itself: the leader relays it but
  cannot swap it.
* **mDNS records.** Each record is signed, addresses and port included, with
  the time it was signed (`ts`): a record of another room, a forged one, or
  one replayed from an earlier run is ignored.

HMAC-SHA256 for the MACs, truncated to 128 bits where they travel.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MAC_CHARS = 32
"""Hex digits of a MAC on the wire (128 bits)."""


SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_SALT = b"mobile-worship room key v4"
"""How a room key is stretched (16 MiB of memory and about 40 ms here, once
per key and process): every guess at a key chosen by hand costs as much."""


@functools.lru_cache(maxsize=8)
def room_secret(room_key: str) -> bytes:
    """The stretched room key: every MAC and session of the room is keyed by it."""
    return hashlib.scrypt(
        room_key.encode(), salt=SCRYPT_SALT, n=SCRYPT_N, r=SCRYPT_R, p=1, dklen=32
    )


def _mac(key: bytes, text: bytes) -> str:
    return hmac.new(key, text, hashlib.sha256).hexdigest()[:MAC_CHARS]


def matches(expected: str, given: str | None) -> bool:
    # Bytes, since compare_digest raises TypeError on non-ASCII str input.
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def new_nonce() -> str:
    """A fresh 128-bit nonce, as 32 hex digits."""
    return secrets.token_hex(16)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    """Raises ValueError on anything that is not base64url."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None


# ---------------------------------------------------------------- signaling

CLIENT_TO_SERVER = "c"
SERVER_TO_CLIENT = "s"
Side = Literal["client", "server"]


class Ephemeral:
    """One side's X25519 key pair for one session (`private`: for test vectors)."""

    def __init__(self, private: bytes | None = None) -> None:
        self._key = (
            X25519PrivateKey.from_private_bytes(private)
            if private is not None
            else X25519PrivateKey.generate()
        )
        self.share = b64(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
        """The public share, base64url (43 characters)."""

    def agree(self, share: str) -> bytes:
        """The shared secret with the other side's `share`; ValueError when it
        is not a share (or a low-order point, which would make it all zeros)."""
        raw = unb64(share)
        if len(raw) != 32:
            raise ValueError("a share is 32 bytes")
        return self._key.exchange(X25519PublicKey.from_public_bytes(raw))


def session_keys(
    room_key: str,
    room: str,
    server_nonce: str,
    client_nonce: str,
    server_share: str,
    client_share: str,
    shared: bytes,
) -> tuple[bytes, bytes]:
    """(client→server key, server→client key) of one session: the room secret
    MACs the whole exchange and the X25519 secret, so neither a device without
    the room key nor one with only the room key can compute them."""
    transcript = "|".join(
        ("mw-session-v4", room, server_nonce, client_nonce, server_share, client_share)
    ).encode()
    master = hmac.new(room_secret(room_key), transcript + b"|" + shared, hashlib.sha256).digest()
    return (
        hmac.new(master, b"c", hashlib.sha256).digest(),
        hmac.new(master, b"s", hashlib.sha256).digest(),
    )


def session_binding(client_nonce: str, server_share: str, client_share: str) -> str:
    """What names one session in the registration a peer signs in it: a device
    that terminates the client's session and opens its own towards the leader
    has other shares, so the signature does not fit its session."""
    return f"{client_nonce}|{server_share}|{client_share}"


def open_session(
    room_key: str,
    room: str,
    *,
    side: Side,
    mine: Ephemeral,
    server_nonce: str,
    client_nonce: str,
    server_share: str,
    client_share: str,
) -> Box:
    """This side's `Box` for a session (ValueError: the other share is not one)."""
    theirs = client_share if side == "server" else server_share
    to_server, to_client = session_keys(
        room_key, room, server_nonce, client_nonce, server_share, client_share, mine.agree(theirs)
    )
    if side == "client":
        return Box(sending=to_server, receiving=to_client, direction=CLIENT_TO_SERVER)
    return Box(sending=to_client, receiving=to_server, direction=SERVER_TO_CLIENT)


class Box:
    """One side of a sealed session: encrypts and numbers what it sends, opens
    and checks what it receives. Sequence numbers start at 1 in each direction
    and grow by one per frame, so a frame dropped, replayed or reordered does
    not open; nor does one altered, or sealed under another session's key."""

    def __init__(self, *, sending: bytes, receiving: bytes, direction: str) -> None:
        self._send = ChaCha20Poly1305(sending)
        self._receive = ChaCha20Poly1305(receiving)
        self._out = direction.encode()
        self._in = (
            SERVER_TO_CLIENT if direction == CLIENT_TO_SERVER else CLIENT_TO_SERVER
        ).encode()
        self._sent = 0
        self._received = 0

    def seal(self, text: str) -> tuple[int, str]:
        """The sequence number and the box (base64url) of the next frame sent."""
        self._sent += 1
        box = self._send.encrypt(_nonce(self._sent), text.encode(), b"mw-sealed|" + self._out)
        return self._sent, b64(box)

    def open(self, seq: int, box: str) -> str | None:
        """The text of a received frame when it is the next one and intact."""
        if seq != self._received + 1:
            return None
        try:
            text = self._receive.decrypt(_nonce(seq), unb64(box), b"mw-sealed|" + self._in)
            opened = text.decode()
        except (InvalidTag, ValueError):
            return None
        self._received = seq
        return opened


def _nonce(seq: int) -> bytes:
    return seq.to_bytes(12, "big")


# ------------------------------------------------------------ data channels


def sdp_auth(room_key: str, kind: str, from_: str, to: str, link: str, epoch: int, sdp: str) -> str:
    """The MAC of an offer's or answer's SDP, bound to who sends it to whom,
    for which channel and transport."""
    text = f"mw-sdp|{kind}|{from_}|{to}|{link}|{epoch}|".encode() + sdp.encode()
    return _mac(room_secret(room_key), text)


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
    return _mac(room_secret(room_key), b"\n".join(lines))
