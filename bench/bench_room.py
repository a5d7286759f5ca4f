"""Election timings of the timing targets of docs/architecture.md, on real sidecars in the test lab.

Each figure is measured from the host's point of view (stdio only), over
several rounds, each in a fresh lab. Baselines measured in the same run:
bare mDNS (two `Discovery` probes seeing each other, the floor under any
election) and a bare Python process leaving on stdin EOF.

    sudo uv run python bench/bench_room.py --rounds 5 > result.json

Needs Linux and root (network namespaces); prints one JSON document.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import cli, report, rounds_of, summary  # noqa: E402
from tests.e2e.room import (  # noqa: E402
    CONTROLLER,
    LabPeer,
    Room,
    agree_on,
    connected_ids,
    display,
)
from tests.lab import Lab  # noqa: E402

PROBE = REPO / "tests" / "e2e" / "discovery_probe.py"
WAIT_S = 30.0


def successor_of(peers: list[LabPeer]) -> LabPeer:
    return min(peers, key=lambda p: (p.info["started_at"], p.peer_id))


async def started_together(room: Room) -> float:
    """Two peers started at once, both agree on the leader."""
    peers = [await room.spawn(CONTROLLER), await room.spawn(display("Audience"))]
    t0 = time.monotonic()
    await asyncio.gather(*(p.start() for p in peers))
    await agree_on(peers, peers[0], WAIT_S)
    return time.monotonic() - t0


async def joiner(room: Room, warm: bool = False) -> float:
    """A display joins a running room: start_peer to its leader_changed.

    Cold: start_peer right after the sidecar's first answer, so it waits for the
    network stack's imports (~0.6 s here; the first answer does not). Warm: the
    same sidecar started and stopped once before, so only the join is timed."""
    ctrl, d1 = await room.start(CONTROLLER, display("Audience"))
    await agree_on([ctrl, d1], ctrl, WAIT_S)
    new = await room.spawn(display("Lobby", "lobby"))
    if warm:
        await new.start()
        await new.client.wait_until(lambda: new.client.leader_id == ctrl.peer_id, WAIT_S)
        await new.client.call("stop_peer")
        new.client.latest.pop("webrtc:leader_changed", None)  # wait for a new one
    t0 = time.monotonic()
    await new.start()
    await new.client.wait_until(lambda: new.client.leader_id == ctrl.peer_id, WAIT_S)
    return time.monotonic() - t0


async def joiner_channel(room: Room) -> float:
    """A display joins a running room, cold: start_peer to its channel with the
    controller open (webrtc:connected), right after the process's first answer."""
    ctrl, d1 = await room.start(CONTROLLER, display("Audience"))
    await agree_on([ctrl, d1], ctrl, WAIT_S)
    new = await room.spawn(display("Lobby", "lobby"))
    t0 = time.monotonic()
    await new.start()
    await new.client.wait_until(lambda: ctrl.peer_id in connected_ids(new), WAIT_S)
    return time.monotonic() - t0


async def warm_joiner(room: Room) -> float:
    return await joiner(room, warm=True)


async def three_peers(room: Room) -> tuple[LabPeer, list[LabPeer]]:
    ctrl, d1, d2 = await room.start(CONTROLLER, display("First"), display("Second"))
    await agree_on([ctrl, d1, d2], ctrl, WAIT_S)
    return ctrl, [d1, d2]


async def leader_killed(room: Room) -> float:
    ctrl, survivors = await three_peers(room)
    t0 = time.monotonic()
    ctrl.client.process.kill()
    await agree_on(survivors, successor_of(survivors), WAIT_S)
    return time.monotonic() - t0


async def leader_link_down(room: Room) -> float:
    ctrl, survivors = await three_peers(room)
    t0 = time.monotonic()
    ctrl.host.cut()
    await agree_on(survivors, successor_of(survivors), WAIT_S)
    return time.monotonic() - t0


