"""Browsers enter a keyed room by pairing (docs/api.md, "Web peers"): headless
Chromium in its own lab namespace types the six digits a member shows, or
opens the member's one-time pairing link, then comes back on its own."""

from __future__ import annotations

import pytest

from tests.browser.page import Page, Pages
from tests.e2e.room import LabPeer, Room, connected_ids, display, keyed_controller, notes

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

SETUP_S = 10.0
STORED = "return localStorage.getItem('mobile-worship:room-key:default');"
FORM = (
    "const f = document.getElementById('pairing-code'); return f ? document.body.innerText : null;"
)


async def open_page(pages: Pages, room: Room, name: str, url: str) -> Page:
    return await pages.open(room.lab.add_host(name), url)


async def shows_cue(ctrl: LabPeer, page: Page, peer_id: str, cue: str) -> None:
    await ctrl.client.wait_until(lambda: peer_id in connected_ids(ctrl), SETUP_S)
    await ctrl.client.call("send_control_message", {"payload": cue, "to": peer_id})
    shown = await page.wait(
        "const e = document.getElementById('last-message'); return e && e.textContent;", 5
    )
    assert shown == cue


async def back_after_reload(page: Page, before: str) -> str:
    """Reload the page; it joins again on its own (no code): its new peer id."""
    again = await page.reloaded(before, SETUP_S)
    assert await page.eval("return document.getElementById('pairing-code') === null;")
    return again


def paired_count(ctrl: LabPeer) -> int:
    return sum(1 for n in notes(ctrl, "webrtc:pairing") if n["reason"] == "paired")


async def test_a_tv_pairs_by_typing_the_code_and_comes_back_without_it(
    room: Room, pages: Pages
) -> None:
    ctrl, key = await keyed_controller(room)
    window = await ctrl.client.call("open_pairing", {})
    tv = await open_page(pages, room, "tv", f"http://{ctrl.host.ip}:3010/#name=TV&class=lobby")
    asked = await page_text(tv, FORM)
    assert "private" in asked and "six-digit code" in asked
    await tv.type("#pairing-code", window["code"])
    await tv.click("button[type=submit]")
    first = await tv.joined(SETUP_S)
    await shows_cue(ctrl, tv, first, "Verse 1")
    assert await tv.eval(STORED) == key  # kept for the next visit, in this browser only
    assert paired_count(ctrl) == 1
    again = await back_after_reload(tv, first)
    await shows_cue(ctrl, tv, again, "Verse 2")
    assert paired_count(ctrl) == 1  # no second pairing
    status = await ctrl.status()
    assert status["pairing"] is None  # its one use is spent


async def test_a_phone_pairs_by_opening_the_link_once_and_a_second_use_is_refused(
    room: Room, pages: Pages
) -> None:
    ctrl, key = await keyed_controller(room)
    window = await ctrl.client.call("open_pairing", {"uses": 2})
    link = window["pair_url"]
    assert link.startswith(f"http://{ctrl.host.ip}:3010/#") and window["token"] in link
    assert key not in link
    phone = await open_page(pages, room, "phone", link)
    first = await phone.joined(SETUP_S)
    assert "pair=" not in str(await phone.eval("return location.href;"))  # taken out at once
    await shows_cue(ctrl, phone, first, "Welcome")
    assert await phone.eval(STORED) == key
    status = await ctrl.status()
    assert status["pairing"]["token"] is None and status["pairing"]["pair_url"] is None
    again = await back_after_reload(phone, first)
    await shows_cue(ctrl, phone, again, "Still here")

    # The same link, opened again on another phone: refused, and the page says so.
    other = await open_page(pages, room, "phone2", link)
    said = await page_text(other, FORM)
    assert "already used or has expired" in said
    assert await other.eval(STORED) is None
    assert paired_count(ctrl) == 1


async def page_text(page: Page, js: str) -> str:
    return str(await page.wait(js, SETUP_S))


async def test_a_page_whose_device_is_revoked_takes_no_new_key(room: Room, pages: Pages) -> None:
    """The page runs the code its device serves: when that device is shut out of
    the room, the page must not keep the new key where the device could read it."""
    ctrl, _ = await keyed_controller(room)
    window = await ctrl.client.call("open_pairing", {})
    lobby = await room.spawn({**display("Lobby PC", "lobby"), "pairing_code": window["code"]})
    await lobby.start()
    link = (await lobby.client.call("open_pairing", {}))["pair_url"]
    tv = await open_page(pages, room, "tv", link)  # the page comes from the lobby PC
    await tv.joined(SETUP_S)
    kept = await tv.eval(STORED)
    assert kept is not None
    await ctrl.client.call("rotate_room_key", {"revoke": [lobby.peer_id]})
    said = await page_text(tv, FORM)
    assert "removed from the room" in said
    new_key = notes(ctrl, "webrtc:room_key")[-1]["room_key"]
    assert await tv.eval(STORED) not in (new_key, kept)  # nothing kept for that origin
