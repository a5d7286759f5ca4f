"""mDNS discovery between real processes, each in its own test-lab host.

Every peer is `discovery_probe.py` (one `sidecar.net.discovery.Discovery`) in its
own network namespace: zeroconf never runs in the root namespace. Times come
from the probes' `time.monotonic()`, one clock for every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import msgspec
import pytest
from zeroconf.const import _DUPLICATE_PACKET_SUPPRESSION_INTERVAL

from sidecar.contract import PROTOCOL_VERSION, PeerRecord
from sidecar.core.txt import encode_txt
from tests.lab import Host, Lab, expect_line

pytestmark = [pytest.mark.lab, pytest.mark.timeout(60)]

PROBE = Path(__file__).with_name("discovery_probe.py")
READY_S = 15.0  # interpreter start and imports, on a loaded CI machine
EVENT_S = 3.0  # any discovery event; measured in milliseconds, see the timing test

# zeroconf drops a byte-identical packet arriving within this long of the first
# copy it processed (its duplicate-packet suppression). An unchanged announce is
# only seen if it comes later than that after the previous identical one.
DUPLICATE_WINDOW_S = _DUPLICATE_PACKET_SUPPRESSION_INTERVAL / 1000 + 0.05

Event = dict[str, Any]
Match = Callable[[Event], bool]

# Sends hand-made mDNS responses: one JSON line in (instance label, TXT, port,
# which of ptr/srv/txt/a to include), one packet out, "sent" back.
CRAFTED_SENDER = r"""
import json, socket, sys
from zeroconf import DNSOutgoing
from zeroconf._dns import DNSAddress, DNSPointer, DNSService, DNSText
TYPE = "_mobile-worship._tcp.local."
ip = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, 5353))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
print("ready", flush=True)
for line in sys.stdin:
    p = json.loads(line)
    name, server = p["label"] + "." + TYPE, p["label"] + ".local."
    entries = [f"{k}={v}".encode() for k, v in p["txt"].items()]
    records = {
        "ptr": DNSPointer(TYPE, 12, 1, 4500, name),
        "srv": DNSService(name, 33, 0x8001, 120, 0, 0, p["port"], server),
        "txt": DNSText(name, 16, 0x8001, 4500, b"".join(bytes([len(e)]) + e for e in entries)),
        "a": DNSAddress(server, 1, 0x8001, 120, socket.inet_aton(ip)),
    }
    out = DNSOutgoing(0x8400)
    for part in p["parts"]:
        out.add_answer_at_time(records[part], 0)
    for packet in out.packets():
        s.sendto(packet, ("224.0.0.251", 5353))
    print("sent", flush=True)
