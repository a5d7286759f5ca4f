"""Hostile or overwhelmed data channels: a guest's phone that joins an open room
and floods a display, and a display whose app stops reading its sidecar."""

from __future__ import annotations

import asyncio
import time

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
    messages,
    star,
)
from tests.hostile.device import Hostile

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

SETUP_S = 10.0
MB = 1024 * 1024


def rss(peer: LabPeer) -> int:
    """Resident memory of the peer's sidecar, in bytes."""
    with open(f"/proc/{peer.client.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def guest_channel(room: Room, leader: LabPeer, target: LabPeer | str, name: str) -> Hostile:
    """An attacker that joined the open room and opened a channel to `target` (a
    sidecar, or the peer id of a browser)."""
    host = room.lab.add_host(name)
    attacker = await Hostile.start(
        host,
        "rtc",
        url=f"ws://{leader.host.ip}:3010/signal",
        room="default",
        target=target if isinstance(target, str) else target.peer_id,
        ip=host.ip,
    )
    await attacker.wait("open", within=20)
    return attacker


async def test_6_a_flooding_guest_loses_its_channel_and_nothing_else(room: Room) -> None:
    ctrl = await room.spawn(CONTROLLER)
    disp = await room.spawn(display("Audience"), limit=64 * 1024)  # its app reads little
    await asyncio.gather(ctrl.start(), disp.start())
    await connected([ctrl, disp], star(ctrl, [disp]), SETUP_S)
    await agree_on([ctrl, disp], ctrl, SETUP_S)
    memory_before = rss(disp)
    stream = CueStream(ctrl, [disp])
    # 1. One message far over the advertised size (aiortc takes it).
    big = await guest_channel(room, ctrl, disp, "guest1")
    guest1 = next(e["peer_id"] for e in big.events if e.get("event") == "registered")
    await disp.client.wait_until(lambda: guest1 in connected_ids(disp), 5)
    await big.command(text="x" * 200_000)  # under the 256 KiB aiortc lets through
    await disp.client.wait_until(lambda: guest1 not in connected_ids(disp), 5)
    await big.close()
    await stream.all_arrived(10)
    # 2. Thousands of small messages that never wait for an ack, while the
    # display's app does not read: its acks are held, and the guest ignores that.
    flood = await guest_channel(room, ctrl, disp, "guest2")
    guest2 = next(e["peer_id"] for e in flood.events if e.get("event") == "registered")
    await disp.client.wait_until(lambda: guest2 in connected_ids(disp), 5)
    disp.client.pause_reading()
    envelope = '{"type":"control","id":"f{n}","from":"%s","sent_at":1,"payload":"%s"}'
    await flood.command(text=envelope % (guest2, "y" * 900), repeat=20_000, then_wait=2.0)
    report = await flood.wait("sent", within=60)
    assert report["channel"] != "open", "the display must end a channel that ignores its window"
    assert rss(disp) - memory_before < 20 * MB
    disp.client.resume_reading()
    await disp.client.wait_until(lambda: guest2 not in connected_ids(disp), 15)
    taken = len(messages(disp)) - len(messages(disp, ctrl))
    assert taken < 3_000, f"{taken} of the flood reached the host"
    await flood.close()
    stream = CueStream(ctrl, [disp])
    # The honest channel never noticed; memory did not follow the flood.
    await stream.all_arrived(10)
    assert disconnects(ctrl) == []
    assert [d["peer_id"] for d in disconnects(disp)] == [guest1, guest2]
    assert all(d["reason"] == "failed" for d in disconnects(disp))
    assert rss(disp) - memory_before < 20 * MB


async def test_6_a_display_whose_host_stops_reading_slows_the_sender_and_loses_nothing(
    room: Room,
) -> None:
    ctrl = await room.spawn(CONTROLLER)
    disp = await room.spawn(display("Audience"), limit=64 * 1024)
    await asyncio.gather(ctrl.start(), disp.start())
    await connected([ctrl, disp], star(ctrl, [disp]), SETUP_S)
    memory_before = rss(disp)
    disp.client.pause_reading()  # the display's app froze
    sent: list[str] = []
    refusal: dict[str, object] | None = None
    started = time.monotonic()
    payload = "z" * 30_000
    for n in range(300):
        answer = await ctrl.client.call_raw(
            "send_control_message", {"payload": f"{n}:{payload}", "to": disp.peer_id}, timeout=20
        )
        if "error" in answer:
            refusal = answer["error"]
            break
        sent.append(answer["result"]["message_id"])
    assert refusal is not None, "a host that does not read must slow the sender down"
    assert refusal["code"] == -32003 and "not taking messages" in str(refusal["message"])
    assert time.monotonic() - started < 60
    grown = rss(disp) - memory_before
    assert grown < 20 * MB, f"{grown / MB:.1f} MB while its host did not read"
    # Nobody was declared dead for it: the display answers pings, saying it is busy.
    assert disconnects(ctrl) == [] and disconnects(disp) == []
    disp.client.resume_reading()
    await disp.client.wait_until(lambda: len(messages(disp, ctrl)) >= len(sent), 20)
    assert [m["message_id"] for m in messages(disp, ctrl)] == sent
    after = await ctrl.client.call("send_control_message", {"payload": "again", "to": disp.peer_id})
    assert after["sent_to"] == [disp.peer_id]
