"""Which mDNS announcements become records of the room, sans I/O.

`accept` decides for one announcement (its TXT properties, the addresses and
port of its service, the instance label): a record of this room and protocol
version, signed with the room key when we hold one (`Accepted`); a record of a
keyed room while we are pairing and hold no key, which only says where a
member's server is (`KeyedHint`); or nothing (`Ignored`, with the reason the
logs and tests read: malformed, version, room, stale).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sidecar.contract import PROTOCOL_VERSION, PeerRecord
from sidecar.core.txt import AUTH_KEY, Malformed, check_auth, decode_record

IgnoredReason = Literal["malformed", "version", "room", "stale"]
_REASONS: dict[str, IgnoredReason] = {"v": "version", "auth": "room", "ts": "stale"}
"""The TXT field a Malformed names -> why the record is ignored."""


@dataclass(frozen=True, slots=True)
class Accepted:
    record: PeerRecord


@dataclass(frozen=True, slots=True)
class KeyedHint:
    """A member of our room (keyed, signature unchecked) serves at these."""

    addresses: list[str]
    port: int


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: IgnoredReason
    detail: str


Verdict = Accepted | KeyedHint | Ignored


def accept(
    properties: dict[bytes, bytes | None],
    addresses: list[str],
    port: int,
    *,
    label: str,
    room: str,
    room_key: str | None,
    pairing: bool,
    now_ms: int,
) -> Verdict | None:
    """What one announcement of instance `label` is to a peer of `room` (None: a
    keyed room's record while pairing, of another room or without a port)."""
    if room_key is None and pairing and AUTH_KEY.encode() in properties:
        try:
            hinted = decode_record(properties, addresses, port, version=PROTOCOL_VERSION)
        except Malformed:
            return None
        return KeyedHint(addresses, port) if hinted.room == room and port else None
    try:
        check_auth(properties, room_key, addresses, port, now_ms)
        record = decode_record(properties, addresses, port, version=PROTOCOL_VERSION)
    except Malformed as exc:
        field = str(exc).split(":")[0]
        return Ignored(_REASONS.get(field, "malformed"), str(exc))
    if record.peer_id.lower() != label.lower():
        return Ignored("malformed", f"id {record.peer_id!r} is not the instance name")
    if record.room != room:
        return Ignored("room", f"room {record.room!r}")
    return Accepted(record)
