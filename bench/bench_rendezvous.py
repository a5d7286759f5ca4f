"""How fast a display finds its room where multicast does not reach.

The lab's bridge drops every multicast frame (a venue's Wi-Fi with client
isolation); a controller leads. Measured from the display's `start_peer` to
its channel to the controller open (its host's `webrtc:connected`), for:

- a display given the controller's address (`rendezvous`);
- a display given another display's address (that one answers for the room);
- a display restarted (`stop_peer`, `start_peer`) with the `room_addresses`
  its previous run reported.

Baseline measured in the same run: the same join with multicast working and
no rendezvous (mDNS alone).

    sudo uv run python bench/bench_rendezvous.py --rounds 5 > result.json

Needs Linux and root (network namespaces); prints one JSON document.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import cli, report, rounds_of, summary  # noqa: E402
from tests.e2e.room import CONTROLLER, LabPeer, Room, display  # noqa: E402

WAIT_S = 30.0


def opened_since(peer: LabPeer, other: LabPeer, since: float) -> bool:
    return any(
        at >= since
        and n["method"] == "webrtc:connected"
        and n["params"]["peer"]["peer_id"] == other.peer_id
        for at, n in peer.client.history
    )


async def start_and_time(peer: LabPeer, ctrl: LabPeer) -> float:
    started = time.monotonic()
    await peer.start()
    await peer.client.wait_until(lambda: opened_since(peer, ctrl, started), WAIT_S)
    at = next(
        at
        for at, n in peer.client.history
        if at >= started
        and n["method"] == "webrtc:connected"
        and n["params"]["peer"]["peer_id"] == ctrl.peer_id
    )
    return at - started


async def leading(room: Room, multicast: bool) -> LabPeer:
    if not multicast:
        room.lab.drop_multicast()
    (ctrl,) = await room.start(CONTROLLER)
    await ctrl.client.wait_until(lambda: ctrl.client.leader_id == ctrl.peer_id, WAIT_S)
    return ctrl


async def baseline_mdns(room: Room) -> float:
    ctrl = await leading(room, multicast=True)
    return await start_and_time(await room.spawn(display("Audience")), ctrl)


async def leaders_address(room: Room) -> float:
    ctrl = await leading(room, multicast=False)
    disp = await room.spawn({**display("Audience"), "rendezvous": [ctrl.host.ip]})
    return await start_and_time(disp, ctrl)


async def a_displays_address(room: Room) -> float:
    ctrl = await leading(room, multicast=False)
    first = await room.spawn({**display("Audience"), "rendezvous": [ctrl.host.ip]})
    await start_and_time(first, ctrl)
    second = await room.spawn({**display("Stage", "stage"), "rendezvous": [first.host.ip]})
    return await start_and_time(second, ctrl)


async def remembered_restart(room: Room) -> float:
    ctrl = await leading(room, multicast=False)
    disp = await room.spawn({**display("Audience"), "rendezvous": [ctrl.host.ip]})
    await start_and_time(disp, ctrl)
    remembered = (await disp.client.call("get_leader_status"))["room_addresses"]
    await disp.client.call("stop_peer")
    disp.params = {**display("Audience"), "rendezvous": remembered}
    return await start_and_time(disp, ctrl)


SCENARIOS: dict[str, Callable[[Room], Awaitable[float]]] = {
    "baseline_mdns_join": baseline_mdns,
    "no_multicast_leaders_address": leaders_address,
    "no_multicast_a_displays_address": a_displays_address,
    "no_multicast_restart_with_room_addresses": remembered_restart,
}


async def run(rounds: int, only: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    logs = Path(tempfile.mkdtemp(prefix="bench-rendezvous-"))
    for name, measure in SCENARIOS.items():
        if only and name not in only:
            continue
        samples = await rounds_of(measure, rounds, logs)
        results[name] = {**summary(samples), "must_s": 2.0, "rounds": rounds}
        print(f"{name}: {results[name]}", file=sys.stderr)
    return report("bench_rendezvous", results=results, sidecar_logs=str(logs))


if __name__ == "__main__":
    sys.exit(cli("bench_rendezvous", __doc__.splitlines()[0], list(SCENARIOS), 5, run))
