"""One side of a bare aiortc pair: the floor under the sidecar's data channels.

No sidecar, no mDNS, no election, no JSON-RPC: an RTCPeerConnection with no
ICE servers and the same negotiated `live-control` channel (id 0, ordered) the
sidecar opens, host candidates only on `--ip` (as the sidecar restricts them),
and SDP offer/answer over one plain TCP connection between the two lab hosts.

    bare_aiortc_peer.py answer --ip 10.77.0.2 --port 47000
    bare_aiortc_peer.py offer --ip 10.77.0.1 --connect 10.77.0.2:47000 --samples 300

The answerer echoes every `e...` message and counts `t...` messages. The offerer
measures setup (pc created to channel open), echo round trips and one-way
throughput, and prints one JSON line `{"event": "result", ...}`. Both print
`{"event": "ready", "import_s": ...}` first. Run by bench_channels.py inside
lab namespaces only; every wait is bounded by `--timeout`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import time
from typing import Any

_t_import = time.perf_counter()
import aioice.ice  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcsctptransport import USERDATA_MAX_LENGTH  # noqa: E402

IMPORT_S = time.perf_counter() - _t_import

LABEL = "live-control"
STEP_TIMEOUT_S = 15.0
# Flow control for the throughput sender: without it channel.send() only grows
# an unbounded queue in aiortc and we would measure enqueueing, not delivery.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
WINDOW_DATAGRAMS = 64


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def only_on(ip: str) -> None:
    """Host candidates on `ip` only, as the sidecar's restrict_ice_gathering does."""
    original = aioice.ice.get_host_addresses

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in original(use_ipv4, use_ipv6) if a == ip]

    aioice.ice.get_host_addresses = host_addresses


def new_pair() -> tuple[RTCPeerConnection, RTCDataChannel]:
    # Never aiortc's default configuration: it names a public Google STUN server.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = pc.createDataChannel(LABEL, negotiated=True, id=0, ordered=True)
    return pc, channel


async def send_line(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
    writer.write(json.dumps(obj).encode() + b"\n")
    await writer.drain()


async def read_line(reader: asyncio.StreamReader) -> dict[str, Any]:
    line = await asyncio.wait_for(reader.readline(), STEP_TIMEOUT_S)
    if not line:
        raise EOFError("signaling connection closed")
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def stats_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 4),
        "p90": round(q[89], 4),
        "p99": round(q[98], 4),
        "mean": round(statistics.fmean(ordered), 4),
        "min": round(ordered[0], 4),
        "max": round(ordered[-1], 4),
    }


# ------------------------------------------------------------------ answerer


