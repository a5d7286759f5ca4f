"""Keyed rooms that a volunteer joins by typing six digits (docs/api.md,
"Keyed rooms and pairing"): real sidecars in lab namespaces."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest

from tests.e2e.room import (
    CONTROLLER,
    LabPeer,
    Room,
    agree_on,
    connected,
    disconnects,
    display,
    keyed_controller,
    leader_named_since,
    messages,
    notes,
    star,
)
from tests.sidecar_proc import RpcFailure

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

SETUP_S = 10.0


def holds_key(peer: LabPeer, key: str) -> bool:
    return any(n["room_key"] == key for n in notes(peer, "webrtc:room_key"))


def got_one(peer: LabPeer) -> bool:
    return len(messages(peer)) == 1


async def test_a_display_pairs_with_the_controllers_code_then_rejoins_with_the_key(
    room: Room,
) -> None:
    ctrl, key = await keyed_controller(room)
    window = await ctrl.client.call("open_pairing", {})
    assert len(window["code"]) == 6 and window["tries_left"] == 10 and window["uses_left"] == 1
    assert (await ctrl.status())["pairing"]["code"] == window["code"]

    disp = await room.spawn({**display("Lobby", "lobby"), "pairing_code": window["code"]})
    await disp.start()  # returns once paired and in the room
    (paired,) = notes(disp, "webrtc:paired")
    assert paired["room_key"] == key
    await connected([ctrl, disp], star(ctrl, [disp]), SETUP_S)
    await agree_on([ctrl, disp], ctrl, SETUP_S)
    assert (await disp.status())["keyed"] is True
    reasons = [n["reason"] for n in notes(ctrl, "webrtc:pairing")]
    assert reasons == ["opened", "tried", "paired"]
    assert (await ctrl.status())["pairing"] is None  # its one use is spent

    # Its host stored the key: restarted with it, the display joins without pairing.
    await disp.client.call("stop_peer")
    disp.params = {**display("Lobby", "lobby"), "room_key": paired["room_key"]}
    started = time.monotonic()
    await disp.start()
    await disp.client.wait_until(lambda: disp.client.leader_id == ctrl.peer_id, SETUP_S)
    assert time.monotonic() - started < SETUP_S
    assert len(notes(disp, "webrtc:paired")) == 1


def tries_from(peer: LabPeer, address: str) -> int:
    return sum(
        1
        for n in notes(peer, "webrtc:pairing")
        if n["reason"] in ("tried", "exhausted") and n["address"] == address
    )


async def test_a_guesser_spends_only_its_own_tries_while_a_device_elsewhere_pairs(
    room: Room,
) -> None:
    ctrl, key = await keyed_controller(room)
    member = await room.spawn({**display("Audience"), "room_key": key})
    await member.start()
    await connected([ctrl, member], star(ctrl, [member]), SETUP_S)
    window = await ctrl.client.call("open_pairing", {"uses": 2})
    assert window["tries_left"] == 10
    wrong = f"{(int(window['code']) + 1) % 1_000_000:06d}"
    guesser = await room.spawn({**display("Guest phone"), "pairing_code": wrong})

    async def guess() -> None:
        for _ in range(3):  # each start is one guess: the member refuses the confirmation
            with pytest.raises(RpcFailure) as refused:
                await guesser.start()
            assert refused.value.error["code"] == -32005
            assert "wrong code" in refused.value.error["message"]

    guessing = asyncio.create_task(guess())
    try:
        await ctrl.client.wait_until(lambda: tries_from(ctrl, guesser.host.ip) >= 1, SETUP_S)
        # Meanwhile the TV at the back pairs with the right code, from its own address.
        tv = await room.spawn({**display("Lobby TV", "lobby"), "pairing_code": window["code"]})
        started = time.monotonic()
        await tv.start()
        assert time.monotonic() - started < 10.0
        await guessing
    finally:
        guessing.cancel()
    assert tries_from(ctrl, guesser.host.ip) == 3
    paired = [n for n in notes(ctrl, "webrtc:pairing") if n["reason"] == "paired"]
    assert [n["address"] for n in paired] == [tv.host.ip]
    # The guesser's address has used its tries: even the right code is refused there.
    guesser.params = {**display("Guest phone"), "pairing_code": window["code"]}
    with pytest.raises(RpcFailure) as blocked:
        await guesser.start()
    assert "too_many_tries" in str(blocked.value.error)
    assert (await ctrl.status())["pairing"] is not None  # still open for the second use
    # The room never noticed.
    await ctrl.client.call("send_control_message", {"payload": "still here", "to": member.peer_id})
    await member.client.wait_until(lambda: len(messages(member)) == 1, 5)
    assert disconnects(member) == []


async def test_rotation_keeps_the_members_present_and_shuts_out_the_absent_one(
    room: Room,
) -> None:
    ctrl, key = await keyed_controller(room)
    present = [await room.spawn({**display(n), "room_key": key}) for n in ("One", "Two", "Three")]
    absent = await room.spawn({**display("Absent", "stage"), "room_key": key})
    for peer in [*present, absent]:
        await peer.start()
    everyone = [ctrl, *present, absent]
    await connected(everyone, star(ctrl, [*present, absent]), SETUP_S)
    await absent.client.call("stop_peer")  # switched off for the service

    await ctrl.client.call("rotate_room_key")
    (rotated,) = notes(ctrl, "webrtc:room_key")[1:]
    new_key = rotated["room_key"]
    assert rotated["reason"] == "rotated" and new_key != key
    for peer in present:
        await peer.client.wait_until(functools.partial(holds_key, peer, new_key), 5)
    # The three keep talking.
    sent = await ctrl.client.call("send_control_message", {"payload": "after the rotation"})
    assert set(sent["sent_to"]) == {p.peer_id for p in present}
    for peer in present:
        await peer.client.wait_until(functools.partial(got_one, peer), 5)

    # The absent one, back with the old key, is alone.
    since = time.monotonic()
    await absent.start()
    await absent.client.wait_until(lambda: leader_named_since(absent, absent, since), SETUP_S)
    assert absent.client.peer_ids() == {absent.peer_id}
    for peer in [ctrl, *present]:
        assert absent.peer_id not in peer.client.peer_ids()
    # A member restarted with the new key joins as before.
    late = present[0]
    await late.client.call("stop_peer")
    late.params = {**display("One"), "room_key": new_key}
    await late.start()
    await late.client.wait_until(lambda: late.client.leader_id == ctrl.peer_id, SETUP_S)


def revoked_at(peer: LabPeer, revoked: LabPeer) -> float | None:
    """When `peer`'s host heard its channel to `revoked` close as revoked."""
    return next(
        (
            at
            for at, n in peer.client.history
            if n["method"] == "webrtc:disconnected"
            and n["params"]["peer_id"] == revoked.peer_id
            and n["params"]["reason"] == "revoked"
        ),
        None,
    )


