"""The membership's wiring (sidecar/node/membership.py) with fake adapters: the
election's decisions carried out on the signaling server and client, offers
routed through whoever leads, the room key fanned out, the status the host
reads. The election's own rules are tests/unit/test_election.py's; here only
what the membership does with them. No network, no root."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from typing import Any, ClassVar

import msgspec
import pytest

from sidecar.contract import (
    Offer,
    PeerInfo,
    PeerRecord,
    PeerSignal,
    Registered,
    Rekey,
    Rekeyed,
    RoomKeyReason,
    SignalPeer,
    StartPeerParams,
)
from sidecar.core.identity import Identity
from sidecar.core.pairing import Window
from sidecar.core.registry import PairingUpdate
from sidecar.net.signaling import client as client_module
from sidecar.node.membership import Membership

KEY = "k" * 43


def peer(peer_id: str, peer_type: str = "display", started_at: int = 5) -> SignalPeer:
    return SignalPeer(
        peer_id=peer_id,
        name=peer_id,
        peer_type=peer_type,  # type: ignore[arg-type]
        display_class=None if peer_type == "controller" else "audience",
        started_at=started_at,
        addresses=["10.0.0.9"],
        port=3010,
    )


class Events:
    def __init__(self) -> None:
        self.heard: list[str] = []
        self.signals: list[PeerSignal] = []

    def room_changed(self) -> None:
        self.heard.append("room_changed")

    def network_changed(self, addresses: list[str], online: bool, lost: list[str]) -> None:
        self.heard.append(f"network_changed {addresses} {online}")

    def route_changed(self) -> None:
        self.heard.append("route_changed")

    def signal(self, msg: PeerSignal) -> None:
        self.signals.append(msg)

    def room_key_changed(
        self, room_key: str, reason: RoomKeyReason | None, revoked: Sequence[str]
    ) -> None:
        self.heard.append(f"room_key {reason} {list(revoked)}")

    def pairing_changed(self, update: PairingUpdate) -> None:
        self.heard.append("pairing")


class FakeServer:
    def __init__(self) -> None:
        self.leading = False
        self.calls: list[Any] = []
        self.port = 3010
        self.pairing: Window | None = None

    def start_leading(self, term: int) -> None:
        self.leading = True
        self.calls.append(("start_leading", term))

    def stop_leading(self, redirect: SignalPeer | None = None, term: int | None = None) -> None:
        self.leading = False
        self.calls.append(("stop_leading", redirect.peer_id if redirect else None, term))

    def members(self) -> list[SignalPeer]:
        return []

    def set_known(self, records: list[PeerRecord]) -> None:
        self.calls.append(("set_known", [r.role for r in records]))

    def set_term(self, term: int) -> None:
        self.calls.append(("set_term", term))

    def set_leader_hint(self, leader_id: str | None) -> None:
        self.calls.append(("hint", leader_id))

    def send_local(self, msg: PeerSignal) -> None:
        self.calls.append(("send_local", msg.to))

    def set_key(self, room_key: str | None) -> None:
        self.calls.append(("set_key", room_key))

    def rekey(self, room_key: str, revoke: Sequence[str] = ()) -> list[str]:
        self.calls.append(("rekey", room_key, list(revoke)))
        return ["m-me", "b"]

    def open_pairing(self, window: Window) -> None:
        self.pairing = window


class FakeClient:
    """Stands in for sidecar.net.signaling.client.SignalingClient."""

    made: ClassVar[list[FakeClient]] = []
    leader = peer("z-leader", "controller", started_at=1)

    def __init__(self, **callbacks: Any) -> None:
        self.callbacks = callbacks
        self.sent: list[Any] = []
        self.connected = False
        self.dropped = False
        FakeClient.made.append(self)

    async def join(self, urls: list[str], me: SignalPeer, *args: Any, **kwargs: Any) -> Registered:
        self.connected = True
        self.urls = urls
        return Registered(leader_id=self.leader.peer_id, term=4, peers=[self.leader, me])

    async def send(self, msg: Any) -> None:
        self.sent.append(msg)

    async def rotate(self, rekey: Rekey, timeout: float) -> Rekeyed:
        self.sent.append(rekey)
        return Rekeyed(took=[self.leader.peer_id, "m-me"], revoked=rekey.revoke)

    async def close(self, leave: bool = True) -> None:
        self.connected = False


@pytest.fixture
def membership(monkeypatch: pytest.MonkeyPatch) -> Membership:
    FakeClient.made = []
    monkeypatch.setattr(client_module, "SignalingClient", FakeClient)
    options = StartPeerParams(name="Stage", peer_type="display", display_class="audience")
    me = peer("m-me")
    m = Membership(options, me, Events(), None, Identity())
    m.server = FakeServer()  # type: ignore[assignment]
    return m


def events(m: Membership) -> Events:
    assert isinstance(m.events, Events)
    return m.events


def server(m: Membership) -> FakeServer:
    assert isinstance(m.server, FakeServer)
    return m.server


def describe(p: SignalPeer) -> PeerInfo:
    return PeerInfo(
        peer_id=p.peer_id,
        name=p.name,
        peer_type=p.peer_type,
        display_class=p.display_class,
        started_at=p.started_at,
        is_leader=False,
        connection_state="new",
    )


async def test_alone_it_leads_and_routes_offers_through_its_own_server(m: Membership) -> None:
    m._feed(m.election.start(0.0))
    m._feed(m.election.tick(10.0))  # the discovery window passed: nobody else
    assert m.election.is_leader
    assert ("start_leading", 1) in server(m).calls
    assert "route_changed" in events(m).heard and events(m).heard[-1] == "room_changed"
    offer = Offer(from_="m-me", to="x", sdp="v=0", link="l1", epoch=1)
    assert m.send_signal(offer) and server(m).calls[-1] == ("send_local", "x")
    status = m.leader_status(describe)
    assert (status.state, status.is_leader, status.leader_id) == ("leader", True, "m-me")


async def test_a_better_leader_seen_it_joins_there_and_routes_through_the_client(
    m: Membership,
) -> None:
    m._feed(m.election.start(0.0))
    leader = msgspec.structs.replace(FakeClient.leader, addresses=["192.0.2.7", "10.0.0.9"])
    record = PeerRecord.of(leader, role="leader", leader_id="z-leader", term=3, room="default")
    m.presence.networks = (ipaddress.IPv4Network("10.0.0.0/24"),)
    m._saw(record, "mdns")
    assert m.join_task is not None
    await asyncio.wait_for(m.join_task, 2)
    (client,) = FakeClient.made
    assert client.urls == ["ws://10.0.0.9:3010/signal"]  # nothing sent off our networks
    assert m.confirmed_leader() == "z-leader" and m.found_by == ["mdns"]
    offer = Offer(from_="m-me", to="z-leader", sdp="v=0", link="l1", epoch=1)
    assert m.send_signal(offer)
    await asyncio.sleep(0)
    assert client.sent == [offer]
    status = m.leader_status(describe)
    assert (status.state, status.leader_id, status.signaling_url) == (
        "follower",
        "z-leader",
        "ws://10.0.0.9:3010",
    )


async def test_the_room_key_reaches_every_adapter_and_a_rotation_the_room(m: Membership) -> None:
    m.use_key(KEY)
    assert server(m).calls[-1] == ("set_key", KEY) and m.options.room_key == KEY
    assert m.presence.publish_needed.is_set()
    with pytest.raises(ConnectionError):
        await m.send_rekey("n" * 43, [])  # in no room yet
    m._feed(m.election.start(0.0))
    m._feed(m.election.tick(10.0))
    took, revoked = await m.send_rekey("n" * 43, ["x", "m-me"])
    assert server(m).calls[-1] == ("rekey", "n" * 43, ["x", "m-me"])
    assert (took, revoked) == (["m-me", "b"], ["x"])  # never ourselves
    window = Window(code="123456", expires_at=60.0, tries_left=3, uses_left=1)
    assert m.open_window(window) and server(m).pairing is window


async def test_following_a_rotation_goes_to_the_leader(m: Membership) -> None:
    client = FakeClient()
    client.connected = True
    m.client = client  # type: ignore[assignment]
    took, revoked = await m.send_rekey("n" * 43, ["x"])
    assert client.sent == [Rekey(room_key="n" * 43, revoke=["x"])]
    assert (took, revoked) == (["z-leader", "m-me"], ["x"])


@pytest.fixture
def m(membership: Membership) -> Membership:
    return membership