class Counter:
    """Arrival times of throughput messages, reported when asked."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.cpu0: float | None = None
        self.ack_every = 0  # 0: no acknowledgements (an unpaced sender)

    def report(self, t0: float, t_end: float) -> dict[str, Any]:
        arrivals, self.arrivals = self.arrivals, []
        cpu = time.process_time() - (self.cpu0 or time.process_time())
        busy = (time.monotonic() - arrivals[0]) if arrivals else 0.0
        self.cpu0 = None
        in_window = sum(1 for t in arrivals if t0 <= t < t_end)
        buckets = [0] * max(1, round(t_end - t0))
        for t in arrivals:
            i = int(t - t0)
            if 0 <= i < len(buckets):
                buckets[i] += 1
        elapsed = (arrivals[-1] - t0) if arrivals else 0.0
        return {
            "delivered_in_window": in_window,
            "delivered_total": len(arrivals),
            "last_arrival_after_start_s": round(elapsed, 4),
            "per_second": buckets,
            "cpu_s": round(cpu, 4),
            "busy_s": round(busy, 4),
        }


async def answer(ip: str, port: int, timeout: float) -> None:
    only_on(ip)
    connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
    connected = asyncio.get_running_loop().create_future()

    def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if not connected.done():
            connected.set_result((r, w))

    server = await asyncio.start_server(on_client, ip, port)
    emit("ready", import_s=round(IMPORT_S, 4))
    pc: RTCPeerConnection | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await connected
            pc, channel = new_pair()
            counter = Counter()

            def on_message(message: str | bytes) -> None:
                assert isinstance(message, str)
                kind = message[0]
                if kind == "e":
                    channel.send(message)
                elif kind == "t":
                    if counter.cpu0 is None:
                        counter.cpu0 = time.process_time()
                    counter.arrivals.append(time.monotonic())
                    if counter.ack_every and len(counter.arrivals) % counter.ack_every == 0:
                        channel.send(f"a{len(counter.arrivals)}")
                elif kind == "c":
                    counter.ack_every = json.loads(message[1:])["ack_every"]
                elif kind == "r":
                    window = json.loads(message[1:])
                    report = counter.report(window["t0"], window["t_end"])
                    channel.send("R" + json.dumps(report))

            channel.on("message", on_message)
            offer = await read_line(reader)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await send_line(writer, {"type": "answer", "sdp": pc.localDescription.sdp})
            # Serve until the offerer hangs up (its EOF) or the overall timeout.
            while await reader.readline():
                pass
    finally:
        server.close()
        if pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 2.0)


# ------------------------------------------------------------------- offerer


async def measure_echo(
    channel: RTCDataChannel,
    waiting: dict[str, asyncio.Future[float]],
    warmup: int,
    samples: int,
    gap_s: float = 0.0,
    first: int = 0,
) -> list[float]:
    rtts: list[float] = []
    pad = "x" * 93  # ~100 characters in all, like the sidecar bench's payload
    loop = asyncio.get_running_loop()
    for n in range(first, first + warmup + samples):
        key = f"e{n:06d}"
        future: asyncio.Future[float] = loop.create_future()
        waiting[key] = future
        t0 = time.perf_counter()
        channel.send(key + pad)
        t1 = await asyncio.wait_for(future, STEP_TIMEOUT_S)
        if n >= first + warmup:
            rtts.append((t1 - t0) * 1000.0)
        if gap_s:
            await asyncio.sleep(gap_s)  # idle between cues, as the spaced sidecar echo does
    return rtts


def ack_window(size: int) -> int:
    """Messages a paced sender may have unacknowledged: about WINDOW_DATAGRAMS datagrams.

    aiortc advertises a fixed 1 MiB SCTP receive window and sends one DATA chunk per
    datagram, so an unpaced sender overflows the receiver's UDP buffer (212 KiB by
    default) as soon as the receiver falls behind; the drops cost SCTP retransmission
    timeouts of 1 s and more. An application-level window keeps the pair at the rate
    the receiver sustains.
    """
    chunks = max(1, math.ceil(size / USERDATA_MAX_LENGTH))
    return max(4, WINDOW_DATAGRAMS // chunks)


async def measure_throughput(
    channel: RTCDataChannel,
    inbox: Inbox,
    size: int,
    window_s: float,
    paced: bool,
) -> dict[str, Any]:
    message = "t" + "x" * (size - 1)
    max_unacked = ack_window(size) if paced else 0
    ack_every = max(1, max_unacked // 4) if paced else 0
    channel.send("c" + json.dumps({"ack_every": ack_every}))
    inbox.acked = 0
    channel.bufferedAmountLowThreshold = LOW_WATER
    channel.on("bufferedamountlow", inbox.wake.set)
    sent_times: list[float] = []
    cpu0 = time.process_time()
    t0 = time.monotonic()
    t_end = t0 + window_s
    while (now := time.monotonic()) < t_end:
        if channel.bufferedAmount > HIGH_WATER or (
            paced and len(sent_times) - inbox.acked >= max_unacked
        ):
            inbox.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(inbox.wake.wait(), max(0.001, t_end - now))
            continue
        channel.send(message)
        sent_times.append(now)
        if len(sent_times) % 32 == 0:
            await asyncio.sleep(0)  # let aiortc's flush tasks run
    t_stop = time.monotonic()
    cpu_window = time.process_time() - cpu0
    # Drain: the report request is ordered after every throughput message.
    channel.send("r" + json.dumps({"t0": t0, "t_end": t_end}))
    report = await asyncio.wait_for(inbox.reports.get(), 60.0)
    channel.remove_listener("bufferedamountlow", inbox.wake.set)
    accepted_in_window = sum(1 for t in sent_times if t < t_end)
    return {
        "payload_bytes": size,
        "pacing": f"ack window of {max_unacked} messages" if paced else "none",
        "window_s": window_s,
        "accepted_per_s": round(accepted_in_window / window_s, 1),
        "delivered_per_s": round(report["delivered_in_window"] / window_s, 1),
        "delivered_mb_per_s": round(report["delivered_in_window"] * size / window_s / 1e6, 3),
        "accepted_in_window": accepted_in_window,
        "delivered_in_window": report["delivered_in_window"],
        "delivered_total": report["delivered_total"],
        "drain_after_window_s": round(max(0.0, report["last_arrival_after_start_s"] - window_s), 4),
        "sender_loop_overran_s": round(t_stop - t_end, 4),
        "delivered_per_second": report["per_second"],
        "cpu_fraction": {
            "sender": round(cpu_window / (t_stop - t0), 3),
            "receiver": round(report["cpu_s"] / max(report["busy_s"], 1e-9), 3),
        },
    }


class Inbox:
    """What the offerer's channel receives: echoes, acks and reports."""

    def __init__(self) -> None:
        self.echoes: dict[str, asyncio.Future[float]] = {}
        self.reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.acked = 0
        self.wake = asyncio.Event()

    def on_message(self, message: str | bytes) -> None:
        t = time.perf_counter()
        assert isinstance(message, str)
        kind = message[0]
        if kind == "e":
            future = self.echoes.pop(message[:7], None)
            if future is not None and not future.done():
                future.set_result(t)
        elif kind == "a":
            self.acked = int(message[1:])
            self.wake.set()
        elif kind == "R":
            self.reports.put_nowait(json.loads(message[1:]))


