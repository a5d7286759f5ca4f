"""A Wi-Fi that isolates its clients (docs/api.md, "Web peers"): the displays and the
browsers reach the wired controller and nothing of each other. Cues still reach
every screen, and the room keeps one leader: a display hears the controller's mDNS
(the controller outranks it) and none of the other displays', so it follows the
controller and never elects itself while the controller runs."""

from __future__ import annotations

import asyncio
import functools
import sys

import pytest

from tests.browser.page import Pages
from tests.e2e.room import (
    CONTROLLER,
    LabPeer,
    Room,
    agree_on,
    connected_ids,
    display,
    messages,
    notes,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

SETUP_S = 15.0
WATCH_S = 5.0


async def isolated_room(room: Room) -> tuple[LabPeer, LabPeer, LabPeer]:
    """A wired controller and two wireless displays that reach only it, in one room."""
    ctrl = await room.spawn(CONTROLLER)
    aud = await room.spawn(display("Audience"))
    stage = await room.spawn(display("Stage", "stage"))
    room.lab.isolate_clients(wired=[ctrl.host])
    for peer in (ctrl, aud, stage):
        await peer.start()
    await agree_on([ctrl, aud, stage], ctrl, SETUP_S)
    return ctrl, aud, stage


def led_by(peer: LabPeer, leader: LabPeer) -> bool:
    return peer.client.leader_id == leader.peer_id


async def test_with_client_isolation_every_screen_gets_the_cues_and_one_leader_stays(
    room: Room, pages: Pages
) -> None:
    ctrl, aud, stage = await isolated_room(room)
    page = await pages.open(
        room.lab.add_host("phone"), f"http://{ctrl.host.ip}:3010/#name=Phone&echo=1"
    )
    phone = await page.joined(SETUP_S)
    everyone = {aud.peer_id, stage.peer_id, phone}
    await ctrl.client.wait_until(lambda: everyone <= connected_ids(ctrl), SETUP_S)
    # The displays cannot reach each other (nor need to: mesh controllers).
    probe = f"import socket; socket.create_connection(('{stage.host.ip}', 3010), 2)"
    assert aud.host.run([sys.executable, "-c", probe], check=False).returncode != 0
    assert stage.peer_id not in connected_ids(aud)

    for n in range(3):
        await ctrl.client.call("send_control_message", {"payload": f"Cue {n}"})
    for peer in (aud, stage):
        await peer.client.wait_until(
            functools.partial(lambda p: len(messages(p, ctrl)) == 3, peer), 5
        )
        assert [m["payload"] for m in messages(peer, ctrl)] == ["Cue 0", "Cue 1", "Cue 2"]
    await page.wait(
        "const e = document.getElementById('last-message');"
        " return !!e && e.textContent.trim() === 'Cue 2';",
        5,
    )
    await ctrl.client.wait_until(lambda: any(m["from"] == phone for m in messages(ctrl)), 5)

    # One leader all along: no display elected itself (watched for a while).
    before = {p.peer_id: len(notes(p, "webrtc:leader_changed")) for p in (aud, stage)}
    await asyncio.sleep(WATCH_S)  # nothing to await: the test is that nothing happens
    for peer in (aud, stage):
        assert led_by(peer, ctrl)
        assert len(notes(peer, "webrtc:leader_changed")) == before[peer.peer_id]
    assert await page.eval("return window.__mw.peer.leaderStatus().leader_id;") == ctrl.peer_id


async def test_with_client_isolation_and_no_controller_each_display_leads_until_one_returns(
    room: Room,
) -> None:
    ctrl, aud, stage = await isolated_room(room)
    both = {aud.peer_id, stage.peer_id}
    await ctrl.client.wait_until(lambda: both <= connected_ids(ctrl), SETUP_S)
    await ctrl.client.call("send_control_message", {"payload": "Welcome", "retain": "slide"})
    for peer in (aud, stage):
        await peer.client.wait_until(functools.partial(lambda p: len(messages(p)) == 1, peer), 5)
    # The booth laptop restarts: each wireless display hears nobody and leads alone.
    await ctrl.client.call("stop_peer")
    for peer in (aud, stage):
        await peer.client.wait_until(functools.partial(led_by, peer, peer), SETUP_S)
        values = {e["key"]: e["value"] for e in await peer.client.call("get_state")}
        assert values == {"slide": "Welcome"}  # what they show stays
    # It is back (a new peer id): one room again.
    await ctrl.start()
    await agree_on([ctrl, aud, stage], ctrl, SETUP_S)
    await ctrl.client.wait_until(
        lambda: {aud.peer_id, stage.peer_id} <= connected_ids(ctrl), SETUP_S
    )