async def partition_heals(room: Room) -> float:
    ctrl, survivors = await three_peers(room)
    ctrl.host.cut()
    await agree_on(survivors, successor_of(survivors), WAIT_S)
    t0 = time.monotonic()
    ctrl.host.heal()
    await agree_on([ctrl, *survivors], ctrl, WAIT_S)
    return time.monotonic() - t0


async def stdin_closed(room: Room) -> float:
    (peer,) = await room.start(CONTROLLER)
    await agree_on([peer], peer, WAIT_S)
    t0 = time.monotonic()
    peer.client.close_stdin()
    await peer.client.wait_exit(WAIT_S)
    return time.monotonic() - t0


async def baseline_bare_exit(lab: Lab) -> float:
    """A Python process that only waits for stdin EOF, then exits."""
    host = lab.add_host()
    code = "import sys; print('ready', flush=True); sys.stdin.read()"
    process = await host.spawn_async([sys.executable, "-c", code])
    assert process.stdout is not None and process.stdin is not None
    await asyncio.wait_for(process.stdout.readline(), WAIT_S)
    t0 = time.monotonic()
    process.stdin.close()
    await asyncio.wait_for(process.wait(), WAIT_S)
    return time.monotonic() - t0


async def baseline_bare_mdns(lab: Lab) -> float:
    """Two bare Discovery instances started together: until each saw the other."""
    probes = []
    for host in lab.hosts(2):
        process = await host.spawn_async([sys.executable, str(PROBE), "--room", "bench"])
        probes.append(process)

    async def event(process: asyncio.subprocess.Process, kind: str) -> dict[str, Any]:
        assert process.stdout is not None
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), WAIT_S)
            if not line:
                raise EOFError("probe exited")
            parsed: dict[str, Any] = json.loads(line)
            if parsed["event"] == kind:
                return parsed

    for process in probes:
        await event(process, "ready")
    for process in probes:
        assert process.stdin is not None
        process.stdin.write(b'{"cmd": "start"}\n')
    starts = [await event(p, "starting") for p in probes]
    seen = [await event(p, "seen") for p in probes]
    return float(max(s["t"] for s in seen) - min(s["t"] for s in starts))


Scenario = Callable[[Room], Awaitable[float]]
SCENARIOS: dict[str, tuple[Scenario, float, float]] = {
    # name: (measure, must, goal) in seconds, from the timing targets of docs/architecture.md
    "started_together_leader_agreed": (started_together, 5.0, 1.5),
    "joiner_follows_running_room": (joiner, 2.0, 0.5),
    "joiner_follows_running_room_warm": (warm_joiner, 2.0, 0.5),
    "joiner_channel_open_cold": (joiner_channel, 2.0, 0.5),
    "leader_killed_new_leader": (leader_killed, 3.0, 1.0),
    "leader_link_down_new_leader": (leader_link_down, 8.0, 6.5),
    "partition_heals_one_leader": (partition_heals, 5.0, 2.0),
    "stdin_closed_process_gone": (stdin_closed, 3.0, 0.5),
}


async def run(rounds: int, only: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    logs = Path(tempfile.mkdtemp(prefix="bench-room-"))
    for name, (measure, must, goal) in SCENARIOS.items():
        if only and name not in only:
            continue
        samples = await rounds_of(measure, rounds, logs)
        results[name] = {**summary(samples), "must_s": must, "goal_s": goal, "rounds": rounds}
        print(f"{name}: {results[name]}", file=sys.stderr)
    baselines: dict[str, Any] = {}
    for name, base in (
        ("bare_mdns_see_each_other", baseline_bare_mdns),
        ("bare_python_stdin_eof_exit", baseline_bare_exit),
    ):
        samples = []
        for _ in range(rounds):
            async with Lab() as lab:
                samples.append(await base(lab))
        baselines[name] = {**summary(samples), "rounds": rounds}
    return report("bench_room", results=results, baselines=baselines, sidecar_logs=str(logs))


if __name__ == "__main__":
    sys.exit(cli("bench_room", __doc__.splitlines()[0], list(SCENARIOS), 5, run))
