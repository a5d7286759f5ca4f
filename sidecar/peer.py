"""The peer: owns this device's state and answers the stdio API.

Issue 2 (foundation) gives it its lifecycle and validation only; discovery,
election, signaling and data channels are wired in by the issues that follow.
Until then a started peer stays `discovering`, alone in its room.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from msgspec import Struct

from sidecar.errors import AlreadyStarted, NotStarted, PayloadTooLarge, PeerNotConnected
from sidecar.messages import (
    MAX_PAYLOAD_BYTES,
    LeaderState,
    LeaderStatus,
    PeerInfo,
    PingResult,
    SendControlMessageParams,
    SendResult,
    StartPeerParams,
    payload_size,
)

log = logging.getLogger(__name__)

Notify = Callable[[str, Struct], None]
"""Sends a notification (method name, params) to the host."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Peer:
    def __init__(self, notify: Notify) -> None:
        self._notify = notify
        self._me: PeerInfo | None = None
        self._options: StartPeerParams | None = None
        self._connected: dict[str, PeerInfo] = {}

    @property
    def started(self) -> bool:
        return self._me is not None

    def _require_started(self) -> PeerInfo:
        if self._me is None:
            raise NotStarted()
        return self._me

    async def start(self, options: StartPeerParams) -> PeerInfo:
        if self._me is not None:
            raise AlreadyStarted()
        self._options = options
        self._me = PeerInfo(
            peer_id=str(uuid.uuid4()),
            name=options.name,
            peer_type=options.peer_type,
            display_class=options.display_class,
            started_at=now_ms(),
            is_leader=False,
            connection_state="self",
        )
        log.info("peer started", extra={"peer_id": self._me.peer_id, "room": options.room})
        return self._me

    async def stop(self) -> None:
        """Leave the network; idempotent, so EOF after stop_peer is harmless."""
        if self._me is None:
            return
        log.info("peer stopped", extra={"peer_id": self._me.peer_id})
        self._me = None
        self._options = None
        self._connected.clear()

    async def send(self, params: SendControlMessageParams) -> SendResult:
        self._require_started()
        size = payload_size(params.payload)
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(size, MAX_PAYLOAD_BYTES)
        targets = self._targets(params)
        return SendResult(message_id=str(uuid.uuid4()), sent_to=targets)

    def _targets(self, params: SendControlMessageParams) -> list[str]:
        """Who a message goes to; every named peer must be connected."""
        if params.to is None:
            chosen = list(self._connected.values())
        else:
            wanted = [params.to] if isinstance(params.to, str) else list(dict.fromkeys(params.to))
            missing = [p for p in wanted if p not in self._connected]
            if missing:
                raise PeerNotConnected(missing)
            chosen = [self._connected[p] for p in wanted]
        if params.display_class is not None:
            chosen = [p for p in chosen if p.display_class == params.display_class]
        return [p.peer_id for p in chosen]

    def connected_peers(self) -> list[PeerInfo]:
        return list(self._connected.values())

    def leader_status(self) -> LeaderStatus:
        state: LeaderState = "discovering" if self._me is not None else "idle"
        return LeaderStatus(
            state=state,
            leader_id=None,
            is_leader=False,
            term=0,
            leader=None,
            signaling_url=None,
        )

    async def ping(self, peer_id: str) -> PingResult:
        self._require_started()
        raise PeerNotConnected([peer_id])
