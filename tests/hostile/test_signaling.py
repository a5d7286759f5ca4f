"""A hostile member of an open room, speaking the signaling protocol by hand.

The attacker (tests/hostile/attacker.py, mode `ws`) connects to the leader's
signaling server from a lab host of its own and sends the frames the test
writes. An open room lets any device join (docs/api.md, "Open and keyed
rooms"); these cases check what it still cannot do.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from sidecar.contract import Offer, Register, SignalPeer
from sidecar.core.identity import Identity, registration_statement
from sidecar.core.signaling import encode_signal
from tests.e2e.room import (
    CONTROLLER,
    CueStream,
    LabPeer,
    Room,
    agree_on,
    connected,
    disconnects,
    display,
    open_fds,
    star,
    until,
)
from tests.hostile.device import Event, Hostile

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

SETUP_S = 10.0


async def room_of(room: Room, *params: dict[str, Any]) -> list[LabPeer]:
    peers = await room.start(CONTROLLER, *params)
    await connected(peers, star(peers[0], peers[1:]), SETUP_S)
    await agree_on(peers, peers[0], SETUP_S)
    return peers


async def ws_attacker(room: Room, leader: LabPeer) -> tuple[Hostile, str]:
    host = room.lab.add_host("attacker")
    attacker = await Hostile.start(host, "ws", url=f"ws://{leader.host.ip}:3010/signal")
    challenge = await attacker.wait(frame_of("challenge"))
    return attacker, str(challenge["frame"]["nonce"])


def frame_of(kind: str) -> Any:
    return lambda e: e.get("event") == "frame" and e["frame"].get("type") == kind


def closed(e: Event) -> bool:
    return e.get("event") == "closed"


def member(identity: Identity, addresses: list[str], **changes: Any) -> SignalPeer:
    fields: dict[str, Any] = {
        "peer_id": identity.peer_id,
        "name": "Guest phone",
        "peer_type": "display",
        "display_class": "lobby",
        "started_at": int(time.time() * 1000),
        "addresses": addresses,
        "port": 0,
        **changes,
    }
    return SignalPeer(**fields)


def register(identity: Identity, peer: SignalPeer, nonce: str, seq: int = 1) -> str:
    statement = registration_statement(nonce, peer.peer_id, "default", seq)
    frame = Register(
        peer=peer,
        room="default",
        identity=identity.public_key,
        signature=identity.sign(statement),
        seq=seq,
    )
    return encode_signal(frame)


async def test_4_nobody_can_register_as_a_member_and_evict_it(room: Room) -> None:
    ctrl, disp = await room_of(room, display("Audience"))
    attacker, nonce = await ws_attacker(room, ctrl)
    impostor = Identity()
    victim_entry = member(impostor, [room.lab.host("attacker").ip], peer_id=disp.peer_id)
    # Its own key, the victim's id: the id is not the key's.
    await attacker.command(text=register(impostor, victim_entry, nonce, seq=10**6))
    refusal = await attacker.wait(frame_of("error"))
    assert refusal["frame"]["code"] == "bad_identity"
    assert (await attacker.wait(closed))["code"] == 4003
    # The victim is untouched: still a member, still connected, still reached.
    await agree_on([ctrl, disp], ctrl, 1.0)
    assert disp.peer_id in ctrl.client.peer_ids()
    sent = await ctrl.client.call("send_control_message", {"payload": "still you?"})
    assert sent["sent_to"] == [disp.peer_id]
    assert disconnects(disp) == [] and disconnects(ctrl) == []
    await attacker.close()


async def test_5_a_member_lists_only_a_handful_of_addresses_on_the_room_s_network(
    room: Room,
) -> None:
    ctrl, d1, d2 = await room_of(room, display("First"), display("Second", "stage"))
    attacker, nonce = await ws_attacker(room, ctrl)
    guest = Identity()
    own = room.lab.host("attacker").ip
    # 14 000 addresses: the frame is refused as invalid (at most 8).
    frame = json.loads(register(guest, member(guest, [own]), nonce))
    frame["peer"]["addresses"] = [f"10.77.{n // 250}.{n % 250 + 1}" for n in range(14_000)]
    await attacker.command(frame=frame)
    invalid = await attacker.wait(frame_of("error"))
    assert invalid["frame"]["code"] == "invalid"
    # Eight, of which only one is on the lab's network and unicast: that one is kept.
    junk = ["127.0.0.1", "224.0.0.251", "8.8.8.8", "10.77.0.255", "0.0.0.0", "192.168.9.9", own]
    claimed = member(
        guest, junk, peer_type="controller", display_class=None, started_at=1, port=3010
    )
    await attacker.command(text=register(guest, claimed, nonce))
    await attacker.wait(frame_of("registered"))
    await d1.client.wait_until(lambda: guest.peer_id in d1.client.peer_ids(), 5)
    peers = d1.client.latest["webrtc:peer_list_changed"]["peers"]
    listed = next(p for p in peers if p["peer_id"] == guest.peer_id)
    assert listed["name"] == "Guest phone"
    # The guest ranks first (a controller started at 1 ms): it is the successor the
    # followers try first when the leader dies, and it does not answer. They must
    # still agree on a leader in bounded time.
    # Which of the two leads depends on timing (the successor, busy trying the guest,
    # may tell the other "not leader" first, and the other then leads): either is right.
    started = time.monotonic()
    ctrl.client.process.kill()
    ours = {d1.peer_id, d2.peer_id}
    await until([d1, d2], lambda p: p.client.leader_id in ours, 15.0)
    leader = d1 if d1.client.leader_id == d1.peer_id else d2
    await agree_on([d1, d2], leader, 15.0)
    assert time.monotonic() - started < 15.0
    await attacker.close()


async def test_10_offers_only_from_the_pair_s_offerer_and_not_without_bound(room: Room) -> None:
    ctrl, disp = await room_of(room, display("Audience"))
    attacker, nonce = await ws_attacker(room, ctrl)
    # Join as a display: in the default mesh no display pairs with another.
    guest = Identity()
    await attacker.command(
        text=register(guest, member(guest, [room.lab.host("attacker").ip]), nonce)
    )
    await attacker.wait(frame_of("registered"))
    fds_before = open_fds(disp)
    stream = CueStream(ctrl, [disp])
    for n in range(200):
        offer = Offer(from_=guest.peer_id, to=disp.peer_id, sdp="v=0\r\n", link=f"l{n}", epoch=1)
        await attacker.command(text=encode_signal(offer))
    await attacker.wait(lambda e: e.get("event") == "sent" and len(attacker.events) > 200, 20)
    await stream.all_arrived(10)
    assert open_fds(disp) <= fds_before + 4  # no transport was built for them
    assert disconnects(disp) == []
    answers = [
        e for e in attacker.events if e.get("event") == "frame" and e["frame"]["type"] == "answer"
    ]
    assert answers == []
    await attacker.close()


async def test_2_two_thousand_half_open_connections_leave_the_leader_serving(room: Room) -> None:
    """A slowloris against a leader limited to 256 file descriptors, as on macOS."""
    ctrl = await room.spawn(CONTROLLER, wrapper=["prlimit", "--nofile=256:256"])
    d1 = await room.spawn(display("Audience"))
    await ctrl.start()
    await d1.start()
    await connected([ctrl, d1], star(ctrl, [d1]), SETUP_S)
    host = room.lab.add_host("attacker")
    attacker = await Hostile.start(
        host, "slowloris", target=ctrl.host.ip, port=3010, count=2000, hold_s=12
    )
    await attacker.wait("opened", within=60)
    holding = await attacker.wait("holding")
    assert holding["alive"] <= 8  # one address holds a handful, the rest are reset at once
    joiner = await room.spawn(display("Lobby", "lobby"))
    started = time.monotonic()
    await joiner.start()
    await connected([ctrl, d1, joiner], star(ctrl, [d1, joiner]), SETUP_S)
    assert time.monotonic() - started < 2.0  # a join's "must" bound, attack or not
    # What did not register within the handshake deadline is gone too.
    await attacker.wait(lambda e: e.get("event") == "holding" and e["alive"] == 0, within=15)
    assert open_fds(ctrl) < 200
    await attacker.close()


async def test_11_names_with_control_characters_are_refused(room: Room) -> None:
    ctrl, disp = await room_of(room, display("Audience"))
    attacker, nonce = await ws_attacker(room, ctrl)
    guest = Identity()
    frame = json.loads(register(guest, member(guest, [room.lab.host("attacker").ip]), nonce))
    frame["peer"]["name"] = "Lobby\x1b[2J\x07"  # a terminal escape and a bell, for the logs
    await attacker.command(frame=frame)
    invalid = await attacker.wait(frame_of("error"))
    assert invalid["frame"]["code"] == "invalid" and "name" in invalid["frame"]["message"]
    assert guest.peer_id not in ctrl.client.peer_ids()
    await agree_on([ctrl, disp], ctrl, 1.0)
    await attacker.close()
