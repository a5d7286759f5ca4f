"""The newcomer's first look: a controller and two displays, each a real sidecar
in its own network namespace, elect a leader, open data channels and echo.

Every notification is printed as it arrives. Linux, as root (namespaces):

    ./scripts/demo
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.room import CONTROLLER, LabPeer, Room, display  # noqa: E402
from tests.lab import Lab, lab_unavailable_reason, sweep_stale_labs  # noqa: E402

NAMES: dict[str, str] = {}


def short(peer_id: str) -> str:
    return NAMES.get(peer_id, peer_id[:8])


def describe(method: str, params: dict[str, Any]) -> str:
    if method == "webrtc:leader_changed":
        return f"leader is {short(params['leader_id'])} (term {params['term']})"
    if method == "webrtc:peer_list_changed":
        return "room: " + ", ".join(short(p["peer_id"]) for p in params["peers"])
    if method == "webrtc:connected":
        return f"data channel open to {short(params['peer']['peer_id'])}"
    if method == "webrtc:disconnected":
        return f"data channel to {short(params['peer_id'])} closed ({params['reason']})"
    if method == "webrtc:message":
        return f"message from {short(params['from'])}: {json.dumps(params['payload'])}"
    return json.dumps(params)


async def narrate(peer: LabPeer, label: str) -> None:
    """Print this peer's notifications as they arrive."""
    while True:
        note = await peer.client.notifications.get()
        print(f"  [{label:<9}] {note['method']:<25} {describe(note['method'], note['params'])}")


async def main() -> int:
    reason = lab_unavailable_reason()
    if reason is not None:
        print(f"demo needs the test lab: {reason}", file=sys.stderr)
        return 1
    sweep_stale_labs()
    logs = Path(tempfile.mkdtemp(prefix="mw-demo-"))
    async with Lab() as lab:
        room = Room(lab, logs)
        try:
            specs = [
                ("booth", CONTROLLER),
                ("stage", {**display("Stage monitor", "stage"), "echo": True}),
                ("lobby", {**display("Lobby TV", "lobby"), "echo": True}),
            ]
            peers = [await room.spawn(params) for _, params in specs]
            narrators = [
                asyncio.create_task(narrate(p, label))
                for p, (label, _) in zip(peers, specs, strict=True)
            ]
            print("starting a controller and two displays, each in its own namespace...")
            infos = await asyncio.gather(*(p.start() for p in peers))
            for info, (label, _) in zip(infos, specs, strict=True):
                NAMES[info["peer_id"]] = label
            booth = peers[0]
            others = {p.peer_id for p in peers[1:]}
            await booth.client.wait_until(
                lambda: (
                    {
                        n["params"]["peer"]["peer_id"]
                        for _, n in booth.client.history
                        if n["method"] == "webrtc:connected"
                    }
                    >= others
                ),
                20,
            )
            print("\nbooth sends a cue to every display (they echo it back):")
            await booth.client.call("send_control_message", {"payload": {"cue": "next slide"}})
            await booth.client.wait_until(
                lambda: sum(n["method"] == "webrtc:message" for _, n in booth.client.history) >= 2,
                10,
            )
            for peer_id in sorted(others):
                rtt = await booth.client.call("ping_peer", {"peer_id": peer_id})
                print(f"  ping {short(peer_id)}: {rtt['rtt_ms']:.2f} ms")
            status = await booth.client.call("get_leader_status")
            print(f"\nbooth's leader status: {json.dumps(status['state'])}, term {status['term']}")
            print("stopping (stdin closed: each sidecar leaves the room and exits)...")
            for task in narrators:
                task.cancel()
        finally:
            await room.close()
    print(f"done. sidecar logs: {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
