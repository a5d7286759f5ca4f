"""While aiortc loads, the room is already joined: offers that arrive meanwhile
are kept and handed to the data-channel layer once it exists."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

import sidecar.net.channels
from sidecar.contract import Answer, Offer, SignalPeer, StartPeerParams
from sidecar.core.identity import Identity
from sidecar.node.node import Node as _Node


class RecordingChannels:
    """Stands in for sidecar.net.channels.Channels: records what it is given."""

    made: ClassVar[list[RecordingChannels]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.signals: list[Any] = []
        self.rooms: list[list[SignalPeer]] = []
        RecordingChannels.made.append(self)

    async def handle_signal(self, msg: Any) -> None:
        self.signals.append(msg)

    def update_room(self, members: list[SignalPeer], leader_id: str | None = None) -> None:
        self.rooms.append(list(members))

    def connected(self) -> list[SignalPeer]:
        return []

    def state_of(self, peer_id: str) -> str:
        return "new"

    def relayed(self, peer_id: str) -> bool:
        return False

    def via(self, peer_id: str) -> str:
        return "direct"


async def test_offers_before_the_channel_layer_are_kept_then_handled_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sidecar.net.channels, "Channels", RecordingChannels)
    me = SignalPeer(
        peer_id="b-me", name="Lobby", peer_type="display", started_at=1, display_class="lobby"
    )
    run = _Node(
        StartPeerParams(name="Lobby", peer_type="display", display_class="lobby"),
        me,
        lambda method, params, soon=False: None,
        Identity(),
    )
    early = [
        Offer(from_="a-ctrl", to="b-me", sdp="v=0 first", link="l1", epoch=1),
        Offer(from_="a-other", to="b-me", sdp="v=0 second", link="l1", epoch=1),
    ]
    for msg in early:
        run.signal(msg)
    assert run.channels is None and run.early_signals == early

    await run.load_channels()
    await asyncio.gather(*run.membership.tasks)
    (channels,) = RecordingChannels.made
    assert channels.signals == early and run.early_signals == []
    assert channels.rooms, "the room so far is handed over at once"

    late = Answer(from_="a-ctrl", to="b-me", sdp="v=0 late", link="l1", epoch=1)
    run.signal(late)
    await asyncio.gather(*run.membership.tasks)
    assert channels.signals == [*early, late]