"""


class Probe:
    """One probe process: its JSON events as they come, commands in."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log
        self.events: list[Event] = []
        self.peer_id = ""
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line.decode(errors="replace")}
            self.events.append(event)
            self._changed.set()
        self._changed.set()  # EOF wakes waiters too

    async def send(self, cmd: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        await self.process.stdin.drain()

    async def wait(self, match: Match, within: float = EVENT_S, since: int = 0) -> Event:
        """The first event from index `since` on that matches, waiting up to `within`."""
        deadline = time.monotonic() + within
        while True:
            for event in self.events[since:]:
                if match(event):
                    return event
            if self._reader.done():
                raise AssertionError(f"{self.name} exited; {self._describe()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.name}: no matching event in {within}s; {self._describe()}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def seen(self, peer_id: str) -> list[Event]:
        return [e for e in self.events if e["event"] == "seen" and e["peer_id"] == peer_id]

    def _describe(self) -> str:
        events = "\n  ".join(json.dumps(e)[:300] for e in self.events)
        try:
            log = self.log.read_text()[-3000:]
        except OSError:
            log = ""
        return f"events:\n  {events}\nstderr (tail):\n{log}"

    async def stop(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


def event(kind: str, **fields: Any) -> Match:
    def match(e: Event) -> bool:
        return e["event"] == kind and all(e.get(k) == v for k, v in fields.items())

    return match


def seen_of(peer: Probe, **record: Any) -> Match:
    def match(e: Event) -> bool:
        return (
            e["event"] == "seen"
            and e["peer_id"] == peer.peer_id
            and all(e["record"].get(k) == v for k, v in record.items())
        )

    return match


Spawn = Callable[..., Awaitable[Probe]]


@pytest.fixture
async def spawn(lab: Lab, tmp_path: Path) -> AsyncIterator[Spawn]:
    """Start a probe in a host and wait until it is ready (not yet started)."""
    probes: list[Probe] = []
    logs: list[IO[bytes]] = []

    async def _spawn(
        host: Host,
        *,
        room: str = "r1",
        peer_type: str = "display",
        display_class: str = "audience",
        name: str | None = None,
        interfaces: list[str] | None = None,
        port: int = 3010,
    ) -> Probe:
        label = f"{host.name}-{len(probes)}"
        argv = [
            sys.executable,
            str(PROBE),
            "--room",
            room,
            "--peer-type",
            peer_type,
            "--display-class",
            display_class,
            "--name",
            name or label,
            "--port",
            str(port),
            "--zeroconf-debug",
        ]
        if interfaces is not None:
            argv += ["--interfaces", ",".join(interfaces)]
        log_path = tmp_path / f"{label}.stderr"
        log = log_path.open("wb")
        logs.append(log)
        process = await host.spawn_async(argv, stderr=log)
        probe = Probe(label, process, log_path)
        probes.append(probe)
        ready = await probe.wait(event("ready"), READY_S)
        probe.peer_id = ready["peer_id"]
        return probe

    try:
        yield _spawn
    finally:
        for probe in probes:
            await probe.stop()
        for log in logs:
            log.close()


async def start_all(*probes: Probe) -> None:
    """Start together: commands go out back to back, then each confirms."""
    for probe in probes:
        await probe.send("start")
    for probe in probes:
        await probe.wait(event("started"))


async def outside_duplicate_window(*pairs: tuple[Probe, Probe]) -> None:
    """For each (receiver, sender): let the receiver's duplicate-packet window for
    the sender's last processed announcement pass. That is a zeroconf protocol
    window, not a wait for something to happen; every processed packet carrying
    the sender's record is a `seen`, so the last one bounds it."""
    for receiver, sender in pairs:
        while True:
            last = max(e["t"] for e in receiver.seen(sender.peer_id))
            remaining = last + DUPLICATE_WINDOW_S - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(remaining)


# -------------------------------------------------------------------------- tests


async def test_two_peers_started_together_see_each_other_with_addresses_and_txt(
    lab: Lab, spawn: Spawn
) -> None:
    h1, h2 = lab.hosts(2)
    booth = await spawn(h1, peer_type="controller", name="Booth", port=3010)
    stage = await spawn(h2, peer_type="display", display_class="stage", name="Stage", port=3011)
    await start_all(booth, stage)

    of_stage = (await booth.wait(seen_of(stage)))["record"]
    of_booth = (await stage.wait(seen_of(booth)))["record"]

    assert of_stage["addresses"] == [h2.ip]
    assert of_booth["addresses"] == [h1.ip]
    assert of_booth == {
        "peer_id": booth.peer_id,
        "name": "Booth",
        "peer_type": "controller",
        "display_class": None,
        "started_at": of_booth["started_at"],
        "role": "candidate",
        "leader_id": None,
        "term": 0,
        "room": "r1",
        "v": PROTOCOL_VERSION,
        "addresses": [h1.ip],
        "port": 3010,
    }
    assert (of_stage["name"], of_stage["peer_type"], of_stage["display_class"]) == (
        "Stage",
        "display",
        "stage",
    )
    assert of_stage["port"] == 3011
    assert abs(of_stage["started_at"] - time.time() * 1000) < 60_000
    # Neither reports itself.
    assert booth.seen(booth.peer_id) == [] and stage.seen(stage.peer_id) == []


async def test_a_peer_of_another_room_is_ignored(lab: Lab, spawn: Spawn) -> None:
    h1, h2, h3 = lab.hosts(3)
    a = await spawn(h1, room="sanctuary")
    b = await spawn(h2, room="sanctuary")
    other = await spawn(h3, room="chapel")
    await start_all(a, b, other)

    await a.wait(seen_of(b))
    await b.wait(seen_of(a))
    # Positive evidence that the foreign announcements arrived and were dropped:
    for probe in (a, b):
        await probe.wait(event("ignored", reason="room", peer_id=other.peer_id))
    await other.wait(event("ignored", reason="room", peer_id=a.peer_id))
    await other.wait(event("ignored", reason="room", peer_id=b.peer_id))

    assert a.seen(other.peer_id) == [] and b.seen(other.peer_id) == []
    assert [e for e in other.events if e["event"] == "seen"] == []
    await a.send("known")
    known = await a.wait(event("known"))
    assert known["peers"] == [b.peer_id]


async def test_an_update_is_seen_by_the_other(lab: Lab, spawn: Spawn) -> None:
    h1, h2 = lab.hosts(2)
    a = await spawn(h1, port=3010)
    b = await spawn(h2)
    await start_all(a, b)
    await b.wait(seen_of(a, role="candidate", term=0))

    await a.send("update", fields={"role": "leader", "term": 2, "leader_id": "self", "port": 4567})
    record = (await b.wait(seen_of(a, role="leader", term=2)))["record"]
    assert record["leader_id"] == a.peer_id
    assert record["port"] == 4567
    assert record["addresses"] == [h1.ip]


async def test_an_unchanged_announce_is_seen_again(lab: Lab, spawn: Spawn) -> None:
    h1, h2 = lab.hosts(2)
    a = await spawn(h1)
    b = await spawn(h2)
    await start_all(a, b)
    first = await b.wait(seen_of(a))
    await outside_duplicate_window((b, a))

    count = len(b.events)
    await a.send("announce")
    again = await b.wait(seen_of(a), since=count)
    assert again["record"] == first["record"]
    assert again["t"] - (await a.wait(event("announced")))["t"] < 0.5


async def test_a_clean_close_is_seen_as_gone_at_once(lab: Lab, spawn: Spawn) -> None:
    h1, h2 = lab.hosts(2)
    a = await spawn(h1)
    b = await spawn(h2)
    await start_all(a, b)
    await b.wait(seen_of(a))
    await a.wait(seen_of(b))

    await a.send("close")
    closing = await a.wait(event("closing"))
    gone = await b.wait(event("gone", peer_id=a.peer_id))
    closed = await a.wait(event("closed"))
    print(
        f"\ngone seen {(gone['t'] - closing['t']) * 1000:.1f} ms after close began; "
        f"close took {closed['close_s'] * 1000:.1f} ms"
    )
    assert gone["t"] - closing["t"] < 1.0
    assert closed["close_s"] < 1.0
    # Nothing of zeroconf keeps running: no task, no thread.
    assert closed["tasks"] == [] and closed["threads"] == []
    assert await asyncio.wait_for(a.process.wait(), 5.0) == 0
    await b.send("known")
    assert (await b.wait(event("known")))["peers"] == []


async def test_after_a_partition_heals_a_periodic_announce_is_seen_again(
    lab: Lab, spawn: Spawn
) -> None:
    h1, h2 = lab.hosts(2)
    leader = await spawn(h1)
    follower = await spawn(h2)
    await start_all(leader, follower)
    first = await follower.wait(seen_of(leader))

    h2.cut()
    await leader.send("announce")  # lost in the partition
    await leader.wait(event("announced"))
    h2.heal()
    await outside_duplicate_window((follower, leader))

    count = len(follower.events)
    await leader.send("announce")
    again = await follower.wait(seen_of(leader), since=count)
    assert again["record"] == first["record"]
    assert [e for e in follower.events if e["event"] == "gone"] == []


async def test_nothing_is_sent_on_an_interface_not_listed(lab: Lab, spawn: Spawn) -> None:
    """h1 has a second link, to h3 only (h3 is cut from the lab bridge). A peer
    on h1 restricted to its lab address is seen on the lab, never on the second
    link, and does not see the peer there: zeroconf sends on listed interfaces
    only, and joins the mDNS group only there.

    (Receiving is only that strict while no other socket of the host joins the
    group on the other link: Linux then delivers that link's mDNS to our
    0.0.0.0:5353 socket too. See Discovery's docstring.)"""
    h1, h2, h3 = lab.hosts(3)
    h3.cut()
    h1.run(["ip", "link", "add", "x0", "type", "veth", "peer", "name", "x1", "netns", h3.netns],
           check=True)  # fmt: skip
    for host, dev, ip in ((h1, "x0", "10.99.0.1"), (h3, "x1", "10.99.0.3")):
        host.run(["ip", "addr", "add", f"{ip}/24", "dev", dev], check=True)
        host.run(["ip", "link", "set", dev, "up"], check=True)
    # An address is used once its link is up with carrier (both ends of the veth).
    for _ in range(100):
        if h1.link_up("x0") and h3.link_up("x1"):
            break
        await asyncio.sleep(0.05)  # bounded: no event tells that the carrier came

    lan = await spawn(h1, interfaces=[h1.ip])
    peer_lan = await spawn(h2)
    far = await spawn(h3, interfaces=["10.99.0.3"])
    await start_all(lan, peer_lan, far)
    await lan.wait(seen_of(peer_lan))
    await peer_lan.wait(seen_of(lan))
    # More traffic on every side: an update (new bytes, never a duplicate) from
    # each, each seen where it can be before the tally.
    counts = [len(p.events) for p in (lan, peer_lan)]
    for probe in (lan, peer_lan, far):
        await probe.send("update", fields={"term": 1})
    await lan.wait(seen_of(peer_lan, term=1), since=counts[0])
    await peer_lan.wait(seen_of(lan, term=1), since=counts[1])
    await far.wait(event("updated"))

    for probe, other in ((lan, peer_lan), (peer_lan, lan), (far, None)):
        await probe.send("known")
        expected = [] if other is None else [other.peer_id]
        assert (await probe.wait(event("known")))["peers"] == expected, probe.name
        seen = {e["peer_id"] for e in probe.events if e["event"] == "seen"}
        assert seen == set(expected), probe.name


async def test_a_record_split_over_packets_is_assembled_and_bad_ones_are_ignored(
    lab: Lab, spawn: Spawn
) -> None:
    h1, h2 = lab.hosts(2)
    probe = await spawn(h1)
    await start_all(probe)
    sender = await h2.spawn_async([sys.executable, "-c", CRAFTED_SENDER, h2.ip])
    await expect_line(sender.stdout, "ready", within=READY_S)

    async def send(label: str, txt: dict[str, str], parts: list[str], port: int = 3010) -> None:
        assert sender.stdin is not None
        line = {"label": label, "txt": txt, "port": port, "parts": parts}
        sender.stdin.write(json.dumps(line).encode() + b"\n")
        await sender.stdin.drain()
        await expect_line(sender.stdout, "sent")

    def record(peer_id: str, **changes: Any) -> PeerRecord:
        base = PeerRecord(
            peer_id=peer_id,
            name="Lobby TV",
            peer_type="display",
            display_class="lobby",
            started_at=1_732_600_000_000,
            role="follower",
            leader_id=None,
            term=3,
            room="r1",
        )
        return msgspec.structs.replace(base, **changes)

    # The service records first, the address in a later packet (as after an A
    # record expired, or from another responder's split answer).
    split = "11111111-1111-4111-8111-111111111111"
    await send(split, encode_txt(record(split)), ["ptr", "srv", "txt"], port=3999)
    await send(split, {}, ["a"])
    seen = (await probe.wait(lambda e: e["event"] == "seen" and e["peer_id"] == split))["record"]
    assert seen["addresses"] == [h2.ip] and seen["port"] == 3999
    assert (seen["name"], seen["term"], seen["role"]) == ("Lobby TV", 3, "follower")

    foreign = "22222222-2222-4222-8222-222222222222"
    await send(
        foreign,
        {**encode_txt(record(foreign)), "v": str(PROTOCOL_VERSION + 1)},
        ["ptr", "srv", "txt", "a"],
    )
    await probe.wait(event("ignored", reason="version", peer_id=foreign))

    liar = "33333333-3333-4333-8333-333333333333"
    await send(liar, encode_txt(record(split)), ["ptr", "srv", "txt", "a"])  # another's id
    await probe.wait(event("ignored", reason="malformed", peer_id=liar))

    broken = "44444444-4444-4444-8444-444444444444"
    await send(broken, {**encode_txt(record(broken)), "term": "-1"}, ["ptr", "srv", "txt", "a"])
    await probe.wait(event("ignored", reason="malformed", peer_id=broken))

    await probe.send("known")
    assert (await probe.wait(event("known")))["peers"] == [split]
