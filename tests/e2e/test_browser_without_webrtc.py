"""A browser without WebRTC is a display too (docs/api.md, "Web peers"): WebKitGTK's
MiniBrowser, which has no RTCPeerConnection (as many TV browsers and kiosk webviews),
joins through the leader's relay from the start, shows cues and the room's state,
and follows a new leader without an error on the screen."""

from __future__ import annotations

import json
import time

import pytest

from tests.browser.page import Pages
from tests.e2e.room import (
    CONTROLLER,
    Room,
    agree_on,
    connected_ids,
    display,
    messages,
    page_url,
    two_booths,
    via,
)

pytestmark = [
    pytest.mark.lab,
    pytest.mark.timeout(180),
    pytest.mark.parametrize("engine", ["webkit"]),  # the `pages` of these tests
]

SETUP_S = 15.0
ALERTS = (
    "return [...document.querySelectorAll('[role=alert]')].map((e) => e.textContent).join(' | ');"
)


async def test_the_page_has_no_webrtc_and_takes_the_relay_at_once(room: Room, pages: Pages) -> None:
    ctrl, disp = await room.start(CONTROLLER, display("Stage", "stage"))
    await agree_on([ctrl, disp], ctrl, SETUP_S)
    await ctrl.client.call("send_control_message", {"payload": "Welcome", "retain": "slide"})
    page = await pages.open(room.lab.add_host("tv"), page_url(ctrl, name="Lobby TV", echo="1"))
    assert await page.eval("return typeof RTCPeerConnection;") == "undefined"
    tv = await page.joined(SETUP_S)
    in_room = time.monotonic()
    await ctrl.client.wait_until(lambda: tv in connected_ids(ctrl), SETUP_S)
    # Through the leader at once: no direct offer first, and no 3 s wait for one.
    assert time.monotonic() - in_room < 2.5
    assert await via(ctrl, tv) == "relay"
    # The room's state reached it first, then a cue shows, and its echo comes back.
    await page.wait("return !!document.querySelector('dd[data-key=slide]');", 5)
    await ctrl.client.call("send_control_message", {"payload": "Amazing grace", "to": tv})
    await page.shows("Amazing grace")
    await ctrl.client.wait_until(lambda: any(m["from"] == tv for m in messages(ctrl)), 5)
    assert await page.eval(ALERTS) == ""


async def test_when_the_leader_dies_the_page_follows_without_an_error(
    room: Room, pages: Pages
) -> None:
    leader, survivor = await two_booths(room, SETUP_S)
    page = await pages.open(room.lab.add_host("tv"), page_url(survivor, name="Lobby TV"))
    tv = await page.joined(SETUP_S)
    await survivor.client.wait_until(lambda: tv in connected_ids(survivor), SETUP_S)
    await leader.client.call("send_control_message", {"payload": "Before", "to": tv})
    await page.shows("Before")
    leader.client.process.kill()
    await agree_on([survivor], survivor, SETUP_S)
    await page.wait(
        f"return window.__mw.peer.leaderStatus().leader_id === {json.dumps(survivor.peer_id)};",
        SETUP_S,
    )
    await survivor.client.wait_until(lambda: tv in connected_ids(survivor), SETUP_S)
    await survivor.client.call("send_control_message", {"payload": "After", "to": tv})
    await page.shows("After")
    text = str(await page.eval("return document.body.innerText;"))
    assert "Error" not in text and "Cannot join" not in text, text
    assert await page.eval(ALERTS) == ""
