"""Browser displays against sidecars: real Chromium (headless) in lab namespaces.

- Echo round trip through the page: a controller sends a cue to a browser
  display that echoes it (`echo=1` in its URL); from `send_control_message`
  to the echo's `webrtc:message` on the controller's host, one cue at a
  time. Baseline in the same run: the same with a sidecar display.
- Fan-out: a controller and 10 browser tabs (one Chromium, each tab its own
  web peer, all echoing); from sending one cue to all to the last echo.

    sudo uv run python bench/bench_browser.py --rounds 3 > result.json

Needs Linux, root (network namespaces), chromium and chromium-driver.
"""

from __future__ import annotations

import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import cli, report, rounds_of  # noqa: E402
from tests.browser.page import Page  # noqa: E402
from tests.e2e.room import CONTROLLER, LabPeer, Room, connected_ids, display  # noqa: E402

WAIT_S = 30.0
CUES = 200
TABS = 10


def echoes_from(ctrl: LabPeer, peer_id: str) -> int:
    return sum(
        1
        for _, n in ctrl.client.history
        if n["method"] == "webrtc:message" and n["params"]["from"] == peer_id
    )


def all_echoes(ctrl: LabPeer) -> int:
    return sum(1 for _, m in ctrl.client.history if m["method"] == "webrtc:message")


def reached(ctrl: LabPeer, expected: int) -> bool:
    return all_echoes(ctrl) >= expected


async def round_trips(ctrl: LabPeer, peer_id: str) -> list[float]:
    samples = []
    for n in range(CUES):
        before = echoes_from(ctrl, peer_id)
        started = time.perf_counter()
        await ctrl.client.call("send_control_message", {"payload": {"cue": n}, "to": peer_id})
        await ctrl.client.wait_until(lambda: echoes_from(ctrl, peer_id) > before, 5)  # noqa: B023
        samples.append(time.perf_counter() - started)
    return samples


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


async def leading(room: Room) -> LabPeer:
    (ctrl,) = await room.start(CONTROLLER)
    await ctrl.client.wait_until(lambda: ctrl.client.leader_id == ctrl.peer_id, WAIT_S)
    return ctrl


async def browser_echo(room: Room) -> list[float]:
    ctrl = await leading(room)
    page = await Page.open(
        room.lab.add_host("phone"), f"http://{ctrl.host.ip}:3010/#name=Phone&echo=1"
    )
    try:
        joined = "const p = window.__mw && window.__mw.peer;"
        await page.wait(f"{joined} return !!(p && p.leaderStatus().leader_id);", WAIT_S)
        phone = str((await page.eval("return window.__mw.peer.selfInfo();"))["peer_id"])
        await ctrl.client.wait_until(lambda: phone in connected_ids(ctrl), WAIT_S)
        return await round_trips(ctrl, phone)
    finally:
        await page.close()


async def sidecar_echo(room: Room) -> list[float]:
    ctrl = await leading(room)
    disp = await room.spawn({**display("Stage", "stage"), "echo": True})
    await disp.start()
    await ctrl.client.wait_until(lambda: disp.peer_id in connected_ids(ctrl), WAIT_S)
    return await round_trips(ctrl, disp.peer_id)


async def fan_out(room: Room) -> list[float]:
    ctrl = await leading(room)
    url = f"http://{ctrl.host.ip}:3010/#echo=1&name=Tab"
    page = await Page.open(room.lab.add_host("tabs"), url)
    try:
        for _ in range(TABS - 1):
            await page.tab(url)
        await ctrl.client.wait_until(lambda: len(connected_ids(ctrl)) == TABS, WAIT_S * 2)
        samples = []
        for n in range(20):
            expected = all_echoes(ctrl) + TABS
            started = time.perf_counter()
            await ctrl.client.call("send_control_message", {"payload": {"cue": n}})
            await ctrl.client.wait_until(functools.partial(reached, ctrl, expected), 10)
            samples.append(time.perf_counter() - started)
        return samples
    finally:
        await page.close()


SCENARIOS: dict[str, Any] = {
    "baseline_sidecar_display_echo": sidecar_echo,
    "browser_display_echo": browser_echo,
    "fan_out_one_cue_to_10_browser_tabs_until_last_echo": fan_out,
}


async def run(rounds: int, only: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    logs = Path(tempfile.mkdtemp(prefix="bench-browser-"))
    for name, measure in SCENARIOS.items():
        if only and name not in only:
            continue
        batches = await rounds_of(measure, rounds, logs)
        samples = [s for batch in batches for s in batch]
        results[name] = {**percentiles(samples), "samples": len(samples), "rounds": rounds}
        print(f"{name}: {results[name]}", file=sys.stderr)
    return report("bench_browser", results=results, sidecar_logs=str(logs))


if __name__ == "__main__":
    sys.exit(cli("bench_browser", __doc__.splitlines()[0], list(SCENARIOS), 3, run))
