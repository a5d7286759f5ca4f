"""The mDNS TXT record of a peer (docs/protocol.md, "TXT record"), sans I/O.

`encode_txt` / `decode_txt` turn a `PeerRecord` into TXT properties and back;
decoding rejects (None, debug log) anything malformed, foreign, or not
signed with the room key. `parse_txt` splits raw TXT rdata.

In a keyed room a record is signed (sidecar/core/roomkey.py) together with the
addresses and port it advertises and the time it was signed (`ts`, ms on the
signer's clock). A record signed more than `FRESH_S` away from the receiver's
clock is stale: a record captured in an earlier run cannot be replayed to win
an election. Every record of a keyed room is signed anew at least every
`RESIGN_S`, so a live peer's record never goes stale.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec

from sidecar.contract import PROTOCOL_VERSION, SAFE_INT_MAX, PeerRecord
from sidecar.core.priority import priority_of
from sidecar.core.roomkey import matches, txt_auth

log = logging.getLogger("sidecar.net.discovery")

TXT_ENTRY_MAX = 255
"""A TXT string is length-prefixed by one byte: `key=value` fits in 255 bytes."""

FRESH_S = 1800.0
"""How far a keyed room's record may be signed from the receiver's clock (the
devices' clocks must agree within half an hour; a record older than that is
a replay)."""
RESIGN_S = 300.0
"""A keyed room's peer signs its record anew at least this often."""

_UINT = re.compile(r"0|[1-9][0-9]{0,15}")  # canonical, ASCII; then checked below 2**53
DNS_LABEL = re.compile(r"[A-Za-z0-9-]{1,63}")  # our id is a host label (`<id>.local.`)


class Malformed(ValueError):
    """A TXT record that must be ignored; the message says why."""


def _fit(key: str, value: str) -> str:
    """Cut `value` (on a character boundary) so that `key=value` fits one TXT string."""
    room = TXT_ENTRY_MAX - len(key.encode()) - 1
    data = value.encode()
    if len(data) <= room:
        return value
    return data[:room].decode("utf-8", errors="ignore")


AUTH_KEY = "auth"
"""TXT key of the record's HMAC in a room with a key."""


def encode_txt(
    record: PeerRecord, room_key: str | None = None, signed_at_ms: int = 0
) -> dict[str, str]:
    """The TXT properties announcing `record` (docs/protocol.md, "Discovery"), signed
    with `room_key` at `signed_at_ms` when the room has one.

    The display name is cut to fit one TXT string (255 bytes); any other value
    that does not fit, or a record the other side would reject, raises
    ValueError naming the field.
    """
    txt = {
        "v": str(record.v),
        "id": record.peer_id,
        "name": _fit("name", record.name),
        "peer-type": record.peer_type,
        "display-class": record.display_class or "",
        "started": str(record.started_at),
        "priority": priority_of(record).encode(),
        "role": record.role,
        "leader-id": record.leader_id or "",
        "term": str(record.term),
        "room": record.room,
    }
    for key, value in txt.items():
        if len(key.encode()) + 1 + len(value.encode()) > TXT_ENTRY_MAX:
            raise ValueError(f"{key}: longer than {TXT_ENTRY_MAX - len(key) - 1} bytes as UTF-8")
    # What we announce must be what the others accept: check it with the decoder.
    raw: dict[bytes, bytes | None] = {k.encode(): v.encode() for k, v in txt.items()}
    try:
        decode_record(raw, [], 0, version=record.v)
    except Malformed as exc:
        raise ValueError(str(exc)) from None
    if room_key is not None:
        txt["ts"] = str(signed_at_ms)
        raw[b"ts"] = txt["ts"].encode()
        txt[AUTH_KEY] = txt_auth(raw, room_key, record.addresses, record.port)
    return txt


def decode_txt(
    properties: dict[bytes, bytes | None],
    addresses: list[str],
    port: int,
    room_key: str | None = None,
    now_ms: int = 0,
) -> PeerRecord | None:
    """The record announced by TXT `properties` and the service's addresses and
    port, or None (logged at debug) when anything is missing, malformed, of
    another protocol version, or not signed with `room_key` (a record signed
    with a key we do not have is another room's) at a time near `now_ms`.
    The room is kept: filtering is the caller's job. Never raises."""
    try:
        check_auth(properties, room_key, addresses, port, now_ms)
        return decode_record(properties, addresses, port, version=PROTOCOL_VERSION)
    except Malformed as exc:
        log.debug("ignoring malformed mDNS TXT record: %s", exc)
        return None


