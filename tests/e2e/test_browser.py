"""A browser is a display (docs/api.md, "Web peers"): headless Chromium in its
own lab namespace opens the page a sidecar serves and joins the room with
nothing installed, next to real sidecars in other namespaces."""

from __future__ import annotations

import asyncio
import functools
import json
import time

import pytest

from tests.browser.page import Page, Pages
from tests.e2e.room import (
    CONTROLLER,
    LabPeer,
    Room,
    agree_on,
    connected_ids,
    disconnects,
    display,
    messages,
    page_url,
    two_booths,
    via,
)
from tests.lab import Host

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

SETUP_S = 10.0
NO_UDP = (
    "table inet mwl_noudp {\n"
    " chain in { type filter hook input priority 0; meta l4proto udp drop; }\n"
    " chain out { type filter hook output priority 0; meta l4proto udp drop; }\n}\n"
)


async def three_cues_echoed(ctrl: LabPeer, phone: str) -> None:
    """Cues 0, 1, 2 to the browser `phone`; its echoes come back, in order."""
    for n in range(3):
        await ctrl.client.call("send_control_message", {"payload": n, "to": phone})
    await ctrl.client.wait_until(
        lambda: len([m for m in messages(ctrl) if m["from"] == phone]) == 3, 5
    )
    assert [m["payload"] for m in messages(ctrl) if m["from"] == phone] == [0, 1, 2]


def lists(peer: LabPeer, peer_id: str) -> bool:
    return peer_id in peer.client.peer_ids()


async def open_display(pages: Pages, host: Host, url: str) -> Page:
    return await pages.open(host, url)


async def test_a_browser_display_joins_gets_cues_and_echoes_them_directly(
    room: Room, pages: Pages
) -> None:
    ctrl, disp = await room.start(CONTROLLER, display("Stage", "stage"))
    await agree_on([ctrl, disp], ctrl, SETUP_S)
    page = await open_display(
        pages, room.lab.add_host("phone"), page_url(ctrl, name="Phone", echo="1")
    )
    phone = await page.joined(SETUP_S)
    # It is in every peer list, and its channel to the controller is direct.
    await ctrl.client.wait_until(lambda: phone in connected_ids(ctrl), SETUP_S)
    for peer in (ctrl, disp):
        await peer.client.wait_until(functools.partial(lists, peer, phone), SETUP_S)
    (info,) = [p for p in await ctrl.client.call("get_connected_peers") if p["peer_id"] == phone]
    assert info["via"] == "direct"
    await page.wait("return document.body.innerText.includes('Connected');", SETUP_S)
    # A cue shows on the page, and its echo comes back.
    await ctrl.client.call("send_control_message", {"payload": {"slide": 7}, "to": phone})
    shown = await page.wait(
        "const e = document.getElementById('last-message'); return e && e.textContent;", 5
    )
    assert shown == "slide: 7"  # as a person reads it (docs/api.md, "What the display page shows")
    await ctrl.client.wait_until(lambda: any(m["from"] == phone for m in messages(ctrl)), 5)
    (echo,) = [m for m in messages(ctrl) if m["from"] == phone]
    assert echo["payload"] == {"slide": 7}


async def test_a_browser_that_makes_the_offer_also_opens_a_direct_path(
    room: Room, pages: Pages
) -> None:
    """The lower peer id offers. A browser's offer names its host by an mDNS name
    that Firefox resolves for nobody yet; the sidecar must still answer with its
    own candidates (sidecar.compat.rtc.remote_sdp_for_aioice)."""
    (ctrl,) = await room.start(CONTROLLER)
    for _ in range(12):  # a fresh id per start: one in the upper half leaves room below it
        if ctrl.peer_id >= "8":
            break
        await ctrl.client.call("stop_peer")
        await ctrl.start()
    await agree_on([ctrl], ctrl, SETUP_S)
    page = await open_display(
        pages, room.lab.add_host("phone"), page_url(ctrl, name="Phone", echo="1")
    )
    phone = await page.joined(SETUP_S)
    for _ in range(16):  # a fresh peer id per load: the page offers when its id is lower
        if phone < ctrl.peer_id:
            break
        phone = await page.reloaded(phone, SETUP_S)
    assert phone < ctrl.peer_id, "16 page loads, and the controller's id was always lower"
    await ctrl.client.wait_until(lambda: phone in connected_ids(ctrl), SETUP_S)
    assert await via(ctrl, phone) == "direct"
    await three_cues_echoed(ctrl, phone)


