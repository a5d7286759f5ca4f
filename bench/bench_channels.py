"""Data-channel figures of real sidecars in the test lab, against a bare aiortc pair.

Measured from the host's side of stdio, each sidecar in its own lab namespace:

1. two fresh peers (controller + display) started together: start_peer to
   webrtc:connected on both sides;
2. a display joining that running room: its start_peer to its webrtc:connected
   naming the controller;
3. echo round trip through the whole stdio path: the request line written to the
   controller's stdin to the echo's webrtc:message read from its stdout (the
   display runs with "echo": true), one in flight at a time, back to back and
   again with the processes idle for --echo-gap-ms between samples. Taken in
   --echo-blocks blocks, each followed by a block of the bare pair's echo (a
   fresh bare pair per block), so both sides see the same machine: on this
   kind of VM the same figure drifts by 50 % between minutes;
4. ping_peer: the rtt_ms the sidecar reports, and the wall clock of the call;
5. one-way throughput, controller to a second display, pipelined requests:
   requests answered ("accepted") and webrtc:message lines read on the display
   ("delivered") per second.

Baseline in the same run: bench/bare_aiortc_peer.py, two plain processes with an
RTCPeerConnection each (no ICE servers, the same negotiated channel), SDP over
TCP, measuring setup, echo and throughput at the initiator. The bare sender is
paced by an application-level ack window: unpaced, aiortc overruns the
receiver's UDP buffer and stalls on SCTP retransmission timeouts (one unpaced
run is kept, for information, with the UDP drops it causes).

Each setup round runs in a fresh lab; the last round's room also serves 3-5.
Sidecars run with the app's default `--log-level info` (the e2e helpers use
debug, which makes aiortc log every SCTP chunk). The stdio client here is a lean
one of our own, not tests/sidecar_proc.SidecarClient: that one keeps every line
three times over and wakes a Condition per notification, which at thousands of
lines a second would be the bench measuring itself.

The document also says how much CPU other processes took meanwhile
(`quietness`): with 2 cores and 3 sidecars plus this process, anything else
running skews every figure, so a run where others took over 10 % of the CPUs is
flagged `"trustworthy": false` (and warned about on stderr).

    sudo uv run python bench/bench_channels.py > result.json

Needs Linux and root (network namespaces); prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import itertools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bare_aiortc_peer import stats_ms  # noqa: E402  (one definition of the stats)
from tests.lab import Host, Lab, lab_unavailable_reason, sweep_stale_labs  # noqa: E402
from tests.sidecar_proc import sidecar_argv  # noqa: E402

BARE_PEER = REPO / "bench" / "bare_aiortc_peer.py"
BARE_PORT = 47000
SPAWN_S = 30.0  # interpreter start under load, then the first answer
SETUP_WAIT_S = 20.0  # docs/architecture.md's "must" is 5 s; four times that and it is a failure
CALL_S = 10.0
ECHO_PAD = "x" * 80  # {"seq":N,"pad":"xx..."} is ~100 bytes serialized
WRITE_BATCH = 32  # request lines per write() while pipelining
MAX_OUTSTANDING = 1024  # written, not yet answered: keeps the sidecar's stdin never empty
MAX_BACKLOG_BYTES = 8 * 1024 * 1024  # written, not yet delivered: bounds the drain after
MAX_BACKLOG_MESSAGES = 10_000
DRAIN_S = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
FOREIGN_CPU_LIMIT = 0.1  # others' share of the CPUs above which a run is not worth keeping

CONTROLLER: dict[str, Any] = {"name": "Booth", "peer_type": "controller"}


def display(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "peer_type": "display", "display_class": "audience", **extra}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------- stats


def summary_s(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "median_s": round(statistics.median(ordered), 4),
        "min_s": round(ordered[0], 4),
        "max_s": round(ordered[-1], 4),
        "samples_s": [round(s, 4) for s in samples],
    }


def per_second(times: list[float], t0: float, window_s: float) -> list[int]:
    buckets = [0] * max(1, math.ceil(window_s))
    for t in times:
        i = int(t - t0)
        if 0 <= i < len(buckets):
            buckets[i] += 1
    return buckets


def cpu_seconds(pid: int, user_only: bool = False) -> float:
    """utime (+ stime) of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + (0 if user_only else int(fields[12]))
    return ticks / CLK_TCK


