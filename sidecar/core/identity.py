"""A peer's identity: an Ed25519 key whose hash is its peer id (sans I/O).

Every running peer makes a key pair when it starts; its peer id is a UUID
drawn from the SHA-256 of the public key. A registration at the leader
carries the public key and a signature over the leader's fresh challenge, so
the leader knows that whoever registers as an id holds that id's key:

* nobody can register as another peer and evict it (the id is bound to the
  key, and the key never leaves its process);
* the peer itself can register again from a new address or connection, and
  the newer registration replaces the older one.

The key lives as long as the peer (a new `start_peer` makes a new one), and is
not a secret of the room: it proves who a peer is, not that it is a member.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PUBLIC_KEY_CHARS = 43
"""An Ed25519 public key (32 bytes) in unpadded base64url."""
SIGNATURE_CHARS = 86
"""An Ed25519 signature (64 bytes) in unpadded base64url."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def peer_id_of(public_key: str) -> str:
    """The peer id that a public key (base64url) stands for: a version-4-shaped
    UUID of the first 16 bytes of its SHA-256 (122 bits of it)."""
    digest = hashlib.sha256(public_key.encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def registration_statement(
    nonce: str, peer_id: str, room: str, seq: int, session: str = ""
) -> bytes:
    """What a registering peer signs: the leader's challenge, what it claims, and
    in a keyed room the session it registers in (`session`: the client's nonce
    and both ephemeral shares, sidecar/core/roomkey.py `session_binding`), so
    that a device in the middle holding the room key cannot carry the
    registration into a session of its own with the leader."""
    return f"mw-register|{nonce}|{peer_id}|{room}|{seq}|{session}".encode()


class Identity:
    """This peer's key pair."""

    def __init__(self, key: Ed25519PrivateKey | None = None) -> None:
        self._key = key or Ed25519PrivateKey.generate()
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = _b64(raw)
        self.peer_id = peer_id_of(self.public_key)

    def sign(self, statement: bytes) -> str:
        return _b64(self._key.sign(statement))


def verify(public_key: str, statement: bytes, signature: str) -> bool:
    """Whether `signature` (base64url) is `public_key`'s over `statement`."""
    if len(public_key) != PUBLIC_KEY_CHARS or len(signature) != SIGNATURE_CHARS:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(_unb64(public_key))
        key.verify(_unb64(signature), statement)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
