"""Peer-to-peer data channels: real sidecars, one per namespace, stdio only."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.room import (
    CONTROLLER,
    LabPeer,
    Room,
    agree_on,
    connected,
    connected_ids,
    display,
    messages,
    until,
)
from tests.lab import LabFeatureUnavailable

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

SETUP_S = 5.0 * 2  # docs/architecture.md: two peers started together, data channel open <= 5 s
UNICODE = {"cue": "Ἰησοῦς ✝ — 𝄞 \u00e9\u0301", "slide": 3, "nested": [1, None, {"ok": True}]}


async def test_two_device_echo(room: Room) -> None:
    ctrl, disp = await room.start(CONTROLLER, {**display("Stage", "stage"), "echo": True})
    await connected(
        [ctrl, disp], {ctrl.peer_id: {disp.peer_id}, disp.peer_id: {ctrl.peer_id}}, SETUP_S
    )
    sent = await ctrl.client.call("send_control_message", {"payload": UNICODE, "to": disp.peer_id})
    assert sent["sent_to"] == [disp.peer_id]
    await ctrl.client.wait_until(lambda: len(messages(ctrl, disp)) == 1, 5)
    (echoed,) = messages(ctrl, disp)
    assert echoed["payload"] == UNICODE
    # The display echoes before it tells its own host: that notification may come later.
    await disp.client.wait_until(lambda: len(messages(disp, ctrl)) == 1, 5)
    (received,) = messages(disp, ctrl)
    assert received["message_id"] == sent["message_id"] and received["payload"] == UNICODE
    rtt = await ctrl.client.call("ping_peer", {"peer_id": disp.peer_id})
    assert rtt["rtt_ms"] > 0
    # Many more, one at a time: enough for both directions' flow-control acks.
    for n in range(2, 42):
        await ctrl.client.call("send_control_message", {"payload": n, "to": disp.peer_id})
        await ctrl.client.wait_until(lambda: len(messages(ctrl, disp)) == n, 5)  # noqa: B023
    assert [m["payload"] for m in messages(ctrl, disp)][1:] == list(range(2, 42))
    await ctrl.client.call("ping_peer", {"peer_id": disp.peer_id})
    for peer in (ctrl, disp):
        assert not [n for _, n in peer.client.history if n["method"] == "webrtc:disconnected"]


async def test_three_device_mesh_default_connects_pairs_with_a_controller(room: Room) -> None:
    ctrl, d1, d2 = await room.start(CONTROLLER, display("Audience"), display("Lobby", "lobby"))
    expected = {
        ctrl.peer_id: {d1.peer_id, d2.peer_id},
        d1.peer_id: {ctrl.peer_id},
        d2.peer_id: {ctrl.peer_id},
    }
    await connected([ctrl, d1, d2], expected, SETUP_S)
    await agree_on([ctrl, d1, d2], ctrl, SETUP_S)
    # The displays never connect to each other, and saying so is an error.
    with pytest.raises(Exception, match="-32003"):
        await d1.client.call("send_control_message", {"payload": 1, "to": d2.peer_id})


async def test_three_device_full_mesh_connects_every_pair(room: Room) -> None:
    full = {"mesh": "full"}
    ctrl, d1, d2 = await room.start(
        {**CONTROLLER, **full}, {**display("Audience"), **full}, {**display("Lobby"), **full}
    )
    ids = {p.peer_id for p in (ctrl, d1, d2)}
    await connected([ctrl, d1, d2], {p.peer_id: ids - {p.peer_id} for p in (ctrl, d1, d2)}, SETUP_S)
    sent = await d1.client.call("send_control_message", {"payload": "hello d2", "to": [d2.peer_id]})
    assert sent["sent_to"] == [d2.peer_id]
    await d2.client.wait_until(lambda: len(messages(d2, d1)) == 1, 5)


async def test_broadcast_unicast_and_display_class_reach_exactly_their_peers(room: Room) -> None:
    ctrl, aud, stage, lobby = await room.start(
        CONTROLLER, display("Audience"), display("Stage", "stage"), display("Lobby", "lobby")
    )
    displays = [aud, stage, lobby]
    await connected(
        [ctrl, *displays],
        {
            ctrl.peer_id: {d.peer_id for d in displays},
            **{d.peer_id: {ctrl.peer_id} for d in displays},
        },
        SETUP_S,
    )
    call = ctrl.client.call
    everyone = await call("send_control_message", {"payload": "all"})
    assert set(everyone["sent_to"]) == {d.peer_id for d in displays}
    one = await call("send_control_message", {"payload": "one", "to": lobby.peer_id})
    assert one["sent_to"] == [lobby.peer_id]
    two = await call("send_control_message", {"payload": "two", "to": [aud.peer_id, stage.peer_id]})
    assert set(two["sent_to"]) == {aud.peer_id, stage.peer_id}
    staged = await call("send_control_message", {"payload": "stage", "display_class": "stage"})
    assert staged["sent_to"] == [stage.peer_id]
    # A marker after everything: once it is in, nothing else is on its way.
    await call("send_control_message", {"payload": "end"})
    await until(displays, lambda p: [m["payload"] for m in messages(p)][-1:] == ["end"], 5)
    assert [m["payload"] for m in messages(aud)] == ["all", "two", "end"]
    assert [m["payload"] for m in messages(stage)] == ["all", "two", "stage", "end"]
    assert [m["payload"] for m in messages(lobby)] == ["all", "one", "end"]


async def test_errors_name_the_peer_and_the_limit(room: Room) -> None:
    ctrl, disp = await room.start(CONTROLLER, display("Audience"))
    await connected(
        [ctrl, disp], {ctrl.peer_id: {disp.peer_id}, disp.peer_id: {ctrl.peer_id}}, SETUP_S
    )
    missing = await ctrl.client.call_raw("send_control_message", {"payload": 1, "to": ["nobody"]})
    assert missing["error"]["code"] == -32003
    assert missing["error"]["data"]["peer_ids"] == ["nobody"]
    big = "x" * (64 * 1024)
    too_big = await ctrl.client.call_raw("send_control_message", {"payload": big})
    assert too_big["error"]["code"] == -32004
    just_fits = "x" * (64 * 1024 - 2)  # the quotes make it exactly 64 KiB serialized
    sent = await ctrl.client.call("send_control_message", {"payload": just_fits})
    assert sent["sent_to"] == [disp.peer_id]
    await disp.client.wait_until(lambda: len(messages(disp)) == 1, 5)
    assert messages(disp)[0]["payload"] == just_fits


async def test_reelection_keeps_channels_that_do_not_involve_the_lost_leader(room: Room) -> None:
    booth, backup, d1 = await room.start(
        CONTROLLER, {**CONTROLLER, "name": "Backup booth"}, display("Audience")
    )
    leader = min([booth, backup], key=lambda p: (p.info["started_at"], p.peer_id))
    survivor = backup if leader is booth else booth
    await agree_on([booth, backup, d1], leader, SETUP_S)
    await connected(
        [survivor, d1],
        {
            survivor.peer_id: {leader.peer_id, d1.peer_id},
            d1.peer_id: {leader.peer_id, survivor.peer_id},
        },
        SETUP_S,
    )
    stop = asyncio.Event()
    sent: list[int] = []

    async def stream() -> None:  # control traffic all through the failover
        n = 0
        while not stop.is_set():
            result = await survivor.client.call(
                "send_control_message", {"payload": n, "to": d1.peer_id}
            )
            assert result["sent_to"] == [d1.peer_id]
            sent.append(n)
            n += 1
            await asyncio.sleep(0.02)  # a steady cue rate, not synchronisation

    streaming = asyncio.create_task(stream())
    await d1.client.wait_until(lambda: len(messages(d1, survivor)) >= 5, 5)
    leader.client.process.kill()
    await agree_on([survivor, d1], survivor, 6.0)
    after_failover = len(sent)
    await d1.client.wait_until(lambda: len(messages(d1, survivor)) >= after_failover + 5, 5)
    stop.set()
    await streaming
    await d1.client.wait_until(lambda: len(messages(d1, survivor)) == len(sent), 5)
    assert [m["payload"] for m in messages(d1, survivor)] == sent
    # The killed leader's channel goes by our own ping (3 x 2 s), never the other.
    await d1.client.wait_until(lambda: leader.peer_id not in connected_ids(d1), 10)
    disconnects = [
        n["params"] for _, n in d1.client.history if n["method"] == "webrtc:disconnected"
    ]
    assert [d["peer_id"] for d in disconnects] == [leader.peer_id]
    assert disconnects[0]["reason"] in ("timeout", "failed", "closed")


async def test_a_killed_display_restarted_rejoins_and_is_reachable(room: Room) -> None:
    ctrl, disp = await room.start(CONTROLLER, display("Audience"))
    await connected(
        [ctrl, disp], {ctrl.peer_id: {disp.peer_id}, disp.peer_id: {ctrl.peer_id}}, SETUP_S
    )
    disp.client.process.kill()
    await ctrl.client.wait_until(lambda: connected_ids(ctrl) == set(), 15)
    reason = ctrl.client.latest["webrtc:disconnected"]["reason"]
    assert reason in ("timeout", "closed", "failed")
    again = await room.spawn(display("Audience"))
    await again.start()
    await connected([ctrl], {ctrl.peer_id: {again.peer_id}}, SETUP_S)
    sent = await ctrl.client.call("send_control_message", {"payload": "back", "to": again.peer_id})
    assert sent["sent_to"] == [again.peer_id]
    await again.client.wait_until(lambda: len(messages(again, ctrl)) == 1, 5)


async def burst(sender: LabPeer, receiver: LabPeer, count: int, timeout: float) -> None:
    """`count` messages written back to back on stdin; all arrive, in order."""
    for n in range(count):
        sender.client.send_raw(
            b'{"jsonrpc":"2.0","method":"send_control_message","params":{"payload":%d,"to":"%s"},'
            b'"id":"b%d"}\n' % (n, receiver.peer_id.encode(), n)
        )
    answers = [await sender.client.response(f"b{n}", timeout) for n in range(count)]
    assert all(a.get("result", {}).get("sent_to") == [receiver.peer_id] for a in answers)
    await receiver.client.wait_until(lambda: len(messages(receiver, sender)) >= count, timeout)
    assert [m["payload"] for m in messages(receiver, sender)] == list(range(count))


async def test_a_burst_of_1000_messages_arrives_complete_and_in_order(room: Room) -> None:
    ctrl, disp = await room.start(CONTROLLER, display("Audience"))
    await connected(
        [ctrl, disp], {ctrl.peer_id: {disp.peer_id}, disp.peer_id: {ctrl.peer_id}}, SETUP_S
    )
    await burst(ctrl, disp, 1000, 30)


def big_send(n: int, to: str, size: int) -> bytes:
    """A send_control_message request line whose payload string is `size` bytes, id b<n>."""
    payload = b'"%d:%s"' % (n, b"x" * size)
    return (
        b'{"jsonrpc":"2.0","method":"send_control_message","params":{"payload":%s,"to":"%s"},'
        b'"id":"b%d"}\n' % (payload, to.encode(), n)
    )


async def test_large_messages_wait_for_the_send_window_and_all_arrive_in_order(
    room: Room,
) -> None:
    """30 KB each: two fill the send window, the rest queue behind it."""
    ctrl, disp = await room.start(CONTROLLER, display("Audience"))
    await connected(
        [ctrl, disp], {ctrl.peer_id: {disp.peer_id}, disp.peer_id: {ctrl.peer_id}}, SETUP_S
    )
    count = 150
    for n in range(count):
        ctrl.client.send_raw(big_send(n, disp.peer_id, 30_000))
    answers = [await ctrl.client.response(f"b{n}", 30) for n in range(count)]
    assert all(a.get("result", {}).get("sent_to") == [disp.peer_id] for a in answers)
    await disp.client.wait_until(lambda: len(messages(disp, ctrl)) >= count, 30)
    got = [m["payload"].split(":")[0] for m in messages(disp, ctrl)]
    assert got == [str(n) for n in range(count)]


async def test_messages_queued_for_a_peer_that_died_answer_an_error_naming_it(
    room: Room,
) -> None:
    """Nothing is dropped silently: what could not go answers -32003 with the peer."""
    ctrl, disp = await room.start(CONTROLLER, display("Audience"))
    await connected(
        [ctrl, disp], {ctrl.peer_id: {disp.peer_id}, disp.peer_id: {ctrl.peer_id}}, SETUP_S
    )
    disp.client.process.kill()  # it acknowledges nothing from now on
    count = 20
    for n in range(count):
        ctrl.client.send_raw(big_send(n, disp.peer_id, 30_000))
    # Bounded by the channel's liveness rule (3 missed pings at 2 s) and then some.
    answers = [await ctrl.client.response(f"b{n}", 15) for n in range(count)]
    errors = [a["error"] for a in answers if "error" in a]
    assert errors, "a dead peer cannot take 20 large messages"
    assert all(a.get("result", {}).get("sent_to") == [disp.peer_id] for a in answers[:2])
    for error in errors:
        assert error["code"] == -32003 and error["data"]["peer_ids"] == [disp.peer_id]
        assert disp.peer_id in error["message"]
    await ctrl.client.wait_until(lambda: connected_ids(ctrl) == set(), 5)


async def test_under_5_percent_loss_messages_still_arrive_in_order(room: Room) -> None:
    ctrl, disp = await room.start(CONTROLLER, display("Audience"))
    await connected(
        [ctrl, disp], {ctrl.peer_id: {disp.peer_id}, disp.peer_id: {ctrl.peer_id}}, SETUP_S
    )
    try:
        disp.host.set_loss(5)
    except LabFeatureUnavailable as exc:
        pytest.skip(str(exc))
    started = time.monotonic()
    await burst(ctrl, disp, 300, 60)
    assert time.monotonic() - started < 60
