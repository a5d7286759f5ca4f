"""Where multicast does not reach (docs/api.md, "Finding the room"): real
sidecars in lab namespaces, the lab's bridge dropping every multicast frame,
or two subnets joined by a router that forwards none, and a real TURN server.

Timing asserts use twice the issue's bound (2 s); bench/bench_rendezvous.py
measures the real figures.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.e2e.room import (
    CONTROLLER,
    LabPeer,
    Room,
    agree_on,
    connected,
    display,
    messages,
    star,
)
from tests.e2e.turn import coturn_missing, start_turn

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

MARGIN = 2.0
JOIN_S = 2.0 * MARGIN
SETUP_S = 10.0


async def status(peer: LabPeer) -> dict[str, Any]:
    return dict(await peer.client.call("get_leader_status"))


async def lone_controller(room: Room, **extra: Any) -> LabPeer:
    (ctrl,) = await room.start({**CONTROLLER, **extra})
    await ctrl.client.wait_until(lambda: ctrl.client.leader_id == ctrl.peer_id, SETUP_S)
    return ctrl


async def join_timed(room: Room, params: dict[str, Any], ctrl: LabPeer) -> tuple[LabPeer, float]:
    """Spawn and start a display; seconds from start_peer to its channel to `ctrl` open."""
    peer = await room.spawn(params)
    started = time.monotonic()
    await peer.start()
    await connected([peer], {peer.peer_id: {ctrl.peer_id}}, SETUP_S)
    return peer, time.monotonic() - started


async def test_with_multicast_dropped_a_display_given_the_leaders_address_joins(
    room: Room,
) -> None:
    room.lab.drop_multicast()
    ctrl = await lone_controller(room)
    disp, took = await join_timed(room, {**display("Audience"), "rendezvous": [ctrl.host.ip]}, ctrl)
    assert took < JOIN_S, f"{took:.2f} s"
    await agree_on([ctrl, disp], ctrl, JOIN_S)
    seen = await status(disp)
    assert seen["found_by"] == ["rendezvous"]
    assert seen["rendezvous"] == [
        {
            "target": f"{ctrl.host.ip}:3010",
            "state": "answered",
            "addresses": [ctrl.host.ip],
            "error": None,
        }
    ]
    assert seen["room_addresses"][0] == f"{ctrl.host.ip}:3010"


async def test_with_multicast_working_too_both_paths_name_the_same_leader(room: Room) -> None:
    ctrl = await lone_controller(room)
    disp, _ = await join_timed(room, {**display("Audience"), "rendezvous": [ctrl.host.ip]}, ctrl)
    await agree_on([ctrl, disp], ctrl, JOIN_S)
    deadline = time.monotonic() + SETUP_S
    while (found := (await status(disp))["found_by"]) != ["mdns", "rendezvous"]:
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)  # the second path's record: no notification says it came


async def test_given_a_displays_address_a_display_finds_the_leader_through_it(
    room: Room,
) -> None:
    room.lab.drop_multicast()
    key = {"room_key": "psalm-121-i-lift-up-my-eyes"}  # the question and the answer are sealed
    ctrl = await lone_controller(room, **key)
    first, _ = await join_timed(
        room, {**display("Audience"), **key, "rendezvous": [ctrl.host.ip]}, ctrl
    )
    second, took = await join_timed(
        room, {**display("Stage", "stage"), **key, "rendezvous": [first.host.ip]}, ctrl
    )
    assert took < JOIN_S, f"{took:.2f} s"
    await agree_on([ctrl, first, second], ctrl, JOIN_S)
    assert (await status(second))["found_by"] == ["rendezvous"]


async def test_the_remembered_room_addresses_bring_a_restarted_display_back(
    room: Room,
) -> None:
    room.lab.drop_multicast()
    ctrl = await lone_controller(room)
    params = {**display("Audience"), "rendezvous": [ctrl.host.ip]}
    disp, _ = await join_timed(room, params, ctrl)
    remembered = (await status(disp))["room_addresses"]
    assert f"{ctrl.host.ip}:3010" in remembered and f"{disp.host.ip}:3010" in remembered
    await disp.client.call("stop_peer")
    disp.params = {**display("Audience"), "rendezvous": remembered}
    started = time.monotonic()
    await disp.start()  # a new peer id: a restarted app
    await disp.client.wait_until(
        lambda: any(
            at > started
            and n["method"] == "webrtc:connected"
            and n["params"]["peer"]["peer_id"] == ctrl.peer_id
            for at, n in disp.client.history
        ),
        SETUP_S,
    )
    took = time.monotonic() - started
    assert took < JOIN_S, f"{took:.2f} s"


async def test_wrong_and_unreachable_rendezvous_never_block_the_start_or_the_election(
    room: Room,
) -> None:
    other = {**CONTROLLER, "name": "Other room", "room": "chapel"}
    ctrl, stranger = await room.start(CONTROLLER, other)
    nobody = f"{ctrl.host.ip.rsplit('.', 1)[0]}.200"  # on the lab's network, no host there
    targets = [nobody, "localhost:3999", stranger.host.ip]
    disp = await room.spawn({**display("Audience"), "rendezvous": targets})
    started = time.monotonic()
    await disp.start()
    assert time.monotonic() - started < 1.0  # nothing waits for the targets
    await disp.client.wait_until(lambda: disp.client.leader_id == ctrl.peer_id, SETUP_S)
    assert time.monotonic() - started < JOIN_S  # mDNS works: the election did not wait

    states = await settled_rendezvous(disp, SETUP_S)
    assert states[f"{nobody}:3010"]["state"] == "unreachable"
    assert states["localhost:3999"]["state"] == "unreachable"
    assert states["localhost:3999"]["addresses"] == ["127.0.0.1"]
    refused = states[f"{stranger.host.ip}:3010"]
    assert refused["state"] == "refused" and "wrong_room" in refused["error"]
    assert (await status(disp))["found_by"] == ["mdns"]


async def settled_rendezvous(peer: LabPeer, timeout: float) -> dict[str, Any]:
    """The rendezvous targets' statuses once none is waiting or being asked."""
    deadline = time.monotonic() + timeout
    while True:
        states = {r["target"]: r for r in (await status(peer))["rendezvous"]}
        settled = all(r["state"] in ("answered", "unreachable", "refused") for r in states.values())
        if settled or time.monotonic() > deadline:
            return states
        await asyncio.sleep(0.1)  # no notification carries these states: poll the status


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_two_subnets_connect_through_rendezvous_and_a_turn_relay(
    room: Room, transport: str
) -> None:
    if (missing := coturn_missing()) is not None:
        pytest.fail(missing)  # ./scripts/test installs it: its absence is a broken setup
    lab = room.lab
    turn = await start_turn(lab.add_host("turn"))
    ctrl_peer = await room.spawn({**CONTROLLER, "ice_servers": [turn.ice_server(transport)]})
    disp_peer = await room.spawn(
        {
            **display("Lobby", "lobby"),
            "echo": True,
            "ice_servers": [turn.ice_server(transport)],
        }
    )
    disp_peer.host.move_to(1)
    # The VLANs' router forwards signaling and TURN only: no direct path.
    lab.add_router(
        (0, 1), allow=["tcp dport 3010", f"ip daddr {turn.address}", f"ip saddr {turn.address}"]
    )
    disp_peer.params["rendezvous"] = [ctrl_peer.host.ip]
    watch_egress(
        disp_peer, allowed=[f"{lab_subnet(disp_peer)}.0/24", ctrl_peer.host.ip, turn.address]
    )
    # The controller was given no address: it learns the display's from the
    # network (its registration, its SDP), and must not send to it.
    watch_egress(ctrl_peer, allowed=[f"{lab_subnet(ctrl_peer)}.0/24"])
    await ctrl_peer.start()
    await ctrl_peer.client.wait_until(
        lambda: ctrl_peer.client.leader_id == ctrl_peer.peer_id, SETUP_S
    )
    await disp_peer.start()
    await connected([ctrl_peer, disp_peer], star(ctrl_peer, [disp_peer]), SETUP_S)
    for peer, other in ((ctrl_peer, disp_peer), (disp_peer, ctrl_peer)):
        (info,) = await peer.client.call("get_connected_peers")
        assert info["peer_id"] == other.peer_id and info["relayed"] is True
    sent = await ctrl_peer.client.call(
        "send_control_message", {"payload": {"cue": "across"}, "to": disp_peer.peer_id}
    )
    assert sent["sent_to"] == [disp_peer.peer_id]
    await ctrl_peer.client.wait_until(lambda: len(messages(ctrl_peer, disp_peer)) == 1, 5)
    assert messages(ctrl_peer, disp_peer)[0]["payload"] == {"cue": "across"}
    assert egress_elsewhere(disp_peer) == []
    assert egress_elsewhere(ctrl_peer) == []


