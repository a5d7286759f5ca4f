"""The Tauri example app in a lab namespace, seen and driven through its page
(tests/browser/app_driver.py: Xvfb, tauri-driver, WebKitWebDriver)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.browser.page import Page
from tests.e2e.room import LabPeer, Room, display
from tests.lab import Host, _pids_in_netns

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "browser" / "app_driver.py"
TARGET = REPO / "tauri-bridge" / "target" / "debug"
APP = Path(os.environ.get("MW_APP_BIN", TARGET / "mobile-worship-example"))
LOG_DIR = Path("data") / "org.mobileworship.example" / "logs"
SHIM_MARK = b"# Development stand-in for the frozen"

# The status panel as a person reads it (frontend-hook's ConnectionStatus and the
# example's lists), as one value.
SNAPSHOT = """
const q = (s) => document.querySelector(s);
const dd = (name) => {
  const dt = [...document.querySelectorAll('.mw-status__summary dt')]
    .find((d) => d.textContent === name);
  return dt && dt.nextElementSibling ? dt.nextElementSibling.textContent : null;
};
const snap = () => ({
  role: q('.mw-role') ? q('.mw-role').textContent : null,
  leader: dd('Leader'),
  connected: dd('Connected'),
  room: dd('Room'),
  restart: q('.mw-status__restart') ? q('.mw-status__restart').textContent : null,
  rows: [...document.querySelectorAll('tr.mw-peer')].map((tr) => ({
    id: tr.dataset.peerId,
    name: tr.querySelector('.mw-peer__name').textContent,
    state: tr.querySelector('.mw-state').textContent,
  })),
  messages: [...document.querySelectorAll('ol.messages li:not(.muted)')]
    .map((li) => li.textContent),
  log: [...document.querySelectorAll('ol.log li')].map((li) => ({
    text: li.textContent, error: li.classList.contains('error'),
  })),
});
"""


PROBES = [
    ("page", "return [document.visibilityState, document.hasFocus(), document.readyState];"),
    ("timer", "return new Promise((r) => setTimeout(() => r('fired'), 10));"),
    (
        "ipc",
        "return window.__TAURI_INTERNALS__.invoke('plugin:mobile-worship|get_leader_status')"
        ".then((s) => s.state);",
    ),
    ("frame", "return new Promise((r) => requestAnimationFrame(() => r('fired')));"),
    ("status", "return document.querySelector('.mw-status').innerText;"),
]


def tauri_driver() -> str | None:
    return shutil.which("tauri-driver") or shutil.which(
        "tauri-driver", path=str(Path.home() / ".cargo" / "bin")
    )


def app_missing() -> str | None:
    """Why the suite cannot run here, or None."""
    for tool, package in (("Xvfb", "xvfb"), ("WebKitWebDriver", "webkit2gtk-driver")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt install {package})"
    if tauri_driver() is None:
        return "tauri-driver is not installed (cargo install tauri-driver --locked)"
    if not APP.exists():
        return f"{APP} is missing: build the frozen sidecar, then the example (./scripts/test)"
    sidecar = APP.with_name("mobile-worship-sidecar")
    if not sidecar.exists() or SHIM_MARK in sidecar.read_bytes()[:256]:
        return f"{sidecar} is not the frozen sidecar: the app must run the binary it ships"
    return None


class App:
    """One running example app; every failed expectation leaves a screenshot behind."""

    def __init__(self, host: Host, page: Page, work: Path, artifacts: Path) -> None:
        self.host = host
        self.page = page
        self.work = work
        self.artifacts = artifacts
        self._shots = 0

    @classmethod
    async def launch(
        cls,
        host: Host,
        artifacts: Path,
        timeout: float = 90.0,
        work: Path | None = None,
        binary: Path = APP,
    ) -> App:
        """Launch the app (`binary`: the example as built, or as a bundle installed it);
        `work`: the folder of an earlier run (its data, as after a restart of the app),
        else a new one."""
        work = work or Path(tempfile.mkdtemp(prefix="mw-app-"))
        driver = tauri_driver()
        assert driver is not None
        argv = [
            "env",
            f"TAURI_DRIVER={driver}",
            sys.executable,
            str(DRIVER),
            str(binary),
            str(work),
        ]
        stderr = (work / "driver.stderr").open("wb")
        try:
            page = await Page.launch(host, argv, str(work / "scratch"), timeout, stderr=stderr)
        except BaseException:
            keep_logs(work, artifacts)
            raise
        finally:
            stderr.close()
        app = cls(host, page, work, artifacts)
        await app.expect("return !!document.querySelector('.mw-role');", "the app's page", 30)
        return app

    async def screenshot(self, name: str) -> Path:
        self._shots += 1
        self.artifacts.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower())[:60]
        path = self.artifacts / f"{self._shots:02d}-{slug}.png"
        await self.page.screenshot(path)
        return path

    async def expect(self, js: str, what: str, timeout: float = 5.0) -> Any:
        """Until `js` (a function body) returns something truthy; else a screenshot, and fail."""
        try:
            return await self.page.wait(js, timeout)
        except AssertionError as failure:
            state = await self.snapshot_or_none()
            await self.probe(what)
            try:
                shot: object = await self.screenshot(what)
            except AssertionError as no_shot:
                shot = f"no screenshot ({no_shot})"
            self.keep_process_list(what)
            raise AssertionError(
                f"not seen within {timeout} s: {what}\n"
                f"  page: {json.dumps(state)}\n  screenshot: {shot}"
            ) from failure

    async def see(self, condition: str, what: str, timeout: float = 5.0) -> dict[str, Any]:
        """Until the status panel (`s`, see SNAPSHOT) satisfies `condition` (JS); returns it."""
        found = await self.expect(
            SNAPSHOT + f"const s = snap(); return ({condition}) ? s : null;", what, timeout
        )
        return dict(found)

    async def snapshot(self) -> dict[str, Any]:
        return dict(await self.page.eval(SNAPSHOT + "return snap();"))

    async def snapshot_or_none(self) -> dict[str, Any] | None:
        try:
            return await self.snapshot()
        except (AssertionError, TimeoutError):
            return None

    async def start(
        self,
        name: str,
        peer_type: str = "controller",
        display_class: str = "",
        room: str = "open",
        code: str = "",
    ) -> None:
        """Fill in 'This device' and press Start, as a person would. `room`: how it
        enters the room (`saved`, `new`, `code` with `code`, `open`)."""
        await self.page.type("#start input[aria-label='device name']", name)
        await self.page.select("#start select[aria-label='peer type']", peer_type)
        if display_class:
            await self.page.select("#start select[aria-label='display class']", display_class)
        await self.page.select("#start select[aria-label='room']", room)
        if code:
            await self.page.type("#start input[aria-label='pairing code']", code)
        await self.page.click("#start button[type='submit']")

    async def leads_and_a_display_echoes(self, room: Room, setup_s: float) -> LabPeer:
        """Start as the booth: the page says Leader, a display started elsewhere shows
        Connected, and the display's echo of a cue sent from the page shows. The display."""
        await self.start("Booth")
        lead = "s.role === 'Leader' && s.leader === 'This device (Booth)'"
        await self.see(lead, "Leader", setup_s)
        (stage,) = await room.start({**display("Stage", "stage"), "echo": True})
        row = f"s.rows.some((r) => r.id === {json.dumps(stage.peer_id)} && r.state === 'Connected')"
        await self.see(
            f"{row} && s.connected === '1 of 1 other device'", "the display connected", setup_s
        )
        await self.send_cue('{"slide": 7}')
        echo = stage.peer_id[:8] + ': {"slide":7}'  # the page's "Last messages" line
        await self.see(
            f"s.messages.some((m) => m.includes({json.dumps(echo)}))",
            "the display's echo of the cue",
            5,
        )
        return stage

    async def send_cue(self, cue: str, to: str = "all") -> None:
        await self.page.type("#cue input", cue)
        await self.page.select("#cue select", to)
        await self.page.click("#cue button[type='submit']")

    def processes(self) -> dict[int, str]:
        """The app's and its sidecar's processes still alive in the app's namespace."""
        found = {}
        for pid in _pids_in_netns([self.host.netns]):
            try:
                exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            except OSError:
                continue
            if exe.startswith("mobile-worship"):
                found[pid] = exe
        return found

    async def gone(self, timeout: float) -> dict[int, str]:
        """Waits until no process of the app is left (each exit awaited through a pidfd);
        returns those still running after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := self.processes()) and loop.time() < deadline:
            exits = []
            for pid in left:
                try:
                    fd = os.pidfd_open(pid)
                except ProcessLookupError:
                    continue
                done = loop.create_future()
                loop.add_reader(fd, _settle, done)
                exits.append((fd, done))
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.gather(*(done for _, done in exits)), deadline - loop.time()
                    )
            finally:
                for fd, _ in exits:
                    loop.remove_reader(fd)
                    os.close(fd)
        return left

    async def probe(self, what: str) -> None:
        """Whether the page still runs its timers, its IPC and its rendering (artifacts)."""
        lines = []
        for name, js in PROBES:
            try:
                lines.append(f"{name}: {await self.page.eval(js, 5.0)}")
            except AssertionError as e:
                lines.append(f"{name}: {e}")
        self.artifacts.mkdir(parents=True, exist_ok=True)
        with (self.artifacts / "processes.txt").open("a") as out:
            out.write(f"== probes when {what} was not seen\n" + "\n".join(lines) + "\n")

    def keep_process_list(self, what: str) -> None:
        """Every process of the app's namespace (state, CPU, wait channel) into artifacts."""
        pids = ",".join(str(pid) for pid in _pids_in_netns([self.host.netns]))
        if not pids:
            return
        listing = subprocess.run(
            ["ps", "-o", "pid,ppid,stat,pcpu,etime,wchan:24,args", "-p", pids],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        self.artifacts.mkdir(parents=True, exist_ok=True)
        with (self.artifacts / "processes.txt").open("a") as out:
            out.write(f"== when {what} was not seen\n{listing}\n")

    def sidecar_pids(self) -> list[int]:
        return [pid for pid, exe in self.processes().items() if exe == "mobile-worship-sidecar"]

    def log(self) -> str:
        """The app's log file(s) (tauri-plugin-log, in the platform's log folder)."""
        folder = self.work / LOG_DIR
        return "".join(p.read_text(errors="replace") for p in sorted(folder.glob("*.log")))

    async def close(self, failed: bool, keep_work: bool = False) -> None:
        """Quit; a failed test keeps a screenshot and the logs (`artifacts`); `keep_work`:
        keep the app's data for a relaunch."""
        if failed:
            with contextlib.suppress(AssertionError):
                await self.screenshot("at failure")
        await self.page.close()
        if failed:
            keep_logs(self.work, self.artifacts)
        if not keep_work:
            shutil.rmtree(self.work, ignore_errors=True)


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def keep_logs(work: Path, artifacts: Path) -> None:
    """The app's log, tauri-driver's output and the X server's, beside the screenshots."""
    artifacts.mkdir(parents=True, exist_ok=True)
    for log in [*work.glob("*.log"), *work.glob("driver.stderr"), *(work / LOG_DIR).glob("*.log")]:
        shutil.copy(log, artifacts / log.name.replace(" ", "-"))