async def offer(
    ip: str,
    target: str,
    samples: int,
    warmup: int,
    window_s: float,
    sizes: list[int],
    paced: bool,
    gap_ms: float,
    timeout: float,
) -> None:
    only_on(ip)
    host, port = target.rsplit(":", 1)
    emit("ready", import_s=round(IMPORT_S, 4))
    pc: RTCPeerConnection | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, int(port))
            loop = asyncio.get_running_loop()
            opened: asyncio.Future[float] = loop.create_future()
            inbox = Inbox()

            # Timed from here: the signaling socket is up, as the sidecar's leader link is
            # by the time it negotiates (its setup figure includes much more than this).
            t0 = time.perf_counter()
            pc, channel = new_pair()

            def on_open() -> None:
                if not opened.done():
                    opened.set_result(time.perf_counter())

            channel.on("open", on_open)

            channel.on("message", inbox.on_message)
            await pc.setLocalDescription(await pc.createOffer())
            await send_line(writer, {"type": "offer", "sdp": pc.localDescription.sdp})
            answer_msg = await read_line(reader)
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer_msg["sdp"], type="answer")
            )
            t_open = await asyncio.wait_for(opened, STEP_TIMEOUT_S)
            result: dict[str, Any] = {"setup_s": round(t_open - t0, 4)}
            if samples > 0:
                echoes = await measure_echo(channel, inbox.echoes, warmup, samples)
                result["echo_ms"] = stats_ms(echoes)
                first = warmup + samples
                spaced = await measure_echo(
                    channel, inbox.echoes, warmup, samples, gap_ms / 1000, first
                )
                result["echo_spaced_ms"] = {"gap_ms": gap_ms, **stats_ms(spaced)}
                # Raw, for a caller that pools blocks of samples taken at different times.
                result["echo_samples_ms"] = [round(x, 4) for x in echoes]
                result["echo_spaced_samples_ms"] = [round(x, 4) for x in spaced]
            if window_s > 0:
                result["throughput"] = [
                    await measure_throughput(channel, inbox, size, window_s, paced)
                    for size in sizes
                ]
            emit("result", **result)
    finally:
        if writer is not None:
            writer.close()
        if pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 2.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("offer", "answer"))
    parser.add_argument("--ip", required=True, help="this host's lab address")
    parser.add_argument("--port", type=int, default=47000, help="answer: TCP signaling port")
    parser.add_argument("--connect", help="offer: the answerer's ip:port")
    parser.add_argument("--samples", type=int, default=0, help="offer: echo samples")
    parser.add_argument("--warmup", type=int, default=0, help="offer: echo warm-up samples")
    parser.add_argument("--gap-ms", type=float, default=10.0, help="offer: spaced echo gap")
    parser.add_argument("--window", type=float, default=0.0, help="offer: throughput window s")
    parser.add_argument("--sizes", default="100,4096", help="offer: throughput message sizes")
    parser.add_argument(
        "--unpaced", action="store_true", help="offer: no ack window, only bufferedAmount"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="whole-run bound, s")
    args = parser.parse_args()
    if args.role == "answer":
        asyncio.run(answer(args.ip, args.port, args.timeout))
    else:
        if not args.connect:
            parser.error("offer needs --connect ip:port")
        sizes = [int(s) for s in args.sizes.split(",") if s]
        asyncio.run(
            offer(
                args.ip,
                args.connect,
                args.samples,
                args.warmup,
                args.window,
                sizes,
                not args.unpaced,
                args.gap_ms,
                args.timeout,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