def lab_subnet(peer: LabPeer) -> str:
    return peer.host.ip.rsplit(".", 1)[0]


EGRESS_TABLE = "mwl_egress"


def watch_egress(peer: LabPeer, allowed: list[str]) -> None:
    """Record every address the host sends to outside `allowed`, link-local
    multicast (mDNS; the kernel's IGMP reports) and loopback, except answers on
    connections made to its signaling server: the sidecar must send to none."""
    ok = ", ".join([*allowed, "224.0.0.0/24", "127.0.0.0/8"])
    peer.host.run(
        ["nft", "-f", "-"],
        input=(
            f"table ip {EGRESS_TABLE} {{\n"
            "  set elsewhere { type ipv4_addr; flags dynamic; }\n"
            "  chain out {\n"
            "    type filter hook output priority 0; policy accept;\n"
            "    tcp sport 3010 accept\n"  # answers on connections made to our server
            f"    ip daddr != {{ {ok} }} add @elsewhere {{ ip daddr }}\n"
            "  }\n}\n"
        ),
        check=True,
    )


def egress_elsewhere(peer: LabPeer) -> list[str]:
    listed = json.loads(
        peer.host.run(
            ["nft", "-j", "list", "set", "ip", EGRESS_TABLE, "elsewhere"], check=True
        ).stdout
    )
    for item in listed["nftables"]:
        if "set" in item:
            return [str(e) for e in item["set"].get("elem", [])]
    raise AssertionError("no set in the egress table")
