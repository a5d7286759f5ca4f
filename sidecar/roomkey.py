"""The room key's cryptography, in one place and sans I/O.

A keyed room's members share a secret that never crosses the network. It
proves membership in both directions of a registration (HMAC-SHA256 over
the other side's nonce) and signs every mDNS record (docs/protocol.md,
"Signing"). The prefixes of the proofs (`register|`, `registered|`) keep one
side's proof from being replayed as the other's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def _hmac_hex(room_key: str, text: str) -> str:
    return hmac.new(room_key.encode(), text.encode(), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    """A fresh 128-bit nonce, as 32 hex digits."""
    return secrets.token_hex(16)


def register_proof(room_key: str, nonce: str, peer_id: str, room: str) -> str:
    """The follower's answer to the leader's challenge."""
    return _hmac_hex(room_key, f"register|{nonce}|{peer_id}|{room}")


def registered_proof(room_key: str, client_nonce: str, leader_id: str, room: str) -> str:
    """The leader's answer to the follower's `client_nonce`."""
    return _hmac_hex(room_key, f"registered|{client_nonce}|{leader_id}|{room}")


def proof_matches(expected: str, given: str | None) -> bool:
    # Bytes, since compare_digest raises TypeError on non-ASCII str input.
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def txt_auth(properties: dict[bytes, bytes | None], room_key: str) -> str:
    """HMAC-SHA256 (truncated to 128 bits) of every other TXT entry, so the
    members of a keyed room ignore records forged or announced without the key:
    a peer with a wrong key can neither win their election nor lure them away."""
    canonical = b"\n".join(
        key + b"=" + value
        for key, value in sorted(properties.items())
        if key != b"auth" and value is not None
    )
    return hmac.new(room_key.encode(), canonical, hashlib.sha256).hexdigest()[:32]
