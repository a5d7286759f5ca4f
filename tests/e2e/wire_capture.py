"""What a listener on the room's network reads from a capture (tcpdump's pcap,
Linux cooked headers: `tcpdump -i any`): every UDP payload, every TCP stream
put back in order, and in those streams every WebSocket message *unmasked*
(a browser's or client's frames are XOR-masked on the wire, so a plain search
of the capture would miss a secret a client sent in clear).

For tests: `Capture.read(path)`, then `capture.holds(text)` says whether
`text` appears anywhere a listener could read it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
ETH_P_IP = 0x0800

Flow = tuple[str, int, str, int]  # (source address, port, destination address, port)


def _packets(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(link type, frame) of every packet of a classic pcap file."""
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}.get(magic)
    if endian is None:
        endian = {b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}[magic]  # nanoseconds
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    at = 24
    while at + 16 <= len(data):
        caplen = struct.unpack(endian + "I", data[at + 8 : at + 12])[0]
        yield linktype, data[at + 16 : at + 16 + caplen]
        at += 16 + caplen


def _ipv4(linktype: int, frame: bytes) -> bytes | None:
    if linktype == LINKTYPE_LINUX_SLL:
        proto, payload = struct.unpack(">H", frame[14:16])[0], frame[16:]
    elif linktype == LINKTYPE_LINUX_SLL2:
        proto, payload = struct.unpack(">H", frame[0:2])[0], frame[20:]
    else:
        raise ValueError(f"link type {linktype} (capture with -i any)")
    return payload if proto == ETH_P_IP else None


def _address(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


@dataclass
class _Stream:
    segments: dict[int, bytes] = field(default_factory=dict)  # seq -> payload (deduplicated)

    def data(self) -> bytes:
        out, end = bytearray(), None
        for seq in sorted(self.segments):
            payload = self.segments[seq]
            if end is None or seq >= end:
                out += payload
            elif seq + len(payload) > end:
                out += payload[end - seq :]  # a retransmission that reaches further
            end = max(end or 0, seq + len(payload))
        return bytes(out)


@dataclass
class Capture:
    udp: list[bytes] = field(default_factory=list)
    streams: dict[Flow, bytes] = field(default_factory=dict)
    ws_messages: list[bytes] = field(default_factory=list)
    compressed: bool = False
    """Some WebSocket negotiated compression (a search would then prove nothing)."""

    @classmethod
    def read(cls, path: Path) -> Capture:
        capture = cls()
        tcp: dict[Flow, _Stream] = {}
        for linktype, frame in _packets(path.read_bytes()):
            ip = _ipv4(linktype, frame)
            if ip is None or len(ip) < 20:
                continue
            header = (ip[0] & 0x0F) * 4
            total = struct.unpack(">H", ip[2:4])[0]
            proto, src, dst = ip[9], _address(ip[12:16]), _address(ip[16:20])
            body = ip[header:total]
            if proto == 17 and len(body) >= 8:
                capture.udp.append(body[8:])
            elif proto == 6 and len(body) >= 20:
                sport, dport, seq = struct.unpack(">HHI", body[:8])
                payload = body[(body[12] >> 4) * 4 :]
                if payload:
                    stream = tcp.setdefault((src, sport, dst, dport), _Stream())
                    stream.segments.setdefault(seq, payload)
        for flow, stream in tcp.items():
            capture.streams[flow] = data = stream.data()
            capture.ws_messages += _websocket_messages(data)
            head = data[: data.find(b"\r\n\r\n")].lower()
            if b"\r\nsec-websocket-extensions: permessage-deflate" in head and b" 101 " in head:
                capture.compressed = True
        return capture

    def holds(self, text: str) -> bool:
        """Whether `text` (UTF-8) is anywhere a listener reads: a UDP payload, a
        TCP stream as it was sent, or an unmasked WebSocket message."""
        needle = text.encode()
        return any(
            needle in blob for blob in (*self.udp, *self.streams.values(), *self.ws_messages)
        )


def _websocket_messages(stream: bytes) -> list[bytes]:
    """The payloads of the WebSocket frames after an HTTP upgrade (either
    direction: a request's `GET … Upgrade` or a `101` response)."""
    head_end = stream.find(b"\r\n\r\n")
    head = stream[:head_end].lower() if head_end >= 0 else b""
    if b"upgrade: websocket" not in head:
        return []
    at, out = head_end + 4, []
    while at + 2 <= len(stream):
        second = stream[at + 1]
        masked, length, at_len = bool(second & 0x80), second & 0x7F, at + 2
        if length == 126:
            length, at_len = struct.unpack(">H", stream[at + 2 : at + 4])[0], at + 4
        elif length == 127:
            length, at_len = struct.unpack(">Q", stream[at + 2 : at + 10])[0], at + 10
        key = stream[at_len : at_len + 4] if masked else b""
        start = at_len + (4 if masked else 0)
        payload = stream[start : start + length]
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        out.append(payload)
        at = start + length
    return [*out, b"".join(out)]  # and the whole, for a message split over frames
