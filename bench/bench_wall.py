"""A wall of screens: one controller, sidecar displays and browser displays
(headless Chromium and Firefox with WebRTC) at once; every screen shows every cue.

One lab per round. In it a controller and `--sidecars` sidecar displays
(each its own namespace, `--log-level info`, as the app runs them), then
browser screens added stage by stage: `--browsers 0 10 20 30` are the
cumulative numbers of browser screens (tabs) at each stage. The stage with 0
browsers is the baseline: the same cues to the sidecar displays alone, from
the same controller in the same run. Each new browser runs in a lab host of
its own with `--tabs` screens, the engines taking turns (Chromium, Firefox,
…), so half the screens are in each engine. Every browser screen opens the
controller's display page; with the default mesh every display connects to
the controller only.

Per stage, once every screen's channel to the controller is open: a web
peer whose direct channel does not open within 3 s is relayed through the
leader's signaling and tries a direct path again every 10 s (docs/api.md,
"Web peers"), so the bench waits up to `--direct-s` for every screen to be
direct and reports the screens still relayed at the first cue and after
the last. Then two warm-up cues every screen shows (the first mounts
`#last-message`), the controller's CPU with no cue for as long as the cues
will take (pings, acks: the room's idle cost), and `--cues` cues,
`send_control_message {"payload": "cue N"}` to everyone, one every
`--gap-ms` (the browsers are not polled meanwhile: every screen's times are
read after the last cue). Measured:

- `last_screen_ms`, per cue: from `send_control_message` (the bench's clock
  just before the request is written) to the text on the last screen to
  show it; p50 / p99 / max across the cues (with 20 cues the p99 is the
  slowest cue). Also the last screen of each kind, and every (screen, cue).
  A browser screen's time is when `#last-message` first had the cue as its
  text: a MutationObserver in the page records `Date.now()` then (React's
  commit; the paint follows at the screen's next frame, not measured:
  hidden windows do not paint). The browsers, the sidecars and the bench
  share the machine's wall clock (CLOCK_REALTIME; `Date.now()` is in whole
  milliseconds). A sidecar display's time is when its `webrtc:message`
  reached the bench through stdio (the sidecar stamps no receive time),
  on the bench's monotonic clock. A cue some screen never showed (say, one
  that lagged a whole gap and React rendered only the next) is left out of
  `last_screen_ms` and counted in `missing_screen_cues`;
  `cues_slower_than_the_gap` counts those whose last screen took longer
  than `--gap-ms` (then cues overlapped).
- `controller_cpu_ms_per_cue`: the controller's CPU (user + system,
  /proc/<pid>/stat) from the first cue to one gap after the last, per cue;
  `..._net_of_idle`: less the idle cost measured just before at the same rate.

How a browser's screens are read: WebDriver evals reach a browser's first
tab only (tests/browser/page.py), so the first tab opens the others itself
with `window.open` (same origin: it holds their `window` objects), installs
the observer in each and reads every screen's times. Windows opened that
way belong to their opener's browsing context group, so all screens of one
browser run their scripts on one renderer (one event loop); screens in
separate browsers do not. `--tabs` sets how many share one.

    sudo uv run python bench/bench_wall.py > small.json        # the smoke
    sudo uv run python bench/bench_wall.py --full > wall.json  # the issue's wall

Small (the default): 2 sidecar displays, stages of 0 and 4 browser screens
(2 to a browser), 3 cues. `--full`: 5 sidecar displays, stages of 0, 10, 20
and 30 browser screens (5 to a browser: 3 Chromium and 3 Firefox at the
end), 20 cues. Any setting given alongside overrides.

Needs Linux, root (network namespaces), chromium and chromium-driver,
firefox-esr and geckodriver; prints one JSON document. Every browser and
sidecar is closed at the end, on failure too; a round that overruns
`--deadline-s` is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import report  # noqa: E402
from tests.browser.page import WEBRTC_ENGINES, Page, browser_missing  # noqa: E402
from tests.e2e.room import CONTROLLER, LabPeer, Room, connected_ids, display, until  # noqa: E402
from tests.lab import Lab, lab_unavailable_reason, sweep_stale_labs  # noqa: E402
from tests.sidecar_proc import SidecarClient  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PORT = 3010  # the display page, served by every peer on its signaling port
OPEN_S = 90.0  # one browser started and its first page loaded
READY_S = 60.0  # a browser's other windows loaded and watched
CONNECT_S = 120.0  # every screen of a stage connected to the controller
CUE_S = 10.0  # a sidecar display has a cue
SHOWN_S = 30.0  # every screen showed the warm-up cues; the last cues' stragglers
WARM_UP = 2
SMALL = {"sidecars": 2, "browsers": [0, 4], "tabs": 2, "cues": 3}
FULL = {"sidecars": 5, "browsers": [0, 10, 20, 30], "tabs": 5, "cues": 20}

# In a browser's first tab: open the other screens (same origin: their windows are reachable).
OPEN_JS = """
const urls = %s;
const wall = window.__wall || (window.__wall = {screens: [window]});
for (const url of urls) {
  const w = window.open(url, "wall-" + wall.screens.length, "popup,width=800,height=450");
  if (!w) throw new Error("window.open was refused (a popup blocker?)");
  wall.screens.push(w);
}
return wall.screens.length;
"""
# Idempotent, polled: watch #last-message in every screen whose page has loaded; all watched?
WATCH_JS = """
const wall = window.__wall;
let watched = 0;
for (const w of wall.screens) {
  if (w.closed || w.location.href === "about:blank") continue;
  const doc = w.document;
  if (doc.readyState !== "complete" || !doc.getElementById("root")) continue;
  if (!w.__seen) {
    const seen = {};
    const note = () => {
      const el = doc.getElementById("last-message");
      const text = el && el.textContent && el.textContent.trim();
      if (text && !(text in seen)) seen[text] = Date.now();
    };
    const what = {subtree: true, childList: true, characterData: true};
    new w.MutationObserver(note).observe(doc, what);
    w.__seen = seen;
    note();
  }
  watched += 1;
}
return watched === wall.screens.length;
"""
# Every screen's peer id once each web peer knows the leader (false before).
JOINED_JS = """
const ids = window.__wall.screens.map((w) => {
  const p = w.__mw && w.__mw.peer;
  return p && p.leaderStatus().leader_id ? String(p.selfInfo().peer_id) : null;
});
return ids.every((i) => i) && ids;
"""
SHOWN_JS = """
const texts = %s;
return window.__wall.screens.every((w) => w.__seen && texts.every((t) => t in w.__seen));
"""
SEEN_JS = "return window.__wall.screens.map((w) => (w.__seen ? Object.assign({}, w.__seen) : {}));"


@dataclass
class Browser:
    page: Page
    engine: str
    screens: int
    peer_ids: list[str] = field(default_factory=list)


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def percentiles(samples: list[float]) -> dict[str, float] | None:
    if not samples:
        return None
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "min": round(ordered[0], 2),
        "p50": round(statistics.median(ordered), 2),
        "p99": round(at(0.99), 2),
        "max": round(ordered[-1], 2),
        "n": len(ordered),
    }


def received_at(peer: LabPeer, text: str) -> float | None:
    """When `peer`'s webrtc:message with payload `text` reached the bench (monotonic)."""
    for at, note in peer.client.history:
        if note["method"] == "webrtc:message" and note["params"]["payload"] == text:
            return at
    return None


