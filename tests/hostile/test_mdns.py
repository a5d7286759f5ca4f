"""Hostile mDNS next to an honest room: forged goodbyes, records and floods.

Each case: real sidecars in lab namespaces, and an attacker on a host of its
own (tests/hostile/attacker.py) that speaks mDNS by hand. What is asserted is
what a user sees: one leader, every channel up, cues delivered.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from sidecar.contract import PeerRecord
from sidecar.core.txt import encode_txt
from tests.e2e.room import (
    CONTROLLER,
    CueStream,
    LabPeer,
    Room,
    agree_on,
    connected,
    disconnects,
    display,
    star,
)
from tests.hostile.device import Hostile

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

SETUP_S = 10.0
QUIET_S = 3.0
"""How long a room is watched for a reaction that, before the fix, came at once."""


async def honest_room(room: Room, *extra: dict[str, object]) -> tuple[LabPeer, list[LabPeer]]:
    peers = await room.start(CONTROLLER, display("Audience"), display("Stage", "stage"))
    ctrl, displays = peers[0], peers[1:]
    await connected(peers, star(ctrl, displays), SETUP_S)
    await agree_on(peers, ctrl, SETUP_S)
    return ctrl, displays


async def mdns_attacker(room: Room) -> Hostile:
    host = room.lab.add_host("attacker")
    attacker = await Hostile.start(host, "mdns", ip=host.ip)
    await attacker.wait("ready")
    return attacker


def txt_of(record: PeerRecord, room_key: str | None = None) -> dict[str, str]:
    return encode_txt(record, room_key, int(time.time() * 1000))


async def test_1_a_forged_goodbye_of_the_leader_changes_nothing(room: Room) -> None:
    ctrl, displays = await honest_room(room)
    peers = [ctrl, *displays]
    attacker = await mdns_attacker(room)
    stream = CueStream(ctrl, displays)
    # Goodbyes (TTL 0) for the leader's instance: PTR alone, then PTR and SRV.
    goodbye = {"label": ctrl.peer_id, "parts": ["ptr"], "ptr_ttl": 0}
    srv_too = {"label": ctrl.peer_id, "parts": ["ptr", "srv"], "ttl": 0, "ptr_ttl": 0}
    await attacker.command(op="packet", records=[goodbye, srv_too])
    await attacker.wait("sent")
    await asyncio.sleep(QUIET_S)  # the old code dropped the leader at once
    await stream.all_arrived(5)
    for peer in peers:
        assert disconnects(peer) == []
        leaders = [n for _, n in peer.client.history if n["method"] == "webrtc:leader_changed"]
        assert [n["params"]["leader_id"] for n in leaders] == [ctrl.peer_id]
    await agree_on(peers, ctrl, 1.0)
    await attacker.close()


async def test_4_forged_terms_beyond_javascript_are_ignored_and_the_room_goes_on(
    room: Room,
) -> None:
    ctrl, displays = await honest_room(room)
    attacker = await mdns_attacker(room)
    forged = PeerRecord(
        peer_id="00000000-0000-4000-8000-000000000001",
        name="Evil",
        peer_type="controller",
        display_class=None,
        started_at=1,
        role="leader",
        leader_id="00000000-0000-4000-8000-000000000001",
        term=2**50,
        room="default",
        port=3010,
    )
    txt = txt_of(forged)
    for term in (str(10**16), str(2**53 - 2), str(2**50 + 1)):
        txt["term"] = term
        await attacker.command(
            op="packet", records=[{"label": forged.peer_id, "txt": txt, "port": 3010}]
        )
        await attacker.wait(lambda e: e.get("event") == "sent")
    await asyncio.sleep(QUIET_S)  # before the fix, a follower's publisher died at once
    # The room carries on: a display joining now is seen and connected by everyone.
    late = await room.spawn(display("Lobby", "lobby"))
    await late.start()
    everyone = [ctrl, *displays, late]
    await connected(everyone, star(ctrl, [*displays, late]), SETUP_S)
    await agree_on(everyone, ctrl, SETUP_S)
    for peer in everyone:
        status = await peer.status()
        assert status["term"] < 2**50
    await attacker.close()


async def test_7_a_flood_of_forged_peers_costs_bounded_work(room: Room) -> None:
    ctrl, displays = await honest_room(room)
    peers = [ctrl, *displays]
    attacker = await mdns_attacker(room)
    template = PeerRecord(
        peer_id="x",
        name="Forged",
        peer_type="display",
        display_class="lobby",
        started_at=int(time.time() * 1000),
        role="candidate",
        leader_id=None,
        term=0,
        room="default",
        port=3010,
    )
    stream = CueStream(ctrl, displays)
    # Complete forged records (decodable, same open room), then names alone (each
    # would start a resolve), at a few hundred packets a second.
    full = {"txt": txt_of(template), "port": 3010}
    await attacker.command(op="flood", count=1500, rate=400, template=full)
    await attacker.wait("flooded", within=30)
    await attacker.command(op="flood", count=1500, rate=400, template={"parts": ["ptr"]})
    await attacker.wait(lambda e: e.get("event") == "flooded" and e["total"] > 2000, within=30)
    await stream.all_arrived(10)
    for peer in peers:
        assert disconnects(peer) == []
    await agree_on(peers, ctrl, 2.0)
    await attacker.close()


async def test_3_a_keyed_record_copied_and_pointed_elsewhere_is_ignored(room: Room) -> None:
    """The attacker hears the leader's signed record on the LAN, listens on the
    signaling port itself, and re-announces the record at its own address: no
    member of the keyed room goes there."""
    keyed = {"room_key": "psalm-23-the-lord-is-my-shepherd"}
    ctrl, disp = await room.start({**CONTROLLER, **keyed}, {**display("Audience"), **keyed})
    await agree_on([ctrl, disp], ctrl, SETUP_S)
    attacker = await mdns_attacker(room)
    here = room.lab.host("attacker").ip
    await attacker.command(op="listen", port=3010)
    await attacker.wait("listening")
    await attacker.command(op="capture", label=ctrl.peer_id, within=5)
    captured = (await attacker.wait("captured"))["txt"]
    assert captured is not None and captured["id"] == ctrl.peer_id and "auth" in captured
    relayed = {"label": ctrl.peer_id, "txt": captured, "port": 3010, "address": here}
    joiner = await room.spawn({**display("Lobby", "lobby"), **keyed})
    await attacker.command(op="packet", records=[relayed])
    await joiner.start()
    for _ in range(3):  # the copy keeps coming, as the leader's own announcements do
        await attacker.command(op="packet", records=[relayed])
        await attacker.wait("sent")
    everyone = [ctrl, disp, joiner]
    await connected(everyone, star(ctrl, [disp, joiner]), SETUP_S)
    await agree_on(everyone, ctrl, SETUP_S)
    assert not [e for e in attacker.events if e.get("event") == "connection"]
    await attacker.close()
