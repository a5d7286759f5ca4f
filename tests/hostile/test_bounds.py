"""The bounds a device on the room's network cannot push (docs/api.md, "Open and
keyed rooms"; issue 23, point 6): members per source address, relayed data
charged to its sender, pages from elsewhere, the page's headers, and a
browser's retained state under the same rules as a sidecar's."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest

from sidecar.core.identity import Identity
from tests.browser.page import Pages
from tests.e2e.room import (
    CueStream,
    LabPeer,
    Room,
    connected_ids,
    disconnects,
    display,
)
from tests.hostile.device import Hostile
from tests.hostile.test_channels import guest_channel
from tests.hostile.test_signaling import (
    closed,
    frame_of,
    member,
    register,
    room_of,
    ws_attacker,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

SETUP_S = 10.0
DAY_MS = 24 * 3600 * 1000


async def test_6_one_address_registers_16_members_at_most_and_the_room_goes_on(
    room: Room,
) -> None:
    ctrl, disp = await room_of(room, display("Audience"))
    laptop = room.lab.add_host("laptop")
    fakes = await Hostile.start(
        laptop,
        "members",
        url=f"ws://{ctrl.host.ip}:3010/signal",
        room="default",
        count=24,
        hold_s=60,
        ip=laptop.ip,
        peer_type="controller",
    )
    try:
        report = await fakes.wait("registered", within=60)
        assert report["counts"] == {"registered": 16, "too_many_members": 8}
        # A display that comes back meanwhile gets in, and its channel to the
        # booth opens: 16 fake controllers hold 16 of its 64 channel slots at most.
        await disp.client.call("stop_peer")
        await disp.start()
        await disp.client.wait_until(lambda: ctrl.peer_id in connected_ids(disp), 20)
        await CueStream(ctrl, [disp]).all_arrived(10)
    finally:
        await fakes.close()


async def test_6_a_relay_flood_cuts_its_sender_and_not_its_receiver(room: Room) -> None:
    ctrl, disp = await room_of(room, display("Audience"))
    attacker, nonce = await ws_attacker(room, ctrl)
    me = Identity()
    await attacker.command(text=register(me, member(me, []), nonce))
    await attacker.wait(frame_of("registered"))
    relay = {
        "type": "relay",
        "from": me.peer_id,
        "to": disp.peer_id,
        "link": "flood",
        "epoch": 1,
        "seq": 1,
        "data": "A" * 60_000,
    }
    stream = CueStream(ctrl, [disp])
    started = time.monotonic()
    await attacker.command(frame=relay, repeat=200)  # 12 MB at once
    # Refused (too_fast, 4029) after about 1 MiB; the close may reach it while
    # it still sends, so what it sees for sure is its connection ending.
    await attacker.wait(closed, within=10)
    await ctrl.client.wait_until(lambda: me.peer_id not in ctrl.client.peer_ids(), 5)
    assert time.monotonic() - started < 5
    await stream.all_arrived(10)
    assert disp.peer_id in ctrl.client.peer_ids() and disconnects(disp) == []
    await attacker.close()


async def test_6_only_the_room_s_own_page_may_open_its_signaling(room: Room) -> None:
    ctrl, disp = await room_of(room, display("Audience"))
    url = f"ws://{ctrl.host.ip}:3010/signal"
    phone = room.lab.add_host("phone")
    # A web site on a congregant's phone: refused before any WebSocket.
    site = await Hostile.start(phone, "ws", url=url, origin="http://10.77.0.250:8080")
    assert (await site.wait("refused"))["status"] == 403
    await site.close()
    # The page a device of the room serves (here the display's): let in.
    page = await Hostile.start(phone, "ws", url=url, origin=f"http://{disp.host.ip}:3010")
    await page.wait(frame_of("challenge"))
    await page.close()
    # A Tauri app's own page (the example app on Android; iOS sends tauri://localhost).
    app = await Hostile.start(phone, "ws", url=url, origin="http://tauri.localhost")
    await app.wait(frame_of("challenge"))
    await app.close()
    # A native client sends no Origin: let in (ws_attacker sends none).
    native, _ = await ws_attacker(room, ctrl)
    await native.close()


HEADERS = """
import json, sys, urllib.request, urllib.error
out = {}
for path in ("/", "/nowhere"):
    try:
        r = urllib.request.urlopen(sys.argv[1] + path, timeout=5)
    except urllib.error.HTTPError as e:
        r = e
    out[path] = {"status": r.status, "headers": dict(r.headers)}
print(json.dumps(out))
"""


async def test_6_every_page_response_carries_the_security_headers(room: Room) -> None:
    (ctrl,) = await room.start({"name": "Booth", "peer_type": "controller"})
    phone = room.lab.add_host("phone")
    done = phone.run([sys.executable, "-c", HEADERS, f"http://{ctrl.host.ip}:3010"], check=True)
    answers = json.loads(done.stdout)
    assert answers["/"]["status"] == 200 and answers["/nowhere"]["status"] == 404
    for answer in answers.values():
        headers = {k.lower(): v for k, v in answer["headers"].items()}
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert headers["x-content-type-options"] == "nosniff"


def state_write(writer: str, key: str, value: Any, at_ms: int) -> str:
    entry = {"key": key, "value": value, "origin": writer, "version": {"time": at_ms, "counter": 0}}
    return json.dumps({"type": "state", "entries": [entry]})


def told_song(peer: LabPeer) -> Any:
    """The value of `song` as the peer's host was last told it."""
    told = [n["params"] for _, n in peer.client.history if n["method"] == "webrtc:state"]
    return next((t["value"] for t in reversed(told) if t["key"] == "song"), None)


async def test_6_a_future_dated_write_is_refused_by_a_browser_as_by_a_sidecar(
    room: Room, pages: Pages
) -> None:
    ctrl, disp = await room_of(room, display("Audience"))
    page = await pages.open(
        room.lab.add_host("tv"), f"http://{ctrl.host.ip}:3010/#name=TV&class=lobby"
    )
    tv = await page.joined(SETUP_S)
    await ctrl.client.wait_until(lambda: tv in connected_ids(ctrl), SETUP_S)
    await ctrl.client.call("send_control_message", {"payload": "Verse 1", "retain": "song"})
    # A guest writes the same key two days ahead, to the browser and to the display.
    guests = [
        await guest_channel(room, ctrl, tv, "guest1"),
        await guest_channel(room, ctrl, disp, "guest2"),
    ]
    future = int(time.time() * 1000) + 2 * DAY_MS
    for guest in guests:
        writer = next(e["peer_id"] for e in guest.events if e.get("event") == "registered")
        await guest.command(text=state_write(writer, "song", "HACKED", future), then_wait=1.0)
        await guest.wait("sent", within=10)
    # Had either taken it, a later honest write would lose to it.
    await ctrl.client.call("send_control_message", {"payload": "Verse 2", "retain": "song"})
    await page.wait(
        "const e = document.querySelector('[data-key=song]');"
        " return e && e.textContent === 'Verse 2';",
        SETUP_S,
    )

    await disp.client.wait_until(lambda: told_song(disp) == "Verse 2", SETUP_S)
    browser_state = await page.call("get_state")
    display_state = await disp.client.call("get_state")
    assert browser_state == display_state  # the same map, to the version
    for guest in guests:
        await guest.close()