def udp_rcvbuf_errors(host: Host) -> int:
    """Datagrams the host's kernel dropped because a socket's receive buffer was full."""
    snmp = host.run(["cat", "/proc/net/snmp"], timeout=5.0, check=True).stdout
    header, values = (ln.split() for ln in snmp.splitlines() if ln.startswith("Udp:"))
    return int(values[header.index("RcvbufErrors")])


def own_cpu_seconds(user_only: bool = False) -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + (0.0 if user_only else usage.ru_stime)


# ----------------------------------------------------------- stdio client


Note = dict[str, Any]
Answered = tuple[float, dict[str, Any]]


class Sidecar:
    """One sidecar process in a lab host, spoken to over its pipes.

    Every stdout line is stamped with time.monotonic() as soon as it is read, so
    figures do not include how long a waiter took to wake up. webrtc:message
    notifications go only to `on_message` (they can be thousands a second);
    responses nobody awaits go to `on_response`.
    """

    def __init__(
        self, name: str, host: Host, process: asyncio.subprocess.Process, stdout: int
    ) -> None:
        assert process.stdin is not None
        self.name = name
        self.host = host
        self.process = process
        self.stdin = process.stdin
        self.info: dict[str, Any] = {}
        self.notes: list[tuple[float, Note]] = []
        self.on_message: Callable[[float, dict[str, Any]], None] | None = None
        self.on_response: Callable[[float, dict[str, Any]], None] | None = None
        self._pending: dict[Any, asyncio.Future[Answered]] = {}
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)
        # Our end of its stdout, read by the loop itself: asyncio's StreamReader costs
        # ~80 µs a line on this VM, CPU the sidecars' echo then waits for.
        self._stdout = stdout
        self._partial = b""
        self._decoder = msgspec.json.Decoder()
        os.set_blocking(stdout, False)
        asyncio.get_running_loop().add_reader(stdout, self._on_readable)

    @classmethod
    async def spawn(
        cls, name: str, host: Host, logs: Path, level: str, cpu: int | None = None
    ) -> Sidecar:
        """Start one and wait until it answers, so what follows measures the peer, not the
        interpreter's start (as tests/e2e/room.Room.spawn does)."""
        theirs_fd, ours_fd = os.pipe()[::-1]
        try:
            with (logs / f"{name}-{host.netns}.log").open("ab") as stderr:
                process = await host.spawn_async(
                    pinned(cpu, sidecar_argv("--log-level", level)), stdout=theirs_fd, stderr=stderr
                )
        except BaseException:
            os.close(ours_fd)
            raise
        finally:
            os.close(theirs_fd)
        sidecar = cls(name, host, process, ours_fd)
        await sidecar.call("get_leader_status", timeout=SPAWN_S)
        return sidecar

    @property
    def peer_id(self) -> str:
        return str(self.info["peer_id"])

    def _on_readable(self) -> None:
        try:
            data = os.read(self._stdout, 1 << 20)
        except BlockingIOError:
            return
        t = time.monotonic()
        if not data:
            self._eof()
            return
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            self._take(t, line)

    def _take(self, t: float, line: bytes) -> None:
        msg = self._decoder.decode(line)
        method = msg.get("method")
        if method == "webrtc:message":
            if self.on_message is not None:
                self.on_message(t, msg["params"])
        elif method is not None:
            self.notes.append((t, msg))
            self._changed.set()
        else:
            future = self._pending.pop(msg.get("id"), None)
            if future is not None:
                if not future.done():
                    future.set_result((t, msg))
            elif self.on_response is not None:
                self.on_response(t, msg)

    def _eof(self) -> None:
        asyncio.get_running_loop().remove_reader(self._stdout)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(EOFError(f"{self.name}: sidecar closed stdout"))

    def submit(
        self, method: str, params: Any = None, request_id: Any = None
    ) -> tuple[float, asyncio.Future[Answered]]:
        """Write one request line; returns when it was written and its answer's future."""
        if request_id is None:
            request_id = next(self._ids)
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            body["params"] = params
        future: asyncio.Future[Answered] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        line = msgspec.json.encode(body) + b"\n"
        t = time.monotonic()
        self.stdin.write(line)
        return t, future

    async def request(
        self, method: str, params: Any = None, timeout: float = CALL_S
    ) -> tuple[float, float, dict[str, Any]]:
        """(written at, answer read at, answer)."""
        t0, future = self.submit(method, params)
        t1, answer = await asyncio.wait_for(future, timeout)
        return t0, t1, answer

    async def call(self, method: str, params: Any = None, timeout: float = CALL_S) -> Any:
        _, _, answer = await self.request(method, params, timeout)
        if "error" in answer:
            raise RuntimeError(f"{self.name} {method}: {answer['error']}")
        return answer["result"]

    async def start(self, params: dict[str, Any]) -> None:
        self.info = await self.call("start_peer", params)

    async def wait_note(self, match: Callable[[Note], bool], timeout: float) -> float:
        """Read time of the first notification (other than messages) matching `match`."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for t, note in self.notes[seen:]:
                    if match(note):
                        return t
                seen = len(self.notes)
                self._changed.clear()
                await self._changed.wait()

    async def connected_to(self, peer_id: str, timeout: float = SETUP_WAIT_S) -> float:
        return await self.wait_note(
            lambda n: (
                n["method"] == "webrtc:connected" and n["params"]["peer"]["peer_id"] == peer_id
            ),
            timeout,
        )

    async def follows(self, leader_id: str, timeout: float = SETUP_WAIT_S) -> float:
        return await self.wait_note(
            lambda n: (
                n["method"] == "webrtc:leader_changed" and n["params"]["leader_id"] == leader_id
            ),
            timeout,
        )

    async def close(self) -> None:
        """EOF first (a clean leave), then kill; never raises, never hangs."""
        with contextlib.suppress(Exception):
            self.stdin.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait(), 3.0)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.process.wait(), 3.0)
        with contextlib.suppress(OSError):
            asyncio.get_running_loop().remove_reader(self._stdout)
            os.close(self._stdout)


# --------------------------------------------------------------- sidecars


async def setup_pair(ctrl: Sidecar, disp: Sidecar) -> dict[str, float]:
    """1: both started at once, until each side reports the channel open."""
    t0 = time.monotonic()
    await asyncio.gather(ctrl.start(CONTROLLER), disp.start(display("Stage", echo=True)))
    t_answered = time.monotonic()
    led = await asyncio.gather(ctrl.follows(ctrl.peer_id), disp.follows(ctrl.peer_id))
    opened = await asyncio.gather(ctrl.connected_to(disp.peer_id), disp.connected_to(ctrl.peer_id))
    return {
        "both_open_s": max(opened) - t0,
        "first_open_s": min(opened) - t0,
        "start_peer_answered_s": t_answered - t0,
        "leader_agreed_s": max(led) - t0,
    }


async def setup_joiner(ctrl: Sidecar, new: Sidecar) -> dict[str, float]:
    """2: a display joins the running room: its start_peer to its channel to the controller."""
    t0 = time.monotonic()
    await new.start(display("Lobby"))
    t_answered = time.monotonic()
    t_led = await new.follows(ctrl.peer_id)
    t_open = await new.connected_to(ctrl.peer_id)
    return {
        "open_s": t_open - t0,
        "start_peer_answered_s": t_answered - t0,
        "leader_followed_s": t_led - t0,
    }


async def echo_rtts(
    ctrl: Sidecar, disp: Sidecar, warmup: int, samples: int, gap_s: float = 0.0
) -> list[float]:
    """3: request line written on ctrl's stdin to the echo read from ctrl's stdout, in ms.

    `gap_s` idles between samples: cues come seconds apart, and on an idle machine every
    hop pays wake-up costs that back-to-back samples never see."""
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[float]] = {}

    def on_message(t: float, params: dict[str, Any]) -> None:
        payload = params["payload"]
        if params["from"] == disp.peer_id and isinstance(payload, dict):
            future = waiting.pop(payload.get("seq", -1), None)
            if future is not None and not future.done():
                future.set_result(t)

    ctrl.on_message = on_message
    rtts: list[float] = []
    try:
        for n in range(warmup + samples):
            waiting[n] = loop.create_future()
            echoed = waiting[n]
            t0, answered = ctrl.submit(
                "send_control_message",
                {"to": disp.peer_id, "payload": {"seq": n, "pad": ECHO_PAD}},
                f"e{n}",
            )
            t1 = await asyncio.wait_for(echoed, 5.0)
            _, answer = await asyncio.wait_for(answered, 5.0)
            if "error" in answer:
                raise RuntimeError(f"echo {n}: {answer['error']}")
            if n >= warmup:
                rtts.append((t1 - t0) * 1000.0)
            if gap_s:
                await asyncio.sleep(gap_s)
    finally:
        ctrl.on_message = None
    return rtts


async def interleaved_echo(ctrl: Sidecar, disp: Sidecar, steady: dict[str, Any]) -> dict[str, Any]:
    """3 and its baseline: blocks of sidecar echo, each followed by a bare pair's block."""
    blocks, warmup, gap = steady["echo_blocks"], steady["warmup"], steady["echo_gap_s"]
    per_block = max(1, steady["samples"] // blocks)
    ours: list[float] = []
    ours_spaced: list[float] = []
    bare: list[float] = []
    bare_spaced: list[float] = []
    block_ratios: list[float | None] = []
    bare_load: list[float] = []
    for b in range(blocks):
        mine = await echo_rtts(ctrl, disp, warmup, per_block)
        ours += mine
        ours_spaced += await echo_rtts(ctrl, disp, warmup, per_block, gap)
        theirs = await bare_round({**steady, "samples": per_block, "window_s": 0})
        bare += theirs["echo_samples_ms"]
        bare_spaced += theirs["echo_spaced_samples_ms"]
        bare_load.append(theirs["foreign_cpu_share"])
        block_ratios.append(
            ratio(statistics.median(mine), statistics.median(theirs["echo_samples_ms"]))
        )
        log(f"  echo block {b + 1}: p50 ratio {block_ratios[-1]}")
    gap_ms = gap * 1000
    return {
        "echo_stdio_ms": stats_ms(ours),
        "echo_stdio_spaced_ms": {"gap_ms": gap_ms, **stats_ms(ours_spaced)},
        "bare_echo_ms": stats_ms(bare),
        "bare_echo_spaced_ms": {"gap_ms": gap_ms, **stats_ms(bare_spaced)},
        "echo_p50_ratio_per_block": block_ratios,
        "foreign_cpu_share_during_bare_echo_blocks": max(bare_load),
    }


async def pings(ctrl: Sidecar, disp: Sidecar, warmup: int, samples: int) -> dict[str, Any]:
    """4: ping_peer's own rtt_ms, and the call's wall clock through stdio."""
    reported: list[float] = []
    wall: list[float] = []
    for n in range(warmup + samples):
        t0, t1, answer = await ctrl.request("ping_peer", {"peer_id": disp.peer_id})
        if "error" in answer:
            raise RuntimeError(f"ping {n}: {answer['error']}")
        if n >= warmup:
            reported.append(float(answer["result"]["rtt_ms"]))
            wall.append((t1 - t0) * 1000.0)
    return {"rtt_ms_reported": stats_ms(reported), "call_wall_ms": stats_ms(wall)}


async def throughput(ctrl: Sidecar, disp: Sidecar, size: int, window_s: float) -> dict[str, Any]:
    """5: pipelined send_control_message lines for `window_s`; answers and arrivals a second.

    The writer keeps up to MAX_OUTSTANDING requests unanswered, so the sidecar's stdin is
    never empty (`min_outstanding` shows it); it pauses only when MAX_BACKLOG requests were
    answered but not yet delivered, which bounds the drain after the window.
    """
    pad = b"x" * max(1, size - 21)  # {"tp":N,"pad":"..."} is ~size bytes serialized
    template = (
        b'{"jsonrpc":"2.0","method":"send_control_message","id":"t%d","params":{"to":"'
        + disp.peer_id.encode()
        + b'","payload":{"tp":%d,"pad":"'
        + pad
        + b'"}}}\n'
    )
    backlog_cap = min(MAX_BACKLOG_MESSAGES, MAX_BACKLOG_BYTES // size)
    accepted: list[float] = []
    delivered: list[float] = []
    errors: list[Any] = []
    order = {"next": 0, "out_of_order": 0}
    room = asyncio.Event()
    written = 0

    def on_response(t: float, answer: dict[str, Any]) -> None:
        if "error" in answer:
            errors.append(answer["error"])
        accepted.append(t)
        room.set()

    def on_message(t: float, params: dict[str, Any]) -> None:
        payload = params["payload"]
        if isinstance(payload, dict) and "tp" in payload:
            delivered.append(t)
            if payload["tp"] != order["next"]:
                order["out_of_order"] += 1
            order["next"] = payload["tp"] + 1
            room.set()

    ctrl.on_response, disp.on_message = on_response, on_message
    stalls = {"outstanding_cap": 0, "backlog_cap": 0}
    min_outstanding = MAX_OUTSTANDING
    drops0 = [udp_rcvbuf_errors(s.host) for s in (ctrl, disp)]
    try:
        cpu0 = (cpu_seconds(ctrl.process.pid), cpu_seconds(disp.process.pid), own_cpu_seconds())
        t0 = time.monotonic()
        t_end = t0 + window_s
        while (now := time.monotonic()) < t_end:
            outstanding = written - len(accepted)
            if outstanding >= MAX_OUTSTANDING or written - len(delivered) >= backlog_cap:
                stalls["outstanding_cap" if outstanding >= MAX_OUTSTANDING else "backlog_cap"] += 1
                room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(room.wait(), max(0.001, t_end - now))
                continue
            if now - t0 > 0.5:  # past the ramp-up: was the sidecar ever out of input?
                min_outstanding = min(min_outstanding, outstanding)
            batch = range(written, written + WRITE_BATCH)
            ctrl.stdin.write(b"".join(template % (i, i) for i in batch))
            written += WRITE_BATCH
            await asyncio.wait_for(ctrl.stdin.drain(), CALL_S)
            await asyncio.sleep(0)  # drain() does not yield when the pipe has room
        cpu1 = (cpu_seconds(ctrl.process.pid), cpu_seconds(disp.process.pid), own_cpu_seconds())
        async with asyncio.timeout(DRAIN_S):
            while len(accepted) < written or len(delivered) < written:
                room.clear()
                await room.wait()
    finally:
        ctrl.on_response = disp.on_message = None
    drops = [udp_rcvbuf_errors(s.host) - d for s, d in zip((ctrl, disp), drops0, strict=True)]
    if errors:
        raise RuntimeError(f"{len(errors)} send errors, first {errors[0]}")
    in_window = [t for t in accepted if t < t_end]
    delivered_in_window = [t for t in delivered if t < t_end]
    return {
        "payload_bytes": size,
        "window_s": window_s,
        "accepted_per_s": round(len(in_window) / window_s, 1),
        "delivered_per_s": round(len(delivered_in_window) / window_s, 1),
        "delivered_mb_per_s": round(len(delivered_in_window) * size / window_s / 1e6, 3),
        "written": written,
        "accepted_in_window": len(in_window),
        "delivered_in_window": len(delivered_in_window),
        "delivered_total": len(delivered),
        "out_of_order": order["out_of_order"],
        "drain_after_window_s": round(max(0.0, max(delivered, default=t_end) - t_end), 4),
        "accepted_per_second": per_second(accepted, t0, window_s),
        "delivered_per_second": per_second(delivered, t0, window_s),
        "min_outstanding_after_0_5s": min_outstanding,
        "writer_stalls": stalls,
        "udp_rcvbuf_drops": {"sender_host": drops[0], "receiver_host": drops[1]},
        "cpu_fraction": {
            "sender_sidecar": round((cpu1[0] - cpu0[0]) / window_s, 3),
            "receiver_sidecar": round((cpu1[1] - cpu0[1]) / window_s, 3),
            "bench_process": round((cpu1[2] - cpu0[2]) / window_s, 3),
        },
    }


async def sidecar_round(
    logs: Path, level: str, steady: dict[str, Any] | None
) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """One fresh lab: pair setup, joiner setup and, when `steady` asks, figures 3-5."""
    async with Lab() as lab:
        sidecars: list[Sidecar] = []
        try:
            ctrl = await Sidecar.spawn("ctrl", lab.add_host(), logs, level, HOST_SIDE_CPU)
            sidecars.append(ctrl)
            disp = await Sidecar.spawn("echo-display", lab.add_host(), logs, level, FAR_SIDE_CPU)
            sidecars.append(disp)
            pair = await setup_pair(ctrl, disp)
            joiner = await Sidecar.spawn("joiner", lab.add_host(), logs, level, FAR_SIDE_CPU)
            sidecars.append(joiner)
            join = await setup_joiner(ctrl, joiner)
            extra: dict[str, Any] = {}
            if steady is not None:
                load = PhaseLoad([s.process.pid for s in sidecars])
                warmup, samples = steady["warmup"], steady["samples"]
                extra.update(await interleaved_echo(ctrl, disp, steady))
                extra["ping_peer"] = await pings(ctrl, disp, warmup, samples)
                log(f"  ping {extra['ping_peer']}")
                extra["throughput"] = []
                for size in steady["sizes"]:
                    # the joiner echoes nothing: one-way traffic only
                    figures = await throughput(ctrl, joiner, size, steady["window_s"])
                    extra["throughput"].append(figures)
                    log(f"  throughput {size} B: {figures}")
                extra["foreign_user_cpu_share_during_echo_ping_throughput"] = load.share()
            return pair, join, extra
        finally:
            await asyncio.gather(*(s.close() for s in sidecars))


# ------------------------------------------------------------------ bare pair


HOST_SIDE_CPU: int | None = None
FAR_SIDE_CPU: int | None = None
"""With --pin: the CPU of this process, the controller and the bare offerer (the
"host side"), and the CPU of the displays and the bare answerer (the "far side"),
which in a church is another machine. Off by default: on a 2-vCPU VM the host
and the controller then switch on one CPU and run from cold caches, which
costs the sidecar more than the contention pinning avoids."""


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


async def read_event(process: asyncio.subprocess.Process, kind: str, timeout: float) -> Any:
    assert process.stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            line = await process.stdout.readline()
            if not line:
                raise EOFError(f"bare peer exited before {kind!r}")
            event = json.loads(line)
            if event["event"] == kind:
                return event


async def bare_round(steady: dict[str, Any] | None, *, unpaced: bool = False) -> dict[str, Any]:
    """A fresh pair of bare aiortc processes; setup always, echo/throughput when asked."""
    async with Lab() as lab:
        offer_host, answer_host = lab.add_host(), lab.add_host()
        ip = answer_host.ip
        answerer = await answer_host.spawn_async(
            pinned(FAR_SIDE_CPU, [sys.executable, str(BARE_PEER), "answer", "--ip", ip]),
            stderr=asyncio.subprocess.DEVNULL,
        )
        ready_answer = await read_event(answerer, "ready", SPAWN_S)
        args = ["--ip", offer_host.ip, "--connect", f"{answer_host.ip}:{BARE_PORT}"]
        if steady is not None:
            args += ["--samples", str(steady["samples"]), "--warmup", str(steady["warmup"])]
            args += ["--window", str(steady["window_s"])]
            args += ["--sizes", ",".join(map(str, steady["sizes"]))]
            args += ["--gap-ms", str(steady["echo_gap_s"] * 1000)]
        if unpaced:
            args += ["--unpaced"]
        offerer = await offer_host.spawn_async(
            pinned(HOST_SIDE_CPU, [sys.executable, str(BARE_PEER), "offer", *args]),
            stderr=asyncio.subprocess.DEVNULL,
        )
        ready_offer = await read_event(offerer, "ready", SPAWN_S)
        load = PhaseLoad([offerer.pid, answerer.pid])
        result: dict[str, Any] = await read_event(offerer, "result", 120.0)
        result["foreign_cpu_share"] = load.share()
        result["import_s"] = [ready_offer["import_s"], ready_answer["import_s"]]
        result["udp_rcvbuf_drops"] = {
            "sender_host": udp_rcvbuf_errors(offer_host),
            "receiver_host": udp_rcvbuf_errors(answer_host),
        }
        for process in (offerer, answerer):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 5.0)
        return result


# ------------------------------------------------------------------- run


# Contamination: user-mode CPU time only, on both sides of the subtraction. Kernel time
# is left out because namespace teardown (kworkers) and packet forwarding (softirq) are
# ours but are not charged to our processes.


def machine_user_s() -> float:
    """User-mode CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (ticks[0] + ticks[1]) / CLK_TCK


def our_user_s() -> float:
    """This process and every child it reaped (sidecars, bare peers, `ip`)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    return own_cpu_seconds(user_only=True) + children


class PhaseLoad:
    """Others' share of the CPUs while a phase runs; ours are this process, its reaped
    children and the live `pids`."""

    def __init__(self, pids: Sequence[int] = ()) -> None:
        self.pids = list(pids)
        self.wall0 = time.monotonic()
        self.busy0 = machine_user_s()
        self.ours0 = self._ours()

    def _ours(self) -> float:
        return our_user_s() + sum(cpu_seconds(pid, user_only=True) for pid in self.pids)

    def share(self) -> float:
        wall = time.monotonic() - self.wall0
        foreign = max(0.0, (machine_user_s() - self.busy0) - (self._ours() - self.ours0))
        return round(foreign / wall / (os.cpu_count() or 1), 3)


def quietness() -> dict[str, Any]:
    """Load, and lab namespaces of other processes: figures taken on a busy machine lie."""
    own = f"mwl{os.getpid()}x"
    names = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=5.0, check=False
    ).stdout.split()
    return {
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "foreign_lab_namespaces": sorted(
            n for n in names if n.startswith("mwl") and not n.startswith(own)
        ),
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def setup_figures(pairs: list[dict[str, float]], joins: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "pair_both_open": summary_s([p["both_open_s"] for p in pairs]),
        "pair_breakdown_median_s": {
            k: round(statistics.median(p[k] for p in pairs), 4) for k in pairs[0]
        },
        "joiner_open": summary_s([j["open_s"] for j in joins]),
        "joiner_breakdown_median_s": {
            k: round(statistics.median(j[k] for j in joins), 4) for k in joins[0]
        },
    }


async def setup_rounds(
    rounds: int,
    logs: Path,
    level: str,
    steady: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Setup figures over `rounds` fresh labs; the last one also measures `steady`."""
    pairs: list[dict[str, float]] = []
    joins: list[dict[str, float]] = []
    steady_figures: dict[str, Any] = {}
    for r in range(rounds):
        last = r == rounds - 1
        pair, join, extra = await sidecar_round(logs, level, steady if last else None)
        log(f"sidecar round {r + 1}: pair {pair} joiner {join}")
        pairs.append(pair)
        joins.append(join)
        steady_figures.update(extra)
    return setup_figures(pairs, joins), steady_figures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    steady = {
        "warmup": args.warmup,
        "samples": args.samples,
        "echo_gap_s": args.echo_gap_ms / 1000,
        "echo_blocks": args.echo_blocks,
        "window_s": args.window,
        "sizes": args.sizes,
    }
    level = args.sidecar_log_level
    if args.pin:
        global HOST_SIDE_CPU, FAR_SIDE_CPU
        HOST_SIDE_CPU, FAR_SIDE_CPU = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, {HOST_SIDE_CPU})
    logs = Path(tempfile.mkdtemp(prefix="bench-channels-"))
    quiet_before = quietness()
    whole_run = PhaseLoad()
    setup, figures = await setup_rounds(args.rounds, logs, level, steady)

    bare: list[dict[str, Any]] = []
    for r in range(args.rounds):
        last = r == args.rounds - 1
        # The last round measures throughput; echo was measured in blocks above.
        bare.append(await bare_round({**steady, "samples": 0} if last else None))
        log(f"bare round {r + 1}: setup {bare[-1]['setup_s']}")
    bare_steady = bare[-1]
    unpaced: dict[str, Any] | None = None
    if args.unpaced_window > 0:
        # What an unpaced aiortc sender gets: shows the UDP-buffer collapse (informational).
        only = {**steady, "samples": 0, "window_s": args.unpaced_window, "sizes": args.sizes[:1]}
        unpaced = await bare_round(only, unpaced=True)
        log(f"bare unpaced: {unpaced['throughput']}")

    bare_echo_ms, bare_echo_spaced_ms = (
        figures.pop("bare_echo_ms"),
        figures.pop("bare_echo_spaced_ms"),
    )
    figures = {"setup": setup, **figures}
    baselines: dict[str, Any] = {
        "bare_setup": summary_s([b["setup_s"] for b in bare]),
        "bare_echo_ms": bare_echo_ms,
        "bare_echo_spaced_ms": bare_echo_spaced_ms,
        "bare_throughput": bare_steady["throughput"],
        "bare_throughput_udp_rcvbuf_drops": bare_steady["udp_rcvbuf_drops"],
        "foreign_user_cpu_share_during_bare_throughput": bare_steady["foreign_cpu_share"],
        "bare_throughput_unpaced": None
        if unpaced is None
        else {**unpaced["throughput"][0], "udp_rcvbuf_drops": unpaced["udp_rcvbuf_drops"]},
        "aiortc_import_s_median": round(
            statistics.median(s for b in bare for s in b["import_s"]), 4
        ),
    }
    bare_setup = baselines["bare_setup"]["median_s"]
    echo, bare_echo = figures["echo_stdio_ms"], baselines["bare_echo_ms"]
    spaced, bare_spaced = figures["echo_stdio_spaced_ms"], baselines["bare_echo_spaced_ms"]
    ratios: dict[str, Any] = {
        "setup_pair_median": ratio(setup["pair_both_open"]["median_s"], bare_setup),
        "setup_joiner_median": ratio(setup["joiner_open"]["median_s"], bare_setup),
        "echo_p50": ratio(echo["p50"], bare_echo["p50"]),
        "echo_p99": ratio(echo["p99"], bare_echo["p99"]),
        "echo_spaced_p50": ratio(spaced["p50"], bare_spaced["p50"]),
        "echo_spaced_p99": ratio(spaced["p99"], bare_spaced["p99"]),
        "ping_rtt_reported_p50_vs_bare_echo_p50": ratio(
            figures["ping_peer"]["rtt_ms_reported"]["p50"], bare_echo["p50"]
        ),
    }
    for ours, theirs in zip(figures["throughput"], baselines["bare_throughput"], strict=True):
        size = ours["payload_bytes"]
        ratios[f"throughput_{size}B_delivered"] = ratio(
            ours["delivered_per_s"], theirs["delivered_per_s"]
        )
        ratios[f"throughput_{size}B_accepted"] = ratio(
            ours["accepted_per_s"], theirs["accepted_per_s"]
        )
    return {
        "benchmark": "bench_channels",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {
            "rounds": args.rounds,
            "echo_and_ping": {
                "warmup": args.warmup,
                "samples": args.samples,
                "spaced_gap_ms": args.echo_gap_ms,
                "blocks_interleaved_with_bare": args.echo_blocks,
                "pinned_cpus": None
                if HOST_SIDE_CPU is None
                else {"host_side": HOST_SIDE_CPU, "far_side": FAR_SIDE_CPU},
            },
            "throughput": {"window_s": args.window, "payload_bytes": args.sizes},
            "sidecar_log_level": level,
            "sidecar_argv": sidecar_argv(),
            "max_outstanding_requests": MAX_OUTSTANDING,
            "bare_unpaced_window_s": args.unpaced_window,
        },
        "figures": figures,
        "baselines": baselines,
        "ratios": ratios,
        "goals": {
            "echo_p50_within_1_5x_of_bare": ratios["echo_p50"] is not None
            and ratios["echo_p50"] <= 1.5,
            "pair_open_median_s_must_5_goal_1_5": setup["pair_both_open"]["median_s"],
            "joiner_open_median_s_must_2_goal_0_5": setup["joiner_open"]["median_s"],
        },
        "quietness": {
            "before": quiet_before,
            "after": quietness(),
            "foreign_user_cpu_share_whole_run": (share := whole_run.share()),
            "trustworthy": share < FOREIGN_CPU_LIMIT,
        },
        "sidecar_logs": str(logs),
    }


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    versions = {}
    for dist in ("aiortc", "aioice", "msgspec", "jsonrpcserver"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "packages": versions,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="setup rounds, each a fresh lab")
    parser.add_argument("--samples", type=int, default=300, help="echo and ping samples")
    parser.add_argument("--warmup", type=int, default=30, help="echo and ping warm-up samples")
    parser.add_argument(
        "--echo-gap-ms", type=float, default=10.0, help="idle between spaced echo samples"
    )
    parser.add_argument(
        "--echo-blocks", type=int, default=5, help="echo blocks, each followed by a bare block"
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="host side (this process, controller, bare offerer) on one CPU, far side "
        "(displays, bare answerer) on another; measured worse for the sidecar on 2 vCPUs "
        "(the host and the controller then trade one CPU's caches)",
    )
    parser.add_argument("--window", type=float, default=5.0, help="throughput window, s")
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 4096],
        help="throughput payload sizes, bytes (comma-separated)",
    )
    parser.add_argument(
        "--unpaced-window",
        type=float,
        default=3.0,
        help="bare pair without pacing, first size only, s (0: skip)",
    )
    parser.add_argument(
        "--sidecar-log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.samples < 2 or args.window <= 0:
        parser.error("need --rounds >= 1, --samples >= 2, --window > 0")
    reason = lab_unavailable_reason()
    if reason is not None:
        print(json.dumps({"benchmark": "bench_channels", "skipped": reason}))
        return 0
    sweep_stale_labs()
    result = asyncio.run(run(args))
    if not result["quietness"]["trustworthy"]:
        log(f"WARNING: the machine was busy with other work: {result['quietness']}")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
