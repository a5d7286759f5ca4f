"""End-to-end sealing of a relayed channel, sans I/O (docs/protocol.md,
"Relayed channels").

A channel whose direct path did not open runs through the leader's
signaling (`relay` frames). The leader must carry it without reading or
changing it, and so must anyone capturing the Wi-Fi, the room key or not.
So the two peers make their own keys for each relay transport:

* The offer and the answer of a relay transport each carry a `RelayShare`:
  an ephemeral X25519 share, the sender's identity key (its peer id is that
  key's hash, sidecar/core/identity.py) and the identity's signature over
  what the share is for (kind, sender, receiver, channel, transport; the
  answer's covers the offer's share too). Neither the leader nor anyone else
  can put its own share in place of a peer's: it would need that peer's
  identity key, which never leaves its process.
* Both sides derive two keys (one per direction) from the X25519 secret and
  the whole exchange. Every relay frame's `data` is then the message sealed
  (ChaCha20-Poly1305, the nonce its `seq`) under the key of its direction.
* A frame opens only with a `seq` above the last one opened: a replayed or
  reordered frame does not; a frame the leader dropped leaves a gap, which
  the channel protocol's acks repair (it never has to fail the transport).

The TypeScript copy is frontend-hook/src/web/core/relayseal.ts; the vectors
in tests/vectors/wire.json ("relay_seal") decide both.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from sidecar.contract import RelayShare
from sidecar.core.identity import Identity, peer_id_of, verify
from sidecar.core.roomkey import Ephemeral, b64, unb64

Kind = Literal["offer", "answer"]

OFFERER_TO_ANSWERER = b"mw-relay|o"
ANSWERER_TO_OFFERER = b"mw-relay|a"


def share_statement(
    kind: Kind, from_: str, to: str, link: str, epoch: int, share: str, offer_share: str
) -> bytes:
    """What a peer signs with its identity key for the share of its offer
    (`offer_share` empty) or answer (`offer_share` the offer's)."""
    return f"mw-relay|{kind}|{from_}|{to}|{link}|{epoch}|{share}|{offer_share}".encode()


def relay_keys(
    link: str,
    epoch: int,
    offerer: str,
    answerer: str,
    offer_share: str,
    answer_share: str,
    shared: bytes,
) -> tuple[bytes, bytes]:
    """(offerer→answerer key, answerer→offerer key) of one relay transport."""
    transcript = "|".join(
        ("mw-relay-v4", link, str(epoch), offerer, answerer, offer_share, answer_share)
    ).encode()
    master = hmac.new(shared, transcript, hashlib.sha256).digest()
    return (
        hmac.new(master, b"o", hashlib.sha256).digest(),
        hmac.new(master, b"a", hashlib.sha256).digest(),
    )


def _nonce(seq: int) -> bytes:
    return seq.to_bytes(12, "big")


class RelaySeal:
    """One side of one relay transport: its share, then (once the other side's
    share is checked) the keys that seal and open its frames.

    The offerer makes it when it offers the relay; the answerer when an offer
    whose share checks out arrives (`accept` it first, then answer)."""

    def __init__(
        self,
        identity: Identity,
        *,
        peer: str,
        link: str,
        epoch: int,
        offerer: bool,
        ephemeral: Ephemeral | None = None,
    ) -> None:
        self._identity = identity
        self._peer = peer
        self.link = link
        self.epoch = epoch
        self.offerer = offerer
        self._ephemeral = ephemeral or Ephemeral()
        self._theirs: str | None = None
        self._send: ChaCha20Poly1305 | None = None
        self._receive: ChaCha20Poly1305 | None = None
        self._sent = 0
        self._received = 0

    @property
    def ready(self) -> bool:
        """Both shares are known: frames can be sealed and opened."""
        return self._send is not None

    def mine(self) -> RelayShare:
        """This side's share for its offer or answer (the same every time)."""
        kind: Kind = "offer" if self.offerer else "answer"
        me = self._identity.peer_id
        offer_share = "" if self.offerer else (self._theirs or "")
        share = self._ephemeral.share
        statement = share_statement(kind, me, self._peer, self.link, self.epoch, share, offer_share)
        return RelayShare(
            share=share,
            identity=self._identity.public_key,
            signature=self._identity.sign(statement),
        )

    def accept(self, theirs: RelayShare) -> bool:
        """The other side's share, checked: it is the peer's (its identity key
        hashes to the peer id) and signed for this transport. False leaves the
        seal as it was; the same share again is accepted again."""
        if self._theirs is not None:
            return theirs.share == self._theirs
        me, peer, mine = self._identity.peer_id, self._peer, self._ephemeral.share
        if self.offerer:
            kind: Kind = "answer"
            offerer, answerer, offer_share, answer_share = me, peer, mine, theirs.share
        else:
            kind = "offer"
            offerer, answerer, offer_share, answer_share = peer, me, theirs.share, mine
        signed_over = offer_share if self.offerer else ""
        statement = share_statement(
            kind, peer, me, self.link, self.epoch, theirs.share, signed_over
        )
        if peer_id_of(theirs.identity) != peer:
            return False
        if not verify(theirs.identity, statement, theirs.signature):
            return False
        try:
            shared = self._ephemeral.agree(theirs.share)
        except ValueError:
            return False
        to_answerer, to_offerer = relay_keys(
            self.link, self.epoch, offerer, answerer, offer_share, answer_share, shared
        )
        sending, receiving = (
            (to_answerer, to_offerer) if self.offerer else (to_offerer, to_answerer)
        )
        self._theirs = theirs.share
        self._send = ChaCha20Poly1305(sending)
        self._receive = ChaCha20Poly1305(receiving)
        return True

    def seal(self, text: str) -> tuple[int, str]:
        """(seq, box) of the next frame sent; RuntimeError before `accept`."""
        if self._send is None:
            raise RuntimeError("the other side's share is not known yet")
        self._sent += 1
        aad = OFFERER_TO_ANSWERER if self.offerer else ANSWERER_TO_OFFERER
        return self._sent, b64(self._send.encrypt(_nonce(self._sent), text.encode(), aad))

    def open(self, seq: int, box: str) -> str | None:
        """The text of a received frame: intact, sealed by the peer for this
        transport, and numbered above every frame opened before."""
        if self._receive is None or seq <= self._received:
            return None
        aad = ANSWERER_TO_OFFERER if self.offerer else OFFERER_TO_ANSWERER
        try:
            text = self._receive.decrypt(_nonce(seq), unb64(box), aad).decode()
        except (InvalidTag, ValueError):
            return None
        self._received = seq
        return text
