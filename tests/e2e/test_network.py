"""The peer follows the network: real sidecars in lab namespaces whose links go down,
whose addresses change, with two interfaces, and that sleep and wake.

The bounds asserted are the ones the peer layer promises (docs/api.md, "The network");
bench/bench_network.py measures the real figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.e2e.room import (
    CONTROLLER,
    CueStream,
    LabPeer,
    Room,
    agree_on,
    connected,
    connected_ids,
    disconnects,
    display,
    leader_named_since,
    messages,
    open_fds,
    star,
    start_dual_homed,
    suspend,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

SETUP_S = 10.0


def using(peer: LabPeer, count: int) -> Callable[[], bool]:
    """The peer said it uses `count` addresses."""
    return lambda: len(peer.client.latest["webrtc:network_changed"]["addresses"]) == count


async def test_a_display_started_with_its_link_down_joins_once_it_comes_up(room: Room) -> None:
    (ctrl,) = await room.start(CONTROLLER)
    lobby = await room.spawn(display("Lobby", "lobby"))
    lobby.host.set_link(False)
    info = await lobby.start()  # accepted, not refused
    assert info["name"] == "Lobby"
    status = await lobby.status()
    assert status["state"] == "offline" and status["addresses"] == []
    came_up = time.monotonic()
    lobby.host.set_link(True)
    await connected([ctrl, lobby], star(ctrl, [lobby]), 3.0)
    took = time.monotonic() - came_up
    assert took < 3.0, took
    await agree_on([ctrl, lobby], ctrl, 1.0)
    network = lobby.client.latest["webrtc:network_changed"]
    assert network == {"addresses": [lobby.host.ip], "online": True}


async def test_an_interfaces_list_naming_a_missing_address_waits_for_it(room: Room) -> None:
    (ctrl,) = await room.start(CONTROLLER)
    lobby = await room.spawn({**display("Lobby", "lobby"), "interfaces": ["10.77.0.200"]})
    await lobby.start()
    assert (await lobby.status())["state"] == "offline"
    lobby.host.set_address("10.77.0.200")
    await connected([ctrl, lobby], star(ctrl, [lobby]), 3.0)
    assert (await lobby.status())["addresses"] == ["10.77.0.200"]


async def test_interfaces_that_cannot_be_addresses_are_refused_naming_the_field(
    room: Room,
) -> None:
    peer = await room.spawn(CONTROLLER)
    for garbage, field in (
        (["eth0"], "interfaces[0]"),
        (["10.77.0.1", "not an ip"], "interfaces[1]"),
        (["127.0.0.1"], "interfaces"),
        (["224.0.0.251"], "interfaces"),
    ):
        bad = await peer.client.call_raw("start_peer", {**CONTROLLER, "interfaces": garbage})
        assert bad["error"]["code"] == -32602, garbage
        assert bad["error"]["data"]["field"] == field, bad
    assert (await peer.status())["state"] == "idle"  # nothing was started


async def test_a_display_whose_address_changes_keeps_its_room_and_its_channel(
    room: Room,
) -> None:
    ctrl, disp = await room.start(CONTROLLER, display("Stage", "stage"))
    await connected([ctrl, disp], star(ctrl, [disp]), SETUP_S)
    await agree_on([ctrl, disp], ctrl, SETUP_S)
    term = (await disp.status())["term"]
    fds_before = open_fds(disp)
    stream = CueStream(ctrl, [disp])
    await disp.client.wait_until(lambda: len(messages(disp, ctrl)) >= 5, 5)
    changed = time.monotonic()
    disp.host.set_address("10.77.0.102")
    await disp.client.wait_until(
        lambda: (
            disp.client.latest.get("webrtc:network_changed", {}).get("addresses") == ["10.77.0.102"]
        ),
        3,
    )
    # Cues keep flowing: the channel got a new transport underneath.
    await stream.flowing(10, 8)
    assert time.monotonic() - changed < 8.0
    await agree_on([ctrl, disp], ctrl, 1.0)
    status = await disp.status()
    assert status["term"] == term and status["addresses"] == ["10.77.0.102"]
    await stream.all_arrived(5)
    assert connected_ids(ctrl) == {disp.peer_id} and connected_ids(disp) == {ctrl.peer_id}
    echo = await disp.client.call("send_control_message", {"payload": "back", "to": ctrl.peer_id})
    assert echo["sent_to"] == [ctrl.peer_id]
    await ctrl.client.wait_until(
        lambda: [m["payload"] for m in messages(ctrl, disp)] == ["back"], 5
    )
    # Nothing left behind by the old sockets and transports (closed within a second).
    await asyncio.sleep(1.5)  # no event tells that a socket was released
    assert open_fds(disp) <= fds_before


@pytest.mark.parametrize("who", ["leader", "display"])
async def test_a_link_down_10_s_then_up_brings_the_room_back_within_3_s(
    room: Room, who: str
) -> None:
    ctrl, d1, d2 = await room.start(CONTROLLER, display("First"), display("Second", "stage"))
    await connected([ctrl, d1, d2], star(ctrl, [d1, d2]), SETUP_S)
    await agree_on([ctrl, d1, d2], ctrl, SETUP_S)
    down = ctrl if who == "leader" else d2
    down.host.set_link(False)
    await down.client.wait_until(
        lambda: down.client.latest.get("webrtc:network_changed", {}).get("online") is False, 3
    )
    assert (await down.status())["state"] == "offline"
    await asyncio.sleep(10)  # the outage itself
    came_up = time.monotonic()
    down.host.set_link(True)
    await agree_on([ctrl, d1, d2], ctrl, 3.0)
    await connected([ctrl, d1, d2], star(ctrl, [d1, d2]), 3.0)
    took = time.monotonic() - came_up
    assert took < 3.0, took
    cue = await ctrl.client.call("send_control_message", {"payload": "after"})
    assert set(cue["sent_to"]) == {d1.peer_id, d2.peer_id}


async def test_two_interfaces_losing_either_one_keeps_every_channel(room: Room) -> None:
    peers = await start_dual_homed(room, CONTROLLER, display("First"), display("Second"))
    ctrl, d1, d2 = peers
    await connected(peers, star(ctrl, [d1, d2]), SETUP_S)
    await agree_on(peers, ctrl, SETUP_S)
    stream = CueStream(ctrl, [d1, d2])
    # The leader loses either interface, then a display (which follows it) does.
    for peer, interface in ((ctrl, "eth0"), (ctrl, "eth1"), (d1, "eth0"), (d1, "eth1")):
        peer.host.set_link(False, interface)
        await peer.client.wait_until(using(peer, 1), 3)
        await stream.flowing(20, 8)
        peer.host.set_link(True, interface)
        await peer.client.wait_until(using(peer, 2), 3)
    await stream.all_arrived(5)
    for peer in peers:
        assert disconnects(peer) == [], peer.host.name
    await agree_on(peers, ctrl, 1.0)


@pytest.mark.parametrize("who", ["leader", "display"])
async def test_sleep_and_wake_brings_the_room_back_within_2_s(room: Room, who: str) -> None:
    ctrl, d1, d2 = await room.start(CONTROLLER, display("First"), display("Second", "stage"))
    await connected([ctrl, d1, d2], star(ctrl, [d1, d2]), SETUP_S)
    await agree_on([ctrl, d1, d2], ctrl, SETUP_S)
    sleeper = ctrl if who == "leader" else d2
    woke = await suspend(sleeper, 20)
    if sleeper is not ctrl:  # its notifications before the sleep are stale: wait for news
        await sleeper.client.wait_until(lambda: leader_named_since(sleeper, ctrl, woke), 2.0)
    await agree_on([ctrl, d1, d2], ctrl, 2.0)
    await connected([ctrl, d1, d2], star(ctrl, [d1, d2]), 2.0)
    took = time.monotonic() - woke
    assert took < 2.0, took
