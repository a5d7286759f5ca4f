"""Peer.send against fake channels: who a message went to, and what waits.

A fake stands in for sidecar.net.channels (no aiortc here): each link sends at
once, queues behind its send window, or has closed.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest

import sidecar.host.service as peer_module
from sidecar.contract import (
    ControlEnvelope,
    ParamError,
    PeerType,
    SendControlMessageParams,
    SignalPeer,
    StartPeerParams,
    StateEntry,
    StateEnvelope,
)
from sidecar.core.identity import Identity
from sidecar.host.errors import PeerNotConnected, StateFull
from sidecar.host.service import Service
from sidecar.node.node import Node as _Node

Behaviour = Literal["sends", "queues", "closed"]


def signal_peer(peer_id: str, peer_type: PeerType = "display") -> SignalPeer:
    return SignalPeer(
        peer_id=peer_id,
        name=peer_id,
        peer_type=peer_type,
        display_class="stage" if peer_type == "display" else None,
        started_at=1,
    )


class FakeLink:
    def __init__(self, behaviour: Behaviour, peer_id: str = "") -> None:
        self.behaviour = behaviour
        self.peer_id = peer_id
        self.went: asyncio.Future[None] | None = None
        self.sent: list[ControlEnvelope | StateEnvelope] = []

    def send(
        self, envelope: ControlEnvelope | StateEnvelope, text: str | None = None
    ) -> asyncio.Future[None] | None:
        if self.behaviour == "closed":
            raise ConnectionError("closed")
        self.sent.append(envelope)
        if self.behaviour == "sends":
            return None
        self.went = asyncio.get_running_loop().create_future()
        return self.went

    def send_now(self, envelope: StateEnvelope) -> bool:
        if self.behaviour != "sends":
            return False
        self.sent.append(envelope)
        return True


class FakeChannels:
    def __init__(self, links: dict[str, FakeLink]) -> None:
        self.links = links
        for peer_id, link in links.items():
            link.peer_id = peer_id

    def open_links(self) -> list[FakeLink]:
        return list(self.links.values())

    def connected(self) -> list[SignalPeer]:
        return [signal_peer(p) for p in self.links]

    def link(self, peer_id: str) -> FakeLink | None:
        return self.links.get(peer_id)


def started_peer(
    links: dict[str, FakeLink], told: list[tuple[str, object]] | None = None
) -> Service:
    def notify(method: str, params: object, soon: bool = False) -> None:
        if told is not None:
            told.append((method, params))

    peer = Service(notify=notify)
    options = StartPeerParams(name="Booth", peer_type="controller")
    run = _Node(options, signal_peer("a-ctrl", "controller"), peer._notify, Identity())
    run.channels = FakeChannels(links)  # type: ignore[assignment]
    peer._node = run
    return peer


async def test_sent_to_lists_the_targets_in_order_once_queued_ones_went() -> None:
    links = {"b": FakeLink("queues"), "c": FakeLink("sends"), "d": FakeLink("queues")}
    peer = started_peer(links)
    sending = asyncio.ensure_future(peer.send(SendControlMessageParams(payload={"cue": 1})))
    await asyncio.sleep(0)
    assert not sending.done()  # the answer waits for the queued ones
    for link in (links["d"], links["b"]):
        assert link.went is not None
        link.went.set_result(None)
    result = await asyncio.wait_for(sending, 1)
    assert result.sent_to == ["b", "c", "d"]
    assert all(len(link.sent) == 1 for link in links.values())


async def test_a_channel_that_closed_first_is_named_in_the_error() -> None:
    links = {"b": FakeLink("sends"), "c": FakeLink("queues"), "d": FakeLink("closed")}
    peer = started_peer(links)
    sending = asyncio.ensure_future(peer.send(SendControlMessageParams(payload=1)))
    await asyncio.sleep(0)
    assert links["c"].went is not None
    links["c"].went.set_exception(ConnectionError("closed"))
    with pytest.raises(PeerNotConnected) as caught:
        await asyncio.wait_for(sending, 1)
    assert caught.value.data is not None
    data: dict[str, Any] = caught.value.data
    assert data["peer_ids"] == ["d", "c"] and data["sent_to"] == ["b"]
    assert "channel closed" in caught.value.message


async def test_a_window_that_never_opens_fails_after_the_bound_and_drops_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(peer_module, "SEND_WAIT_S", 0.05)
    links = {"b": FakeLink("queues")}
    peer = started_peer(links)
    with pytest.raises(PeerNotConnected) as caught:
        await asyncio.wait_for(peer.send(SendControlMessageParams(payload=1, to="b")), 2)
    assert "not taking messages" in caught.value.message
    went = links["b"].went
    assert went is not None and went.cancelled()  # it will not go out later


async def test_a_retained_message_goes_to_its_target_and_its_value_to_every_other_peer() -> None:
    links = {"b": FakeLink("sends"), "c": FakeLink("sends")}
    told: list[tuple[str, object]] = []
    peer = started_peer(links, told)
    result = await peer.send(SendControlMessageParams(payload={"slide": 3}, to="b", retain="slide"))
    assert result.sent_to == ["b"]
    (message,) = links["b"].sent
    assert isinstance(message, ControlEnvelope) and message.retain is not None
    assert message.retain.key == "slide"
    (state,) = links["c"].sent
    assert isinstance(state, StateEnvelope)
    assert [(e.key, e.value) for e in state.entries] == [("slide", {"slide": 3})]
    assert state.entries[0].version == message.retain.version
    # The host sees its own write as a change of the map, and get_state has it.
    ((method, entry),) = told
    assert method == "webrtc:state" and isinstance(entry, StateEntry)
    assert [(e.key, e.value, e.origin) for e in peer.state()] == [("slide", {"slide": 3}, "a-ctrl")]


async def test_a_channel_that_cannot_take_a_value_now_gets_it_when_it_has_room() -> None:
    links = {"b": FakeLink("queues")}
    peer = started_peer(links)
    await peer.send(SendControlMessageParams(payload=1, retain="k", to=[]))
    await peer.send(SendControlMessageParams(payload=2, retain="k", to=[]))
    assert links["b"].sent == []  # marked, not queued: one value per key waits
    links["b"].behaviour = "sends"
    assert peer._node is not None
    peer._node.replica.channel_idle("b")
    (state,) = links["b"].sent
    assert isinstance(state, StateEnvelope)
    assert [(e.key, e.value) for e in state.entries] == [("k", 2)]


async def test_a_null_payload_clears_the_key() -> None:
    peer = started_peer({})
    await peer.send(SendControlMessageParams(payload="x", retain="k"))
    await peer.send(SendControlMessageParams(payload=None, retain="k"))
    assert peer.state() == []


async def test_retained_writes_beyond_the_bounds_are_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sidecar.core.state as state_module

    monkeypatch.setattr(state_module, "MAX_KEYS", 2)
    peer = started_peer({})
    for key in ("a", "b"):
        await peer.send(SendControlMessageParams(payload=1, retain=key))
    with pytest.raises(StateFull) as full:
        await peer.send(SendControlMessageParams(payload=1, retain="c"))
    assert full.value.code == -32004 and "at most 2 keys" in full.value.message
    await peer.send(SendControlMessageParams(payload=2, retain="a"))  # an existing key: fine
    with pytest.raises(ParamError) as bad:
        await peer.send(SendControlMessageParams(payload=1, retain="é" * 65))
    assert bad.value.field == "retain" and "128 bytes" in bad.value.reason
