"""How fast a display that joins mid-service has the room's retained state.

A controller and one display run; the controller sets N keys of 200 B each
(N = 1, 100, 1000) and the display has them all. Then a second display
starts. Measured on its host's side (stdio only): from `webrtc:connected`
(its channel to the controller open) to the `webrtc:state` that completes
the map (docs/api.md, "Retained state": the issue's bound is a median of
0.5 s and at most 1 s for three keys).

Baseline measured in the same run: from the same `webrtc:connected` to a
200 B control message that the controller sends the moment it sees the
channel open (one live message, no retained state).

    sudo uv run python bench/bench_state.py --rounds 5 > result.json

Needs Linux and root (network namespaces); prints one JSON document.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import cli, report, rounds_of, summary  # noqa: E402
from tests.e2e.room import (  # noqa: E402
    CONTROLLER,
    LabPeer,
    Room,
    connected,
    connected_at,
    display,
    star,
)

WAIT_S = 30.0
VALUE = "x" * 196  # 198 bytes as JSON, with the quotes: a 200 B value give or take
SIZES = {"keys_1": 1, "keys_100": 100, "keys_1000": 1000, "baseline_live_message": 0}


def keys_held(peer: LabPeer) -> int:
    return len(
        {n["params"]["key"] for _, n in peer.client.history if n["method"] == "webrtc:state"}
    )


async def set_keys(ctrl: LabPeer, count: int) -> None:
    """`count` keys, a value and no message each, 50 requests in flight."""
    for start in range(0, count, 50):
        await asyncio.gather(
            *(
                ctrl.client.call(
                    "send_control_message",
                    {"payload": f"{n:04d}{VALUE}", "retain": f"key-{n:04d}", "to": []},
                )
                for n in range(start, min(start + 50, count))
            )
        )


def measure(count: int) -> Any:
    async def one(room: Room) -> float:
        ctrl, d1 = await room.start(CONTROLLER, display("Audience"))
        await connected([ctrl, d1], star(ctrl, [d1]), WAIT_S)
        await set_keys(ctrl, count)
        await d1.client.wait_until(lambda: keys_held(d1) == count, WAIT_S)
        late = await room.spawn(display("Lobby", "lobby"))
        await late.start()
        if count == 0:  # the baseline: a live message sent on the channel's opening
            await ctrl.client.wait_until(
                lambda: any(
                    n["method"] == "webrtc:connected"
                    and n["params"]["peer"]["peer_id"] == late.peer_id
                    for _, n in ctrl.client.history
                ),
                WAIT_S,
            )
            await ctrl.client.call("send_control_message", {"payload": VALUE, "to": late.peer_id})
            await late.client.wait_until(
                lambda: any(n["method"] == "webrtc:message" for _, n in late.client.history), WAIT_S
            )
            done = next(at for at, n in late.client.history if n["method"] == "webrtc:message")
        else:
            await late.client.wait_until(lambda: keys_held(late) == count, WAIT_S)
            done = [at for at, n in late.client.history if n["method"] == "webrtc:state"][-1]
        return done - connected_at(late, ctrl)

    return one


async def run(rounds: int, only: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    logs = Path(tempfile.mkdtemp(prefix="bench-state-"))
    for name, count in SIZES.items():
        if only and name not in only:
            continue
        samples = await rounds_of(measure(count), rounds, logs)
        results[name] = {**summary(samples), "keys": count, "value_bytes": 200, "rounds": rounds}
        print(f"{name}: {results[name]}", file=sys.stderr)
    return report("bench_state", results=results, sidecar_logs=str(logs))


if __name__ == "__main__":
    sys.exit(cli("bench_state", __doc__.splitlines()[0], list(SIZES), 5, run))