def has(peer: LabPeer, text: str) -> bool:
    return received_at(peer, text) is not None


async def spawn(room: Room, params: dict[str, Any]) -> LabPeer:
    host = room.lab.add_host()
    log = room.logs / f"{host.name}.log"
    client = await SidecarClient.spawn_in(host, "--log-level", "info", log=log)
    room.peers.append(LabPeer(host, client, params))
    await client.call("get_leader_status", timeout=60)
    return room.peers[-1]


async def add_browsers(
    room: Room, ctrl: LabPeer, browsers: list[Browser], screens: int, tabs: int, engines: list[str]
) -> None:
    """`screens` more browser screens, `tabs` to a browser (each in a host of its own),
    the engines taking turns; every screen watched."""
    while screens > 0:
        here = min(tabs, screens)
        engine = engines[len(browsers) % len(engines)]
        name = f"{engine[:2]}{len(browsers)}"
        print(f"bench_wall: {name}: {engine}, {here} screens", file=sys.stderr)
        urls = [f"http://{ctrl.host.ip}:{PORT}/#name={name}-{n}" for n in range(here)]
        page = await Page.open(room.lab.add_host(name), urls[0], engine, timeout=OPEN_S)
        browsers.append(Browser(page, engine, here))  # closed at the end, whatever happens next
        before = time.time() * 1000
        now = float(await page.eval("return Date.now();"))
        if not before - 2 <= now <= time.time() * 1000 + 2:  # whole ms, maybe jittered
            raise AssertionError(f"{engine}'s Date.now() is {now - before:.0f} ms off the bench's")
        await page.eval(OPEN_JS % json.dumps(urls[1:]))
        await page.wait(WATCH_JS, READY_S)
        screens -= here


