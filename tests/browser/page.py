"""A browser page in a lab namespace, driven from the test (tests/browser/page_driver.py):
Chromium, Firefox, or WebKitGTK (the engine without WebRTC)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from tests.lab import Host

DRIVER = Path(__file__).with_name("page_driver.py")
JOINED = "const p = window.__mw && window.__mw.peer; return !!(p && p.leaderStatus().leader_id);"
"""True once the page's web peer is in the room (it knows its leader)."""
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
# engine: (what it needs, where it comes from); ./scripts/test installs them all
NEEDS: dict[str, list[tuple[str, str]]] = {
    "chromium": [("chromium", "apt: chromium"), ("chromedriver", "apt: chromium-driver")],
    "firefox": [
        ("firefox-esr", "apt: firefox-esr"),
        ("geckodriver", "cargo install --locked geckodriver --version 0.37.1"),
    ],
    "webkit": [
        (MINIBROWSER, "apt: libwebkit2gtk-4.1-0"),
        ("WebKitWebDriver", "apt: webkit2gtk-driver"),
        ("Xvfb", "apt: xvfb"),
    ],
}
# The engines with WebRTC: every browser test runs on each.
WEBRTC_ENGINES = ("chromium", "firefox")


def _found(tool: str) -> bool:
    if tool.startswith("/"):
        return Path(tool).exists()
    return shutil.which(tool) is not None or (Path.home() / ".cargo/bin" / tool).exists()


def browser_missing(engine: str = "chromium") -> str | None:
    for tool, source in NEEDS[engine]:
        if not _found(tool):
            return f"{tool} is not installed ({source})"
    return None


class Page:
    """One browser showing one page (`engine`: chromium, firefox or webkit)."""

    def __init__(self, process: asyncio.subprocess.Process, profile: str) -> None:
        self.process = process
        self.profile = profile
        self._ids = 0
        self._lost = False
        self.engine = "chromium"

    @classmethod
    async def open(
        cls, host: Host, url: str, engine: str = "chromium", timeout: float = 60.0
    ) -> Page:
        scratch = tempfile.mkdtemp(prefix=f"mw-{engine}-")
        argv = [sys.executable, str(DRIVER), url, scratch, engine]
        page = await cls.launch(host, argv, scratch, timeout)
        page.engine = engine
        return page

    @classmethod
    async def launch(
        cls,
        host: Host,
        argv: list[str],
        scratch: str,
        timeout: float,
        stderr: int | IO[bytes] = asyncio.subprocess.DEVNULL,
    ) -> Page:
        """Any driver that speaks page_driver.py's protocol (`scratch`: removed on close)."""
        process = await host.spawn_async(argv, stderr=stderr, limit=16 * 1024 * 1024)
        page = cls(process, scratch)
        try:
            ready = await page._line(timeout)
        except BaseException:
            await page.close()
            raise
        if ready.get("event") != "ready":
            await page.close()
            raise AssertionError(f"the driver did not start: {ready}")
        return page

    async def _line(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise AssertionError("the browser driver exited")
        return dict(json.loads(line))

    async def _do(self, limit: float, **cmd: Any) -> Any:
        assert self.process.stdin is not None
        if self._lost:
            raise AssertionError("the driver stopped answering earlier")
        self._ids += 1
        self.process.stdin.write(json.dumps({"id": self._ids, **cmd}).encode() + b"\n")
        await self.process.stdin.drain()
        try:
            answer = await self._line(limit)
        except TimeoutError:
            # a late answer would be read as the next command's: this driver is done
            self._lost = True
            what = f"no answer from the driver within {limit} s to {cmd.get('op')}"
            raise AssertionError(what) from None
        if not answer.get("ok"):
            raise AssertionError(f"in the page: {answer.get('error')}")
        return answer.get("value")

    async def eval(self, js: str, limit: float = 30.0) -> Any:
        """The value of `js` (a function body: `return …`) in the page."""
        return await self._do(limit, op="eval", js=js)

    async def wait(self, js: str, timeout: float = 10.0) -> Any:
        """Until `js` (a function body) returns something truthy in the page; its value."""
        return await self._do(timeout + 10.0, op="wait", js=js, timeout=timeout)

    async def joined(self, timeout: float) -> str:
        """The page's peer id, once its web peer is in the room."""
        await self.wait(JOINED, timeout)
        return str(await self.eval("return window.__mw.peer.selfInfo().peer_id;"))

    async def reloaded(self, before: str, timeout: float) -> str:
        """Reload the page; once its web peer (a new one, not `before`) is in the room
        again, its peer id."""
        await self.eval("setTimeout(() => location.reload(), 0); return true;")
        await self.wait(
            "const p = window.__mw && window.__mw.peer; const me = p && p.selfInfo();"
            f" return !!(me && me.peer_id !== {json.dumps(before)} && p.leaderStatus().leader_id);",
            timeout,
        )
        return str(await self.eval("return window.__mw.peer.selfInfo().peer_id;"))

    async def shows(self, text: str, timeout: float = 5.0) -> None:
        """Until the page shows `text` as its latest cue (`#last-message`)."""
        await self.wait(
            "const e = document.getElementById('last-message');"
            f" return !!e && e.textContent.trim() === {json.dumps(text)};",
            timeout,
        )

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """A method of the page's web peer (what the hook calls)."""
        return await self.eval(
            f"return window.__mw.peer.call({json.dumps(method)}, {json.dumps(params or {})});"
        )

    async def tab(self, url: str) -> str:
        """Open `url` in another tab of the same browser (evals still go to the first)."""
        return str(await self._do(60.0, op="tab", url=url))

    async def click(self, css: str) -> None:
        await self._do(30.0, op="click", css=css)

    async def type(self, css: str, text: str) -> None:
        await self._do(30.0, op="type", css=css, text=text)

    async def select(self, css: str, value: str) -> None:
        await self._do(30.0, op="select", css=css, value=value)

    async def size(self, width: int, height: int) -> list[int]:
        """Lay the page out at `width` x `height` CSS pixels; what it got."""
        return list(await self._do(30.0, op="size", width=width, height=height))

    async def cdp(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """A DevTools protocol command (Chromium only)."""
        return await self._do(30.0, op="cdp", method=method, params=params or {})

    async def close_window(self) -> None:
        await self._do(30.0, op="close_window")

    async def screenshot(self, path: Path) -> None:
        await self._do(30.0, op="screenshot", path=str(path))

    async def close(self) -> None:
        if not self._lost:
            with contextlib.suppress(AssertionError, BrokenPipeError, ConnectionError):
                await self._do(15.0, op="quit")
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


class Pages(list[Page]):
    """The browser pages a test opened, all of one engine."""

    def __init__(self, engine: str) -> None:
        super().__init__()
        self.engine = engine

    async def open(self, host: Host, url: str, engine: str | None = None) -> Page:
        """A page of this test's engine (or of `engine`) in `host`, kept to be closed."""
        page = await Page.open(host, url, engine or self.engine)
        self.append(page)
        return page
