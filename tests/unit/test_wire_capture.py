"""The capture reader of the listener tests (tests/e2e/wire_capture.py) finds a
secret wherever a listener would: in a UDP payload, and in a WebSocket message
that a client masked, even split over TCP segments sent out of order."""

from __future__ import annotations

import struct
from pathlib import Path

from tests.e2e.wire_capture import LINKTYPE_LINUX_SLL2, Capture


def _sll2(ip: bytes) -> bytes:
    return struct.pack(">HH", 0x0800, 0) + bytes(16) + ip


def _ip(proto: int, body: bytes, src: str = "10.77.0.2", dst: str = "10.77.0.1") -> bytes:
    header = struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0)
    return header + bytes(map(int, src.split("."))) + bytes(map(int, dst.split("."))) + body


def _tcp(seq: int, payload: bytes) -> bytes:
    return struct.pack(">HHIIBBHHH", 40000, 3010, seq, 0, 5 << 4, 0x18, 65535, 0, 0) + payload


def _pcap(path: Path, frames: list[bytes]) -> None:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_LINUX_SLL2)
    for frame in frames:
        out += struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    path.write_bytes(out)


def _masked(text: bytes, key: bytes = b"\x12\x34\x56\x78") -> bytes:
    body = bytes(b ^ key[i % 4] for i, b in enumerate(text))
    return bytes([0x81, 0x80 | len(text)]) + key + body


def test_a_masked_client_message_split_and_reordered_is_read(tmp_path: Path) -> None:
    upgrade = b"GET /signal HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"
    stream = upgrade + _masked(b'{"type":"rekey","room_key":"s3cret-key"}')
    first, second = stream[:60], stream[60:]
    pcap = tmp_path / "c.pcap"
    _pcap(
        pcap,
        [
            _sll2(_ip(6, _tcp(1000 + 60, second))),  # the second half first
            _sll2(_ip(6, _tcp(1000, first))),
            _sll2(_ip(6, _tcp(1000, first))),  # a retransmission
            _sll2(_ip(17, struct.pack(">HHHH", 5353, 5353, 20, 0) + b"name=Booth")),
        ],
    )
    capture = Capture.read(pcap)
    assert capture.holds("s3cret-key")  # only readable once unmasked
    assert b"s3cret-key" not in pcap.read_bytes()
    assert capture.holds("Booth") and not capture.holds("nowhere")