async def wait_shown(browsers: list[Browser], texts: list[str], timeout: float) -> bool:
    """Every screen of every browser showed every text (polled in each browser)."""
    try:
        await asyncio.gather(
            *(b.page.wait(SHOWN_JS % json.dumps(texts), timeout) for b in browsers)
        )
    except AssertionError:
        return False
    return True


async def relayed_screens(ctrl: LabPeer, kind_of: dict[str, str]) -> dict[str, int]:
    """How many screens of each kind the controller reaches through the relay, not
    a direct data channel (`via`), or not at all."""
    via = {str(i["peer_id"]): str(i["via"]) for i in await ctrl.client.call("get_connected_peers")}
    relayed: dict[str, int] = {}
    for peer_id, kind in kind_of.items():
        if via.get(peer_id) != "direct":
            what = kind if peer_id in via else f"{kind}_not_connected"
            relayed[what] = relayed.get(what, 0) + 1
    return relayed


async def send(ctrl: LabPeer, text: str) -> tuple[float, float]:
    """Sends `text` to everyone; the bench's wall and monotonic clocks just before."""
    wall, mono = time.time(), time.monotonic()
    await ctrl.client.call("send_control_message", {"payload": text})
    return wall, mono


async def stage(
    ctrl: LabPeer,
    sidecars: list[LabPeer],
    browsers: list[Browser],
    args: argparse.Namespace,
    label: str,
    started: float,
) -> dict[str, Any]:
    """The cues of one stage to every screen (its new browsers opened from `started` on,
    monotonic); the raw figures."""
    gap_s = args.gap_ms / 1000
    # everyone in the room: every screen's channel to the controller open
    for browser in browsers:
        ids = await browser.page.wait(JOINED_JS, CONNECT_S)
        browser.peer_ids = [str(i) for i in ids]
    expected = {p.peer_id for p in sidecars} | {i for b in browsers for i in b.peer_ids}
    await ctrl.client.wait_until(lambda: expected <= connected_ids(ctrl), CONNECT_S)
    opened_to_connected_s = time.monotonic() - started
    kind_of = {p.peer_id: "sidecar" for p in sidecars}
    kind_of.update({i: b.engine for b in browsers for i in b.peer_ids})
    # A web peer whose direct channel did not open within 3 s is relayed by the leader
    # and tries a direct path again every 10 s (docs/api.md, "Web peers"): wait for it.
    waited = time.monotonic()
    while True:  # polled: a channel's move onto a direct path is not notified
        relayed = await relayed_screens(ctrl, kind_of)
        if not relayed or time.monotonic() - waited >= args.direct_s:
            break
        await asyncio.sleep(1.0)
    direct_wait_s = time.monotonic() - waited

    for n in range(WARM_UP):  # the first cue mounts #last-message; every path carries one
        text = f"warm {label}.{n}"
        await send(ctrl, text)
        await until(sidecars, lambda p: has(p, text), CUE_S)  # noqa: B023
        if not await wait_shown(browsers, [text], SHOWN_S):
            raise AssertionError(f"a browser screen did not show the warm-up cue {text!r}")
    await asyncio.sleep(1.0)  # the warm-up's acks settle

    pid = ctrl.client.process.pid
    window_s = args.cues * gap_s
    idle_started, idle_cpu = time.monotonic(), cpu_s(pid)
    await asyncio.sleep(window_s)  # the room's own cost meanwhile (pings, acks)
    idle_rate = (cpu_s(pid) - idle_cpu) / (time.monotonic() - idle_started)

    load = os.getloadavg()[0]
    texts = [f"cue {label}.{n}" for n in range(args.cues)]
    sent: list[tuple[float, float]] = []
    cues_started, cpu_before = time.monotonic(), cpu_s(pid)
    for text in texts:
        wall, mono = await send(ctrl, text)
        sent.append((wall, mono))
        await until(sidecars, lambda p: has(p, text), CUE_S)  # noqa: B023
        await asyncio.sleep(max(0.0, mono + gap_s - time.monotonic()))
    cpu = cpu_s(pid) - cpu_before
    cues_s = time.monotonic() - cues_started
    relayed_after = await relayed_screens(ctrl, kind_of)

    await wait_shown(browsers, texts, SHOWN_S)  # stragglers; what never came is reported
    seen: list[tuple[str, dict[str, float]]] = []
    for browser in browsers:
        for screen in await browser.page.eval(SEEN_JS):
            seen.append((browser.engine, {str(k): float(v) for k, v in screen.items()}))

    per_cue = []
    for text, (wall, mono) in zip(texts, sent, strict=True):
        kinds: dict[str, list[float | None]] = {"sidecar": [], "chromium": [], "firefox": []}
        for peer in sidecars:
            at = received_at(peer, text)
            kinds["sidecar"].append(None if at is None else (at - mono) * 1000)
        for engine, screen in seen:
            shown = screen.get(text)
            kinds.setdefault(engine, []).append(None if shown is None else shown - wall * 1000)
        per_cue.append(kinds)
    return {
        "sidecar_displays": len(sidecars),
        "browser_screens": sum(b.screens for b in browsers),
        "browsers": {e: sum(1 for b in browsers if b.engine == e) for e in WEBRTC_ENGINES},
        "browser_screens_by_engine": {
            e: sum(b.screens for b in browsers if b.engine == e) for e in WEBRTC_ENGINES
        },
        "opened_to_connected_s": round(opened_to_connected_s, 2),
        "direct_wait_s": round(direct_wait_s, 2),
        "relayed_at_first_cue": relayed,
        "relayed_after_last_cue": relayed_after,
        "load_average_1m_at_cues": round(load, 2),
        "per_cue": per_cue,
        "controller_cpu_s": cpu,
        "controller_idle_cpu_s": idle_rate * cues_s,
        "cues": args.cues,
    }


