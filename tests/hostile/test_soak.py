"""Ten minutes under attack: an mDNS flood and a data-channel flood against a room
of one controller and three displays, while the controller sends cues.

Bounded: the flood is a fixed number of packets at a fixed rate, the guests a
fixed number of rounds; everything stops by itself. Asserted: every cue sent
meanwhile arrived, once and in order, and no honest sidecar's resident memory
grew more than 20 MB over its value once the room had settled.
"""

from __future__ import annotations

import asyncio
import os
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
    display,
    star,
)
from tests.hostile.device import Hostile
from tests.hostile.test_channels import MB, rss

SOAK_S = float(os.environ.get("MW_SOAK_S", "600"))
"""The soak's length (ten minutes; MW_SOAK_S shortens it for a quick look)."""
FLOOD_RATE = 100  # forged mDNS packets a second
GUEST_ROUND_S = 10.0  # a new guest floods a display every this often
RSS_BOUND = 20 * MB

pytestmark = [pytest.mark.lab, pytest.mark.timeout(int(SOAK_S) + 300)]


async def guest_round(room: Room, ctrl: LabPeer, target: LabPeer, n: int) -> None:
    """One guest: joins the open room, opens a channel to `target`, sends a burst
    and then one message far over the size limit (which ends its channel)."""
    host = room.lab.add_host(f"guest{n}")
    guest = await Hostile.start(
        host,
        "rtc",
        url=f"ws://{ctrl.host.ip}:3010/signal",
        room="default",
        target=target.peer_id,
        ip=host.ip,
    )
    try:
        await guest.wait("open", within=20)
        me = next(e["peer_id"] for e in guest.events if e.get("event") == "registered")
        burst = '{"type":"control","id":"g{n}","from":"%s","sent_at":1,"payload":"%s"}'
        await guest.command(text=burst % (me, "g" * 500), repeat=2_000, then_wait=0.5)
        await guest.command(text="x" * 200_000, then_wait=0.1)
        await guest.wait("channel_closed", within=30)
    finally:
        await guest.close()


async def test_ten_minutes_of_floods_cost_no_cue_and_bounded_memory(room: Room) -> None:
    peers = await room.start(
        CONTROLLER, display("Audience"), display("Stage", "stage"), display("Lobby", "lobby")
    )
    ctrl, displays = peers[0], peers[1:]
    await connected(peers, star(ctrl, displays), 10)
    await agree_on(peers, ctrl, 10)
    attacker_host = room.lab.add_host("mdnsflood")
    flooder = await Hostile.start(attacker_host, "mdns", ip=attacker_host.ip)
    await flooder.wait("ready")
    stream = CueStream(ctrl, displays, every_s=0.2)
    await stream.flowing(10, 10)
    baseline = {p.peer_id: rss(p) for p in peers}
    peak = dict(baseline)
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
    forged = {"txt": encode_txt(template, None, 0), "port": 3010}
    await flooder.command(
        op="flood", count=int(SOAK_S * FLOOD_RATE), rate=FLOOD_RATE, template=forged
    )
    started = time.monotonic()
    rounds = 0
    while time.monotonic() - started < SOAK_S - GUEST_ROUND_S:
        round_started = time.monotonic()
        await guest_round(room, ctrl, displays[rounds % len(displays)], rounds)
        rounds += 1
        for peer in peers:
            peak[peer.peer_id] = max(peak[peer.peer_id], rss(peer))
        rest = GUEST_ROUND_S - (time.monotonic() - round_started)
        if rest > 0:
            await asyncio.sleep(rest)  # the attack's own pace
    await flooder.wait("flooded", within=GUEST_ROUND_S + 60)
    await stream.all_arrived(30)
    growth = {p.host.name: (peak[p.peer_id] - baseline[p.peer_id]) / MB for p in peers}
    print(f"soak: {rounds} guest rounds; RSS growth (MB): {growth}")
    assert all(g < RSS_BOUND / MB for g in growth.values()), growth
    assert rounds >= int(SOAK_S / GUEST_ROUND_S) - 2
    await agree_on(peers, ctrl, 5)
    await flooder.close()