async def test_with_its_udp_blocked_a_browser_joins_through_the_leader(
    room: Room, pages: Pages
) -> None:
    ctrl, _ = await room.start(CONTROLLER, display("Stage", "stage"))
    phone_host = room.lab.add_host("phone")
    phone_host.run(["nft", "-f", "-"], input=NO_UDP, check=True)
    started = time.monotonic()
    page = await open_display(pages, phone_host, page_url(ctrl, name="Phone", echo="1"))
    phone = await page.joined(SETUP_S)
    await ctrl.client.wait_until(lambda: phone in connected_ids(ctrl), SETUP_S)
    assert time.monotonic() - started < 5.0 + 5.0  # the page's load, then 5 s at most
    assert await via(ctrl, phone) == "relay"
    await three_cues_echoed(ctrl, phone)  # the echo travels back the same path


async def test_a_relayed_browser_moves_to_a_direct_path_once_udp_works(
    room: Room, pages: Pages
) -> None:
    ctrl, _ = await room.start(CONTROLLER, display("Stage", "stage"))
    phone_host = room.lab.add_host("phone")
    phone_host.run(["nft", "-f", "-"], input=NO_UDP, check=True)
    page = await open_display(pages, phone_host, page_url(ctrl, name="Phone", echo="1"))
    phone = await page.joined(SETUP_S)
    await ctrl.client.wait_until(lambda: phone in connected_ids(ctrl), SETUP_S)
    assert await via(ctrl, phone) == "relay"
    phone_host.run(["nft", "delete", "table", "inet", "mwl_noudp"], check=True)
    # The offerer tries a direct path every 10 s (6 s each) beside the relay.
    deadline = time.monotonic() + 30.0
    while await via(ctrl, phone) != "direct":
        assert time.monotonic() < deadline, "still relayed 30 s after UDP came back"
        await asyncio.sleep(0.5)  # no event says so: get_connected_peers, polled
    # The same channel: no disconnect, and cues still go both ways.
    assert not [d for d in disconnects(ctrl) if d["peer_id"] == phone]
    await three_cues_echoed(ctrl, phone)


async def test_when_the_leader_dies_the_browser_follows_the_successor(
    room: Room, pages: Pages
) -> None:
    leader, survivor = await two_booths(room, SETUP_S)
    page = await open_display(pages, room.lab.add_host("phone"), page_url(survivor, name="Phone"))
    phone = await page.joined(SETUP_S)
    await survivor.client.wait_until(lambda: phone in connected_ids(survivor), SETUP_S)
    leader.client.process.kill()
    await agree_on([survivor], survivor, SETUP_S)
    await page.wait(
        f"return window.__mw.peer.leaderStatus().leader_id === {json.dumps(survivor.peer_id)};",
        SETUP_S,
    )
    await survivor.client.wait_until(lambda: phone in survivor.client.peer_ids(), SETUP_S)
    await survivor.client.call("send_control_message", {"payload": "still here", "to": phone})
    last = "const e = document.getElementById('last-message');"
    await page.wait(f"{last} return !!e && e.textContent === 'still here';", 5)


async def test_in_a_keyed_room_only_a_page_with_the_key_joins(room: Room, pages: Pages) -> None:
    (ctrl,) = await room.start({**CONTROLLER, "create_room_key": True})
    key = next(
        n["params"]["room_key"] for _, n in ctrl.client.history if n["method"] == "webrtc:room_key"
    )
    await ctrl.client.wait_until(lambda: ctrl.client.leader_id == ctrl.peer_id, SETUP_S)
    keyed = await open_display(
        pages, room.lab.add_host("tv"), page_url(ctrl, name="Lobby TV", key=key)
    )
    tv = await keyed.joined(SETUP_S)
    await ctrl.client.wait_until(lambda: tv in connected_ids(ctrl), SETUP_S)
    assert key not in str(await keyed.eval("return location.href;"))  # taken out of the address
    stranger = await open_display(pages, room.lab.add_host("guest"), page_url(ctrl, name="Guest"))
    # Without a key the page asks for a member's code, and gets nothing from the room.
    await stranger.wait("return document.getElementById('pairing-code') !== null;", SETUP_S)
    assert await stranger.eval("return window.__mw.peer.leaderStatus().leader_id;") is None
    assert await stranger.eval("return window.__mw.peer.connectedPeers().length;") == 0
    assert len(ctrl.client.peer_ids()) == 2  # the controller and the keyed TV
