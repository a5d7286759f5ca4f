"""A room with one leader: real sidecars, one per network namespace, stdio only.

Timing asserts use twice the "must" column of docs/architecture.md, so a noisy machine
does not flake; bench/ measures the real figures.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.room import CONTROLLER, Room, agree_on, display, until

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

MARGIN = 2.0
STARTED_TOGETHER_S = 5.0 * MARGIN
JOIN_S = 2.0 * MARGIN
KILLED_S = 3.0 * MARGIN
LINK_DOWN_S = 8.0 * MARGIN
HEAL_S = 5.0 * MARGIN


async def test_three_peers_elect_the_controller(room: Room) -> None:
    d1, ctrl, d2 = await room.start(display("Audience"), CONTROLLER, display("Stage", "stage"))
    await agree_on([d1, ctrl, d2], ctrl, STARTED_TOGETHER_S)
    everyone = {d1.peer_id, ctrl.peer_id, d2.peer_id}
    await until([d1, ctrl, d2], lambda p: p.client.peer_ids() == everyone, JOIN_S)
    status = await d1.status()
    assert status["state"] == "follower"
    assert status["leader"]["name"] == "Booth"
    assert status["signaling_url"] == f"ws://{ctrl.host.ip}:3010"


async def test_a_display_joining_a_running_room_follows_it(room: Room) -> None:
    ctrl, d1 = await room.start(CONTROLLER, display("Audience"))
    await agree_on([ctrl, d1], ctrl, STARTED_TOGETHER_S)
    joiner = await room.spawn(display("Lobby", "lobby"))
    started = time.monotonic()
    await joiner.start()
    await joiner.client.wait_until(lambda: joiner.client.leader_id == ctrl.peer_id, JOIN_S)
    assert time.monotonic() - started < JOIN_S
    await agree_on([ctrl, d1, joiner], ctrl, JOIN_S)
    everyone = {ctrl.peer_id, d1.peer_id, joiner.peer_id}
    await until([ctrl, d1, joiner], lambda p: p.client.peer_ids() == everyone, JOIN_S)


async def test_leader_killed_survivors_agree_on_the_successor(room: Room) -> None:
    ctrl, d1, d2 = await room.start(CONTROLLER, display("First"), display("Second"))
    await agree_on([ctrl, d1, d2], ctrl, STARTED_TOGETHER_S)
    successor = min([d1, d2], key=lambda p: (p.info["started_at"], p.peer_id))
    started = time.monotonic()
    ctrl.client.process.kill()
    await agree_on([d1, d2], successor, KILLED_S)
    assert time.monotonic() - started < KILLED_S
    survivors = {d1.peer_id, d2.peer_id}
    await until([d1, d2], lambda p: p.client.peer_ids() == survivors, KILLED_S)


async def test_leader_link_cut_silently_survivors_elect_a_new_one(room: Room) -> None:
    ctrl, d1, d2 = await room.start(CONTROLLER, display("First"), display("Second"))
    await agree_on([ctrl, d1, d2], ctrl, STARTED_TOGETHER_S)
    successor = min([d1, d2], key=lambda p: (p.info["started_at"], p.peer_id))
    started = time.monotonic()
    ctrl.host.cut()
    await agree_on([d1, d2], successor, LINK_DOWN_S)
    assert time.monotonic() - started < LINK_DOWN_S


async def test_partition_both_halves_elect_then_heal_to_one_leader(room: Room) -> None:
    ctrl, d1, d2 = await room.start(CONTROLLER, display("First"), display("Second"))
    await agree_on([ctrl, d1, d2], ctrl, STARTED_TOGETHER_S)
    successor = min([d1, d2], key=lambda p: (p.info["started_at"], p.peer_id))
    ctrl.host.cut()
    await agree_on([d1, d2], successor, LINK_DOWN_S)
    # The controller's half (itself) still has its leader: both halves lead.
    assert (await ctrl.status())["is_leader"]
    started = time.monotonic()
    ctrl.host.heal()
    await agree_on([ctrl, d1, d2], ctrl, HEAL_S)
    assert time.monotonic() - started < HEAL_S


async def test_controller_arriving_after_two_displays_takes_over(room: Room) -> None:
    d1, d2 = await room.start(display("First"), display("Second"))
    first = min([d1, d2], key=lambda p: (p.info["started_at"], p.peer_id))
    await agree_on([d1, d2], first, STARTED_TOGETHER_S)
    term_before = (await d1.status())["term"]
    ctrl = await room.spawn(CONTROLLER)
    await ctrl.start()
    await agree_on([d1, d2, ctrl], ctrl, JOIN_S + STARTED_TOGETHER_S)
    assert (await ctrl.status())["term"] > term_before


async def test_a_peer_with_the_wrong_room_key_is_refused(room: Room) -> None:
    keyed = {"room_key": "psalm-23-the-lord-is-my-shepherd"}
    ctrl, d1 = await room.start({**CONTROLLER, **keyed}, {**display("Audience"), **keyed})
    await agree_on([ctrl, d1], ctrl, STARTED_TOGETHER_S)
    intruder = await room.spawn({**display("Intruder"), "room_key": "wrong-key-wrong-room"})
    await intruder.start()
    # It ends up alone: never told the room's leader or members ...
    await intruder.client.wait_until(lambda: intruder.client.leader_id is not None, JOIN_S * 3)
    assert intruder.client.leader_id == intruder.peer_id
    assert intruder.client.peer_ids() == {intruder.peer_id}
    # ... and the room carries on, unaware of it.
    await agree_on([ctrl, d1], ctrl, JOIN_S)
    for peer in (ctrl, d1):
        assert intruder.peer_id not in peer.client.peer_ids()
        assert all(intruder.peer_id not in str(n) for _, n in peer.client.history)