def was_revoked(peer: LabPeer, revoked: LabPeer) -> bool:
    return revoked_at(peer, revoked) is not None


async def test_a_revoked_display_that_is_online_is_shut_out_at_once_and_stays_out(
    room: Room,
) -> None:
    ctrl, key = await keyed_controller(room)
    booth = await room.spawn({**CONTROLLER, "name": "Booth 2", "room_key": key})
    await booth.start()
    stage = await room.spawn({**display("Stage", "stage"), "room_key": key})
    lost = await room.spawn({**display("Lost tablet"), "room_key": key})
    await stage.start()
    await lost.start()
    controllers = {ctrl.peer_id, booth.peer_id}
    await connected(
        [ctrl, booth, stage, lost],
        {
            ctrl.peer_id: {booth.peer_id, stage.peer_id, lost.peer_id},
            booth.peer_id: {ctrl.peer_id, stage.peer_id, lost.peer_id},
            stage.peer_id: controllers,
            lost.peer_id: controllers,
        },
        SETUP_S,
    )

    # A member that does not lead revokes the tablet: the leader passes it on.
    asked = time.monotonic()
    outcome = await booth.client.call("rotate_room_key", {"revoke": [lost.peer_id]})
    assert outcome["revoked"] == [lost.peer_id]
    assert set(outcome["took"]) == {ctrl.peer_id, booth.peer_id, stage.peer_id}
    for member in (ctrl, booth):
        await member.client.wait_until(functools.partial(was_revoked, member, lost), 2)
        closed = revoked_at(member, lost)
        assert closed is not None and closed - asked < 2.0
    new_key = notes(booth, "webrtc:room_key")[-1]["room_key"]
    for member in (ctrl, stage):
        await member.client.wait_until(functools.partial(holds_key, member, new_key), 5)
        (heard,) = [n for n in notes(member, "webrtc:room_key") if n["room_key"] == new_key]
        assert heard["revoked"] == [lost.peer_id]
    assert not holds_key(lost, new_key)

    # The tablet keeps running with what it had: it never gets back in.
    sent = await ctrl.client.call("send_control_message", {"payload": "after the revocation"})
    assert set(sent["sent_to"]) == {booth.peer_id, stage.peer_id}
    await stage.client.wait_until(functools.partial(got_one, stage), 5)
    await lost.client.wait_until(lambda: leader_named_since(lost, lost, asked), SETUP_S)
    for member in (ctrl, booth, stage):
        assert lost.peer_id not in member.client.peer_ids()
    assert all(m["payload"] != "after the revocation" for m in messages(lost))
    # Nobody revokes the leader (it would pass the key on to itself).
    with pytest.raises(RpcFailure) as refused:
        await booth.client.call("rotate_room_key", {"revoke": [ctrl.peer_id]})
    assert refused.value.error["code"] == -32602
