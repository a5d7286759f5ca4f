"""Phones that sleep (docs/api.md, "Web peers"): a page frozen for 30 s (Chromium's
page lifecycle over the DevTools protocol, what a phone does to a tab it puts
away) or hidden, then woken, shows the room's current cue and state within 2 s,
with no cue twice and no retained value missed."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.browser.page import Page, Pages
from tests.e2e.room import CONTROLLER, LabPeer, Room, agree_on, connected_ids, page_url

pytestmark = [
    pytest.mark.lab,
    pytest.mark.timeout(180),
    pytest.mark.parametrize("engine", ["chromium"]),  # the lifecycle is Chromium's DevTools'
]

SETUP_S = 15.0
WAKE_S = 2.0
FROZEN_S = 30.0
CUE = (
    "const e = document.getElementById('last-message'); const t = e ? e.textContent.trim() : null;"
)
SEEN = "return (window.__seen || []);"
WATCH = """
window.__seen = [];
window.__mw.peer.on('webrtc:message', (m) => window.__seen.push(m.payload));
window.__lifecycle = [];
for (const e of ['freeze', 'resume']) {
  document.addEventListener(e, () => window.__lifecycle.push(e));
}
window.__shown = [];
document.addEventListener('visibilitychange', () => window.__shown.push(document.visibilityState));
return true;
"""


async def page_state(page: Page) -> dict[str, Any]:
    entries = await page.eval("return window.__mw.peer.call('get_state');")
    return {e["key"]: e["value"] for e in entries}


async def joined_page(room: Room, pages: Pages) -> tuple[LabPeer, Page, str]:
    (ctrl,) = await room.start(CONTROLLER)
    await agree_on([ctrl], ctrl, SETUP_S)
    page = await pages.open(room.lab.add_host("phone"), page_url(ctrl, name="Phone"))
    phone = await page.joined(SETUP_S)
    await ctrl.client.wait_until(lambda: phone in connected_ids(ctrl), SETUP_S)
    assert await page.eval(WATCH)
    return ctrl, page, phone


async def cue(ctrl: LabPeer, text: str, **how: Any) -> None:
    await ctrl.client.call("send_control_message", {"payload": text, **how})


async def test_a_page_frozen_for_30_s_shows_the_current_cue_and_state_on_waking(
    room: Room, pages: Pages
) -> None:
    ctrl, page, _ = await joined_page(room, pages)
    await cue(ctrl, "Verse 1", retain="cue")
    await ctrl.client.call("send_control_message", {"payload": 1, "retain": "slide", "to": []})
    await page.wait(f"{CUE} return t === 'Verse 1';", 5)
    await page.cdp("Page.setWebLifecycleState", {"state": "frozen"})
    frozen = time.monotonic()
    # The service goes on while the phone is in a pocket.
    await cue(ctrl, "Verse 2", retain="cue")
    await ctrl.client.call("send_control_message", {"payload": 2, "retain": "slide", "to": []})
    await ctrl.client.call("send_control_message", {"payload": "On", "retain": "lights", "to": []})
    await cue(ctrl, "Chorus", retain="cue")
    left = FROZEN_S - (time.monotonic() - frozen)
    await asyncio.sleep(max(0.0, left))  # the frozen time itself is the test's input
    await page.cdp("Page.setWebLifecycleState", {"state": "active"})
    woke = time.monotonic()
    await page.wait(f"{CUE} return t === 'Chorus';", WAKE_S + 10)
    assert time.monotonic() - woke < WAKE_S, f"{time.monotonic() - woke:.2f} s after waking"
    await page.wait("return document.querySelectorAll('dd[data-key]').length === 3;", WAKE_S)
    assert await page_state(page) == {"cue": "Chorus", "slide": 2, "lights": "On"}
    seen = await page.eval(SEEN)
    assert len(seen) == len(set(map(json.dumps, seen))), f"a cue twice: {seen}"
    assert await page.eval("return window.__lifecycle;") == ["freeze", "resume"]


async def other_tab(page: Page) -> tuple[str, str]:
    """The target ids of the page's tab and of a new blank tab in front of it."""
    await page.tab("about:blank")
    targets = (await page.cdp("Target.getTargets"))["targetInfos"]
    tabs = [t for t in targets if t["type"] == "page"]
    first = next(t["targetId"] for t in tabs if t["url"].startswith("http"))
    blank = next(t["targetId"] for t in tabs if t["url"] == "about:blank")
    return first, blank


async def test_a_hidden_page_shows_the_current_cue_and_state_when_shown_again(
    room: Room, pages: Pages
) -> None:
    ctrl, page, _ = await joined_page(room, pages)
    await cue(ctrl, "Verse 1", retain="cue")
    await page.wait(f"{CUE} return t === 'Verse 1';", 5)
    mine, blank = await other_tab(page)
    await page.eval("window.__shown = []; return true;")
    await page.cdp("Target.activateTarget", {"targetId": blank})
    await page.wait("return document.visibilityState === 'hidden';", 5)
    await cue(ctrl, "Verse 2", retain="cue")
    await ctrl.client.call("send_control_message", {"payload": 3, "retain": "slide", "to": []})
    await asyncio.sleep(10)  # hidden for a while: what a phone in a pocket is
    await page.cdp("Target.activateTarget", {"targetId": mine})
    shown = time.monotonic()
    await page.wait(f"{CUE} return t === 'Verse 2';", WAKE_S + 10)
    assert time.monotonic() - shown < WAKE_S
    assert await page_state(page) == {"cue": "Verse 2", "slide": 3}
    assert await page.eval("return window.__shown;") == ["hidden", "visible"]
    # Whether the screen is kept awake is in the status: over plain http (not a
    # secure context) the browser offers no wake lock, and the page says so.
    status = str(await page.eval("return document.body.innerText;"))
    assert "Screen may sleep" in status or "Screen kept awake" in status, status
    seen = await page.eval(SEEN)
    assert len(seen) == len(set(map(json.dumps, seen))), f"a cue twice: {seen}"
