"""A wall of screens, before and after a change, in the same run: the echo
round trip and a fan-out from one controller to N sidecar displays.

Each variant is a source tree of the sidecar (`--variant NAME=PATH`, run as
`python -P -m sidecar` with PYTHONPATH=PATH, so each tree's own code runs with
the same interpreter and dependencies). The variants take turns, block by
block (a fresh lab and fresh sidecars each block), so both see the same
machine (in ABBA order: neither always runs first): on a 2-core VM the same
figure drifts by tens of percent between minutes. Per block, measured from the host's side of stdio:

1. `connected_s`: start_peer on the controller and N displays at once, until
   the controller reports every display connected;
2. `echo_ms`: send_control_message to one display that echoes, to the echo's
   webrtc:message on the controller, one at a time (the bare aiortc round
   trip is bench_channels.py's baseline);
3. `fanout_ms`: send_control_message to every display, to the webrtc:message
   on the last display to show it (cues paced --gap-ms apart);
4. `controller_cpu_ms_per_cue`: the controller's CPU time (user + system,
   /proc/<pid>/stat) over the fan-out, per cue; `..._net_of_idle`: less what
   the room costs it with no cue (pings, acks), measured just before over the
   same length of time.

Sidecars run with `--log-level info`, as the app runs them.

    sudo uv run python bench/bench_fanout.py --variant before=/work/base \\
        --variant after=. --displays 30 --blocks 2 > result.json

Needs Linux and root (network namespaces); prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import report  # noqa: E402
from tests.e2e.room import CONTROLLER, LabPeer, Room, display, until  # noqa: E402
from tests.lab import Lab, lab_unavailable_reason, sweep_stale_labs  # noqa: E402
from tests.sidecar_proc import SidecarClient  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONNECT_S = 120.0
CUE_S = 10.0


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(at(0.99), 2),
        "max": round(ordered[-1], 2),
        "n": len(ordered),
    }


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def received(peer: LabPeer, message_id: str) -> float | None:
    for at, note in peer.client.history:
        if note["method"] == "webrtc:message" and note["params"]["message_id"] == message_id:
            return at
    return None


def echoed(peer: LabPeer, payload: Any) -> float | None:
    for at, note in peer.client.history:
        if note["method"] == "webrtc:message" and note["params"]["payload"] == payload:
            return at
    return None


def echo_back(peer: LabPeer, payload: Any) -> bool:
    return echoed(peer, payload) is not None


def shown(peer: LabPeer, message_id: str) -> bool:
    return received(peer, message_id) is not None


async def spawn(room: Room, params: dict[str, Any]) -> LabPeer:
    host = room.lab.add_host()
    log = room.logs / f"{host.name}.log"
    client = await SidecarClient.spawn_in(host, "--log-level", "info", log=log)
    await client.call("get_leader_status", timeout=60)
    peer = LabPeer(host, client, params)
    room.peers.append(peer)
    return peer


async def block(tree: Path, displays: int, cues: int, echoes: int, gap_s: float) -> dict[str, Any]:
    os.environ["MW_SIDECAR_BIN"] = f"env PYTHONPATH={tree} {sys.executable} -P -m sidecar"
    with tempfile.TemporaryDirectory(prefix="mw-fanout-") as logs:
        async with Lab() as lab:
            room = Room(lab, Path(logs))
            try:
                ctrl = await spawn(room, CONTROLLER)
                echo = await spawn(room, {**display("Echo"), "echo": True})
                wall = [await spawn(room, display(f"D{n}")) for n in range(displays - 1)]
                screens = [echo, *wall]
                t0 = time.monotonic()
                await asyncio.gather(*(p.start() for p in [ctrl, *screens]))
                ids = {p.peer_id for p in screens}

                def all_connected() -> bool:
                    seen = {
                        n["params"]["peer"]["peer_id"]
                        for _, n in ctrl.client.history
                        if n["method"] == "webrtc:connected"
                    }
                    return ids <= seen

                await ctrl.client.wait_until(all_connected, CONNECT_S)
                connected_s = time.monotonic() - t0

                echo_ms = []
                for n in range(echoes + 5):
                    payload = {"echo": n}
                    sent = time.monotonic()
                    await ctrl.client.call(
                        "send_control_message", {"payload": payload, "to": echo.peer_id}
                    )
                    await ctrl.client.wait_until(functools.partial(echo_back, ctrl, payload), CUE_S)
                    back = echoed(ctrl, payload)
                    assert back is not None
                    if n >= 5:  # warm-up
                        echo_ms.append((back - sent) * 1000)

                await asyncio.sleep(1.0)  # the echoes' acks settle
                idle_started, idle_cpu = time.monotonic(), cpu_s(ctrl.client.process.pid)
                await asyncio.sleep(cues * gap_s)  # the room's own cost (pings, acks) meanwhile
                idle_rate = (cpu_s(ctrl.client.process.pid) - idle_cpu) / (
                    time.monotonic() - idle_started
                )
                fanout_ms = []
                fanout_started = time.monotonic()
                cpu_before = cpu_s(ctrl.client.process.pid)
                for n in range(cues):
                    sent = time.monotonic()
                    result = await ctrl.client.call(
                        "send_control_message", {"payload": {"cue": n, "text": f"Verse {n}"}}
                    )
                    mid = result["message_id"]
                    await until(screens, functools.partial(shown, message_id=mid), CUE_S)
                    last = max(t for p in screens if (t := received(p, mid)) is not None)
                    fanout_ms.append((last - sent) * 1000)
                    await asyncio.sleep(gap_s)
                cpu = cpu_s(ctrl.client.process.pid) - cpu_before
                idle = idle_rate * (time.monotonic() - fanout_started)
                return {
                    "connected_s": round(connected_s, 2),
                    "echo_ms": echo_ms,
                    "fanout_ms": fanout_ms,
                    "controller_cpu_s": round(cpu, 3),
                    "controller_idle_cpu_s": round(idle, 3),
                    "cues": cues,
                }
            finally:
                await room.close()


async def run(args: argparse.Namespace, variants: dict[str, Path]) -> dict[str, Any]:
    blocks: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    load_before = os.getloadavg()
    order = list(variants.items())
    for n in range(args.blocks):
        # ABBA: neither variant always runs first (right after the other's teardown)
        for name, tree in order if n % 2 == 0 else order[::-1]:
            print(f"bench_fanout: {name} ({tree}), {args.displays} displays", file=sys.stderr)
            blocks[name].append(
                await block(tree, args.displays, args.cues, args.echoes, args.gap_ms / 1000)
            )
    results = {}
    for name, done in blocks.items():
        cues = sum(b["cues"] for b in done)
        results[name] = {
            "tree": str(variants[name]),
            "connected_s": [b["connected_s"] for b in done],
            "echo_ms": percentiles([x for b in done for x in b["echo_ms"]]),
            "fanout_last_display_ms": percentiles([x for b in done for x in b["fanout_ms"]]),
            "controller_cpu_ms_per_cue": round(
                1000 * sum(b["controller_cpu_s"] for b in done) / cues, 2
            ),
            "controller_cpu_ms_per_cue_net_of_idle": round(
                1000 * sum(b["controller_cpu_s"] - b["controller_idle_cpu_s"] for b in done) / cues,
                2,
            ),
            "per_block": [
                {
                    "echo_p50_ms": round(statistics.median(b["echo_ms"]), 3),
                    "fanout_p50_ms": round(statistics.median(b["fanout_ms"]), 2),
                    "cpu_ms_per_cue_net": round(
                        1000 * (b["controller_cpu_s"] - b["controller_idle_cpu_s"]) / b["cues"], 2
                    ),
                }
                for b in done
            ],
        }
    return report(
        "bench_fanout",
        displays=args.displays,
        blocks=args.blocks,
        cues_per_block=args.cues,
        echoes_per_block=args.echoes,
        gap_ms=args.gap_ms,
        load_average_before=[round(x, 2) for x in load_before],
        variants=results,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=source tree")
    parser.add_argument("--displays", type=int, default=30)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--cues", type=int, default=20)
    parser.add_argument("--echoes", type=int, default=100)
    parser.add_argument("--gap-ms", type=float, default=100.0)
    args = parser.parse_args()
    reason = lab_unavailable_reason()
    if reason is not None:
        print(json.dumps({"benchmark": "bench_fanout", "skipped": reason}))
        return 0
    variants: dict[str, Path] = {}
    for spec in args.variant:
        name, _, path = spec.partition("=")
        variants[name] = Path(path).resolve()
    sweep_stale_labs()
    print(json.dumps(asyncio.run(run(args, variants)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
