"""Bad input from a host or a buggy peer, next to an honest room: stop during
start, malformed ICE servers, echoing peers, and delivery that is honest when
a link is cut in the middle of a stream."""

from __future__ import annotations

import asyncio

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

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

SETUP_S = 10.0


def listening(peer: LabPeer, port: int = 3010) -> bool:
    """Whether anything in the peer's namespace accepts TCP on its address and `port`."""
    probe = peer.host.run(
        [
            "python3",
            "-c",
            "import socket,sys\n"
            "s=socket.socket(); s.settimeout(1)\n"
            f"sys.exit(s.connect_ex(({peer.host.ip!r}, {port})))",
        ]
    )
    return probe.returncode == 0


@pytest.mark.parametrize("delay_s", [0.0, 0.005, 0.02, 0.05, 0.1, 0.3])
async def test_8_stop_during_start_wins_and_leaves_nothing_running(
    room: Room, delay_s: float
) -> None:
    peer = await room.spawn(CONTROLLER)
    start = asyncio.create_task(peer.client.call_raw("start_peer", CONTROLLER))
    await asyncio.sleep(delay_s)  # where in the start the stop lands
    stopped = await peer.client.call_raw("stop_peer")
    answer = await start
    assert stopped.get("result", "missing") is None
    if "error" in answer:
        assert answer["error"]["code"] == -32001, answer
        assert "stop_peer" in answer["error"]["message"]
    status = await peer.status()
    assert status["state"] == "idle"
    assert not listening(peer)  # no signaling server left bound
    # And a new start works, on the same port.
    again = await peer.client.call("start_peer", CONTROLLER)
    assert again["peer_id"] != answer.get("result", {}).get("peer_id")
    await peer.client.wait_until(lambda: peer.client.leader_id is not None, SETUP_S)
    assert listening(peer)


async def test_9_a_malformed_ice_server_is_refused_naming_it(room: Room) -> None:
    peer = await room.spawn(CONTROLLER)
    for servers, field in (
        ([{"urls": "http://x"}], "ice_servers[0]"),
        ([{"urls": "stun:10.0.0.1:3478"}, {"urls": ["stun:ok", "nope"]}], "ice_servers[1]"),
        ([{"urls": "turn:10.0.0.1"}], "ice_servers[0]"),  # no credentials
        ([{"urls": "stun:10.0.0.1:70000"}], "ice_servers[0]"),
    ):
        answer = await peer.client.call_raw("start_peer", {**CONTROLLER, "ice_servers": servers})
        assert answer["error"]["code"] == -32602, answer
        assert answer["error"]["data"]["field"] == field
    assert (await peer.status())["state"] == "idle"


async def test_11_two_echoing_peers_do_not_bounce_a_message_forever(room: Room) -> None:
    full = {"mesh": "full", "echo": True}
    ctrl, d1, d2 = await room.start(
        CONTROLLER, {**display("Audience"), **full}, {**display("Stage", "stage"), **full}
    )
    ids = {p.peer_id for p in (ctrl, d1, d2)}
    await connected(
        [d1, d2], {d1.peer_id: ids - {d1.peer_id}, d2.peer_id: ids - {d2.peer_id}}, SETUP_S
    )
    await d1.client.call("send_control_message", {"payload": "ping-pong?", "to": d2.peer_id})
    await d1.client.wait_until(lambda: len(messages(d1, d2)) == 1, 5)  # the echo
    # A marker after it, from the controller: once it is in, a bounce would be too.
    await ctrl.client.call("send_control_message", {"payload": "marker"})
    await d1.client.wait_until(lambda: len(messages(d1, ctrl)) == 1, 5)
    await d2.client.wait_until(lambda: len(messages(d2, ctrl)) == 1, 5)
    await ctrl.client.wait_until(lambda: len(messages(ctrl)) == 2, 5)  # both echoed it once
    assert [m["payload"] for m in messages(d2, d1)] == ["ping-pong?"]
    assert [m["payload"] for m in messages(d1, d2)] == ["ping-pong?"]


async def test_delivery_is_honest_when_a_link_is_cut_mid_stream(room: Room) -> None:
    """Every message in a `sent_to` reached that peer's host, or the sender's host
    was told (webrtc:disconnected names it in `unacknowledged`)."""
    ctrl, disp = await room.start(CONTROLLER, display("Audience"))
    await connected([ctrl, disp], star(ctrl, [disp]), SETUP_S)
    await agree_on([ctrl, disp], ctrl, SETUP_S)
    ids: list[str] = []

    async def stream() -> None:
        n = 0
        while True:
            answer = await ctrl.client.call_raw(
                "send_control_message", {"payload": n, "to": disp.peer_id}, timeout=20
            )
            if "error" in answer:
                return
            ids.append(answer["result"]["message_id"])
            n += 1
            await asyncio.sleep(0.005)  # a fast cue rate, not synchronisation

    streaming = asyncio.create_task(stream())
    await disp.client.wait_until(lambda: len(messages(disp, ctrl)) >= 50, 10)
    disp.host.cut()  # silently: the controller notices by its pings, ~6 s later
    await ctrl.client.wait_until(lambda: "webrtc:disconnected" in ctrl.client.latest, 15)
    await asyncio.wait_for(streaming, 15)
    note = ctrl.client.latest["webrtc:disconnected"]
    arrived = {m["message_id"] for m in messages(disp, ctrl)}
    unacked = set(note["unacknowledged"])
    assert note["peer_id"] == disp.peer_id and note["reason"] in ("timeout", "failed")
    lost = [i for i in ids if i not in arrived and i not in unacked]
    assert lost == [], f"{len(lost)} of {len(ids)} sent messages neither arrived nor reported"
    assert unacked, "a cut mid-stream leaves messages in flight"
    assert unacked <= set(ids)
