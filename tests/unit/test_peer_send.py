"""Peer.send against fake channels: who a message went to, and what waits.

A fake stands in for sidecar.channel (no aiortc here): each link sends at
once, queues behind its send window, or has closed.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest

import sidecar.peer as peer_module
from sidecar.errors import PeerNotConnected
from sidecar.identity import Identity
from sidecar.messages import (
    ControlEnvelope,
    PeerType,
    SendControlMessageParams,
    SignalPeer,
    StartPeerParams,
)
from sidecar.peer import Peer, _Run

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
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.went: asyncio.Future[None] | None = None
        self.sent: list[ControlEnvelope] = []

    def send_control(self, envelope: ControlEnvelope) -> asyncio.Future[None] | None:
        if self.behaviour == "closed":
            raise ConnectionError("closed")
        self.sent.append(envelope)
        if self.behaviour == "sends":
            return None
        self.went = asyncio.get_running_loop().create_future()
        return self.went


class FakeChannels:
    def __init__(self, links: dict[str, FakeLink]) -> None:
        self.links = links

    def connected(self) -> list[SignalPeer]:
        return [signal_peer(p) for p in self.links]

    def link(self, peer_id: str) -> FakeLink | None:
        return self.links.get(peer_id)


def started_peer(links: dict[str, FakeLink]) -> Peer:
    peer = Peer(notify=lambda method, params, soon=False: None)
    options = StartPeerParams(name="Booth", peer_type="controller")
    run = _Run(options, signal_peer("a-ctrl", "controller"), peer._notify, Identity())
    run.channels = FakeChannels(links)  # type: ignore[assignment]
    peer._run = run
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