async def one_round(args: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    stages = []
    browsers: list[Browser] = []
    async with Lab() as lab:
        room = Room(lab, logs)
        try:
            ctrl = await spawn(room, CONTROLLER)
            sidecars = [await spawn(room, display(f"S{n}")) for n in range(args.sidecars)]
            await asyncio.gather(*(p.start() for p in [ctrl, *sidecars]))
            await ctrl.client.wait_until(lambda: ctrl.client.leader_id == ctrl.peer_id, CONNECT_S)
            shown = 0
            for target in args.browsers:
                started = time.monotonic()
                await add_browsers(room, ctrl, browsers, target - shown, args.tabs, args.engines)
                shown = max(shown, target)
                label = f"{shown}b"
                print(f"bench_wall: stage {label}: {len(sidecars)} sidecars", file=sys.stderr)
                stages.append(await stage(ctrl, sidecars, browsers, args, label, started))
        finally:
            closing = [asyncio.wait_for(b.page.close(), 40) for b in browsers]
            for result in await asyncio.gather(*closing, return_exceptions=True):
                if isinstance(result, BaseException):
                    print(f"bench_wall: closing a browser: {result!r}", file=sys.stderr)
            await room.close()
    return stages


def summarise(rounds: list[list[dict[str, Any]]], gap_ms: float) -> list[dict[str, Any]]:
    out = []
    for done in zip(*rounds, strict=True):  # the same stage of every round
        last: list[float] = []
        last_of: dict[str, list[float]] = {}
        each_of: dict[str, list[float]] = {}
        missing = 0
        for one in done:
            for kinds in one["per_cue"]:
                times = [t for ts in kinds.values() for t in ts]
                if any(t is None for t in times):
                    missing += sum(1 for t in times if t is None)
                else:
                    last.append(max(t for t in times if t is not None))
                for kind, ts in kinds.items():
                    got = [t for t in ts if t is not None]
                    each_of.setdefault(kind, []).extend(got)
                    if got and len(got) == len(ts):
                        last_of.setdefault(kind, []).append(max(got))
        cues = sum(one["cues"] for one in done)
        cpu = sum(one["controller_cpu_s"] for one in done)
        idle = sum(one["controller_idle_cpu_s"] for one in done)
        first = done[0]
        out.append(
            {
                "sidecar_displays": first["sidecar_displays"],
                "browser_screens": first["browser_screens"],
                "browsers": first["browsers"],
                "browser_screens_by_engine": first["browser_screens_by_engine"],
                "screens": first["sidecar_displays"] + first["browser_screens"],
                "load_average_1m_at_cues": [one["load_average_1m_at_cues"] for one in done],
                "opened_to_connected_s": [one["opened_to_connected_s"] for one in done],
                "direct_wait_s": [one["direct_wait_s"] for one in done],
                "relayed_at_first_cue": [one["relayed_at_first_cue"] for one in done],
                "relayed_after_last_cue": [one["relayed_after_last_cue"] for one in done],
                "last_screen_ms": percentiles(last),
                "last_screen_of_kind_ms": {k: percentiles(v) for k, v in last_of.items()},
                "every_screen_ms": {k: percentiles(v) for k, v in each_of.items() if v},
                "cues_slower_than_the_gap": sum(1 for t in last if t > gap_ms),
                "missing_screen_cues": missing,
                "controller_cpu_ms_per_cue": round(1000 * cpu / cues, 2),
                "controller_cpu_ms_per_cue_net_of_idle": round(1000 * (cpu - idle) / cues, 2),
                "cues": cues,
            }
        )
    return out


def growth(stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per added browser screen, from the first stage with browsers to the last."""
    walls = [s for s in stages if s["browser_screens"] > 0 and s["last_screen_ms"]]
    if len(walls) < 2:
        return None
    a, b = walls[0], walls[-1]
    added = b["browser_screens"] - a["browser_screens"]
    return {
        "from_browser_screens": a["browser_screens"],
        "to_browser_screens": b["browser_screens"],
        "last_screen_p50_ms_per_browser_screen": round(
            (b["last_screen_ms"]["p50"] - a["last_screen_ms"]["p50"]) / added, 3
        ),
        "controller_cpu_ms_per_cue_per_browser_screen": round(
            (
                b["controller_cpu_ms_per_cue_net_of_idle"]
                - a["controller_cpu_ms_per_cue_net_of_idle"]
            )
            / added,
            3,
        ),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    logs = Path(tempfile.mkdtemp(prefix="bench-wall-"))
    rounds = []
    for n in range(args.rounds):
        print(f"bench_wall: round {n + 1} of {args.rounds}", file=sys.stderr)
        try:
            async with asyncio.timeout(args.deadline_s) as deadline:
                rounds.append(await one_round(args, logs))
        except TimeoutError:
            if deadline.expired():
                raise AssertionError(
                    f"a round overran --deadline-s {args.deadline_s:.0f}"
                ) from None
            raise
    stages = summarise(rounds, args.gap_ms)
    return report(
        "bench_wall",
        settings={
            "sidecar_displays": args.sidecars,
            "browser_screens": args.browsers,
            "screens_per_browser": args.tabs,
            "engines": args.engines,
            "cues": args.cues,
            "gap_ms": args.gap_ms,
            "rounds": args.rounds,
        },
        load_average_before=[round(x, 2) for x in load_before],
        stages=stages,
        growth=growth(stages),
        sidecar_logs=str(logs),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's wall")
    parser.add_argument("--sidecars", type=int, help=f"sidecar displays ({SMALL['sidecars']})")
    parser.add_argument(
        "--browsers",
        type=int,
        nargs="+",
        help=f"browser screens at each stage ({SMALL['browsers']})",
    )
    parser.add_argument("--tabs", type=int, help=f"screens per browser ({SMALL['tabs']})")
    parser.add_argument("--cues", type=int, help=f"measured cues per stage ({SMALL['cues']})")
    parser.add_argument("--gap-ms", type=float, default=500.0, help="from one cue to the next")
    parser.add_argument("--engines", nargs="+", default=list(WEBRTC_ENGINES))
    parser.add_argument("--rounds", type=int, default=1, help="each a fresh lab")
    parser.add_argument(
        "--direct-s",
        type=float,
        default=45.0,
        help="how long to wait for relayed browser screens to go direct before the cues",
    )
    parser.add_argument("--deadline-s", type=float, help="a round is stopped after this long")
    args = parser.parse_args()
    chosen = FULL if args.full else SMALL
    for key, value in chosen.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if sorted(args.browsers) != args.browsers or args.tabs < 1 or args.cues < 1:
        parser.error("--browsers must grow; --tabs and --cues at least 1")
    if args.deadline_s is None:
        stages = len(args.browsers)
        cue_s = 2 * args.cues * args.gap_ms / 1000 + WARM_UP * SHOWN_S
        opening = (max(args.browsers) // args.tabs + len(args.engines)) * (OPEN_S / 3 + READY_S)
        args.deadline_s = 120 + stages * (CONNECT_S + args.direct_s + cue_s + SHOWN_S) + opening
    reason = lab_unavailable_reason()
    if reason is None and max(args.browsers) > 0:
        reason = next(filter(None, (browser_missing(e) for e in args.engines)), None)
    if reason is not None:
        print(json.dumps({"benchmark": "bench_wall", "skipped": reason}))
        return 0
    sweep_stale_labs()
    try:
        result = asyncio.run(run(args))
    except (TimeoutError, AssertionError) as exc:  # cleaned up; why, for the reader
        traceback.print_exc()
        what = str(exc) or f"{type(exc).__name__}: a bounded wait ran out (see stderr)"
        print(json.dumps({"benchmark": "bench_wall", "failed": what}))
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
