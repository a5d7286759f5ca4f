"""The envelopes of the `live-control` data channel (docs/protocol.md,
"Data channels"), tagged by "type"."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, field

from sidecar.contract.base import (
    MAX_STATE_ENTRIES,
    Count,
    Millis,
    PeerId,
    StateEntry,
    StateKey,
    StateVersion,
    _Wire,
)

# ------------------------------------------------------------- data channel
# Envelopes on the `live-control` channel, tagged by "type".


class _Envelope(_Wire, tag_field="type"):
    pass


class ControlEnvelope(_Envelope, tag="control"):
    """A control message. `echo`: it is itself an echo (never echoed again)."""

    id: Annotated[str, Meta(min_length=1, max_length=64)]
    from_: PeerId = field(name="from")
    sent_at: Millis
    payload: Any
    echo: bool = False
    retain: Retained | None = None
    """The payload is also the value of this key, as of this version."""


class Retained(_Wire):
    key: StateKey
    version: StateVersion


class StateEnvelope(_Envelope, tag="state"):
    """Retained state: the sender's whole map (first on a new channel, in
    several messages when large) or keys it learned since. Counted in the
    send window like control messages."""

    entries: Annotated[list[StateEntry], Meta(max_length=MAX_STATE_ENTRIES)]


class PingEnvelope(_Envelope, tag="ping"):
    seq: Count
    sent_at: Count
    """The sender's own clock, in milliseconds: the pong carries it back unchanged."""


class PongEnvelope(_Envelope, tag="pong"):
    """`busy`: the receiver's host is not reading; its acks are held back."""

    seq: Count
    sent_at: Count
    """The ping's, unchanged."""
    busy: bool = False


class ByeEnvelope(_Envelope, tag="bye"):
    """Sent before closing on purpose, so the other side reports `left`."""


class AckEnvelope(_Envelope, tag="ack"):
    """Flow control (sidecar/core/flow.py): the receiver has taken the first `count`
    control messages of this channel."""

    count: Count


class SyncEnvelope(_Envelope, tag="sync"):
    """First message on every transport of a channel (sidecar/core/delivery.py): the
    sender has taken the first `received` control messages of the channel."""

    received: Count


Envelope = (
    ControlEnvelope
    | StateEnvelope
    | PingEnvelope
    | PongEnvelope
    | ByeEnvelope
    | AckEnvelope
    | SyncEnvelope
)


_envelope_decoder: msgspec.json.Decoder[Envelope] = msgspec.json.Decoder(Envelope)


def decode_envelope(frame: bytes | str) -> Envelope:
    """Decode one data-channel message; raises msgspec.DecodeError or ValidationError."""
    return _envelope_decoder.decode(frame)