def check_auth(
    properties: dict[bytes, bytes | None],
    room_key: str | None,
    addresses: list[str],
    port: int,
    now_ms: int,
) -> None:
    """Raise Malformed unless the record's signature fits our room key, its
    addresses and port, and it was signed near `now_ms`."""
    given = properties.get(AUTH_KEY.encode())
    if room_key is None:
        if given is not None:
            raise Malformed("auth: the record of a room with a key")
        return
    expected = txt_auth(properties, room_key, addresses, port)
    if given is None or not matches(expected, given.decode("ascii", errors="replace")):
        raise Malformed("auth: not signed with our room key")
    raw_ts = properties.get(b"ts") or b""
    if not _UINT.fullmatch(raw_ts.decode("ascii", errors="replace")):
        raise Malformed("ts: missing or malformed")
    if abs(int(raw_ts) - now_ms) > FRESH_S * 1000:
        raise Malformed(f"ts: signed {(now_ms - int(raw_ts)) / 1000:.0f} s from our clock")


def parse_txt(text: bytes) -> dict[bytes, bytes | None]:
    """Split raw TXT rdata into properties (RFC 6763 6.3-6.4): keys lower-cased,
    the first occurrence of a key wins, a key without `=` maps to None."""
    props: dict[bytes, bytes | None] = {}
    pos = 0
    while pos < len(text):
        length = text[pos]
        entry = text[pos + 1 : pos + 1 + length]
        pos += 1 + length
        key, sep, value = entry.partition(b"=")
        key = key.lower()
        if key and key not in props:
            props[key] = value if sep else None
    return props


def decode_record(
    properties: dict[bytes, bytes | None], addresses: list[str], port: int, *, version: int
) -> PeerRecord:
    """`decode_txt` that raises Malformed with the reason."""
    try:
        return _decode_unchecked(properties, addresses, port, version=version)
    except Malformed:
        raise
    except (ValueError, TypeError, AttributeError) as exc:  # msgspec.ValidationError included
        raise Malformed(str(exc)) from None


def _decode_unchecked(
    properties: dict[bytes, bytes | None], addresses: list[str], port: int, *, version: int
) -> PeerRecord:
    def text(key: str) -> str:
        raw = properties.get(key.encode())
        if raw is None:
            raise Malformed(f"{key}: missing")
        if not isinstance(raw, bytes) or len(key) + 1 + len(raw) > TXT_ENTRY_MAX:
            raise Malformed(f"{key}: does not fit a TXT string")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed(f"{key}: not UTF-8") from None

    def uint(key: str) -> int:
        value = text(key)
        if not _UINT.fullmatch(value) or int(value) > SAFE_INT_MAX:
            raise Malformed(f"{key}: not a canonical unsigned integer below 2**53: {value!r}")
        return int(value)

    v = uint("v")
    if v != version:
        raise Malformed(f"v: protocol version {v}, expected {version}")
    peer_type = text("peer-type")
    display_class = text("display-class") or None
    if peer_type == "display" and display_class is None:
        raise Malformed("display-class: required for a display")
    if peer_type == "controller" and display_class is not None:
        raise Malformed("display-class: must be empty for a controller")
    leader_id = text("leader-id") or None
    name = text("name")
    if any(ch < " " or ch == "\x7f" for ch in name):
        raise Malformed("name: contains control characters")
    fields: dict[str, Any] = {
        "peer_id": text("id"),
        "name": name,
        "peer_type": peer_type,
        "display_class": display_class,
        "started_at": uint("started"),
        "role": text("role"),
        "leader_id": leader_id,
        "term": uint("term"),
        "room": text("room"),
        "v": v,
        "addresses": tuple(addresses),
        "port": port,
    }
    # Literals, lengths, the address pattern and the port range.
    record = msgspec.convert(fields, PeerRecord, strict=True)
    if text("priority") != priority_of(record).encode():
        raise Malformed("priority: disagrees with peer-type, started and id")
    return record
