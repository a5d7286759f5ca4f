"""Recovery times when the network moves under a room: real sidecars in the test lab.

Each figure is seen from the hosts' side (stdio only), over several rounds, each in
a fresh lab, for the cases docs/api.md ("The network") promises:

- a display started with its link down, from link up to its channel open;
- a display's address changed while cues stream to it: from the change to the
  first cue sent after it arriving, and whether any cue was lost;
- a link down 10 s, then up (the leader's, a display's): from link up to one leader
  and every channel open;
- a process asleep 20 s (SIGSTOP), then woken (the leader, a display): from the
  wake to one leader and every channel open;
- two interfaces, one goes down under a cue stream: the longest pause in delivery.

Baseline measured in the same run: a display joining a running room, from
start_peer to its channel open (the same work as a display coming online).

    sudo uv run python bench/bench_network.py --rounds 3 > result.json

Needs Linux and root (network namespaces); prints one JSON document.
"""

from __future__ import annotations

import asyncio
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
    CueStream,
    LabPeer,
    Room,
    agree_on,
    connected,
    display,
    leader_named_since,
    messages,
    star,
    start_dual_homed,
    suspend,
)

WAIT_S = 30.0
OUTAGE_S = 10.0
SLEEP_S = 20.0

Result = dict[str, float]


async def room_of_three(room: Room) -> tuple[LabPeer, LabPeer, LabPeer]:
    ctrl, d1, d2 = await room.start(CONTROLLER, display("First"), display("Second", "stage"))
    await connected([ctrl, d1, d2], star(ctrl, [d1, d2]), WAIT_S)
    await agree_on([ctrl, d1, d2], ctrl, WAIT_S)
    return ctrl, d1, d2


async def back_together(peers: list[LabPeer], ctrl: LabPeer, since: float) -> float:
    """Seconds from `since` until one leader and every channel of the star are up."""
    await agree_on(peers, ctrl, WAIT_S)
    await connected(peers, star(ctrl, [p for p in peers if p is not ctrl]), WAIT_S)
    return time.monotonic() - since


async def joiner_channel_open(room: Room) -> Result:
    """Baseline: start_peer of a display joining a running room, to its channel open."""
    (ctrl,) = await room.start(CONTROLLER)
    await agree_on([ctrl], ctrl, WAIT_S)
    new = await room.spawn(display("Lobby", "lobby"))
    t0 = time.monotonic()
    await new.start()
    await connected([ctrl, new], star(ctrl, [new]), WAIT_S)
    return {"s": time.monotonic() - t0}


async def offline_start(room: Room) -> Result:
    (ctrl,) = await room.start(CONTROLLER)
    await agree_on([ctrl], ctrl, WAIT_S)
    new = await room.spawn(display("Lobby", "lobby"))
    new.host.set_link(False)
    await new.start()
    t0 = time.monotonic()
    new.host.set_link(True)
    await connected([ctrl, new], star(ctrl, [new]), WAIT_S)
    return {"s": time.monotonic() - t0}


async def address_change(room: Room) -> Result:
    ctrl, disp = await room.start(CONTROLLER, display("Stage", "stage"))
    await connected([ctrl, disp], star(ctrl, [disp]), WAIT_S)
    stream = CueStream(ctrl, [disp], every_s=0.02)
    await stream.flowing(10, WAIT_S)
    changed_ms = time.time() * 1000
    t0 = time.monotonic()
    disp.host.set_address("10.77.0.102")

    def after_change() -> bool:
        return any(m["sent_at"] > changed_ms for m in messages(disp, ctrl))

    await disp.client.wait_until(after_change, WAIT_S)
    arrived = next(
        at
        for at, n in disp.client.history
        if n["method"] == "webrtc:message" and n["params"]["sent_at"] > changed_ms
    )
    await stream.all_arrived(WAIT_S)  # raises if a cue was lost or doubled
    await agree_on([ctrl, disp], ctrl, WAIT_S)
    return {"s": arrived - t0, "cues": float(len(stream.sent)), "lost": 0.0}


async def link_down(room: Room, who: str) -> Result:
    ctrl, d1, d2 = await room_of_three(room)
    down = ctrl if who == "leader" else d2
    down.host.set_link(False)
    await asyncio.sleep(OUTAGE_S)  # the outage being measured around
    t0 = time.monotonic()
    down.host.set_link(True)
    return {"s": await back_together([ctrl, d1, d2], ctrl, t0)}


async def sleep_wake(room: Room, who: str) -> Result:
    ctrl, d1, d2 = await room_of_three(room)
    sleeper = ctrl if who == "leader" else d2
    t0 = await suspend(sleeper, SLEEP_S)
    if sleeper is not ctrl:
        await sleeper.client.wait_until(lambda: leader_named_since(sleeper, ctrl, t0), WAIT_S)
    return {"s": await back_together([ctrl, d1, d2], ctrl, t0)}


async def dual_homed(room: Room) -> Result:
    peers = await start_dual_homed(room, CONTROLLER, display("First"), display("Second"))
    ctrl, d1, d2 = peers
    await connected(peers, star(ctrl, [d1, d2]), WAIT_S)
    stream = CueStream(ctrl, [d1, d2], every_s=0.02)
    await stream.flowing(10, WAIT_S)
    t0 = time.monotonic()
    ctrl.host.set_link(False, "eth0")
    await stream.flowing(50, WAIT_S)
    await stream.all_arrived(WAIT_S)
    gaps = []
    for d in (d1, d2):
        times = [at for at, n in d.client.history if n["method"] == "webrtc:message" and at >= t0]
        gaps.append(max(b - a for a, b in zip([t0, *times], times, strict=False)))
    return {"s": max(gaps), "cues": float(len(stream.sent)), "lost": 0.0}


Scenario = Callable[[Room], Awaitable[Result]]
SCENARIOS: dict[str, tuple[Scenario, float | None, float | None]] = {
    # name: (measure, must, goal) in seconds
    "baseline_joiner_channel_open": (joiner_channel_open, 2.0, 0.5),
    "offline_start_link_up_channel_open": (offline_start, 3.0, 1.0),
    "address_change_cues_flow_again": (address_change, 8.0, 2.0),
    "leader_link_down_10s_room_back": (lambda r: link_down(r, "leader"), 3.0, 1.5),
    "display_link_down_10s_room_back": (lambda r: link_down(r, "display"), 3.0, 1.5),
    "leader_asleep_20s_room_back": (lambda r: sleep_wake(r, "leader"), 2.0, 1.0),
    "display_asleep_20s_room_back": (lambda r: sleep_wake(r, "display"), 2.0, 1.0),
    "dual_homed_one_down_longest_pause": (dual_homed, None, None),
}


def summary_of(samples: list[Result]) -> dict[str, Any]:
    out: dict[str, Any] = summary([s["s"] for s in samples])
    if "cues" in samples[0]:
        out["cues_sent"] = int(sum(s["cues"] for s in samples))
        out["cues_lost"] = int(sum(s["lost"] for s in samples))
    return out


async def run(rounds: int, only: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    logs = Path(tempfile.mkdtemp(prefix="bench-network-"))
    for name, (measure, must, goal) in SCENARIOS.items():
        if only and name not in only:
            continue
        samples = await rounds_of(measure, rounds, logs)
        results[name] = {**summary_of(samples), "must_s": must, "goal_s": goal, "rounds": rounds}
        print(f"{name}: {results[name]}", file=sys.stderr)
    return report("bench_network", results=results, sidecar_logs=str(logs))


if __name__ == "__main__":
    sys.exit(cli("bench_network", __doc__.splitlines()[0], list(SCENARIOS), 3, run))
