"""The service behind the stdio API: this device as the host sees it.

`Service` answers the API's methods (start, stop, send, ping, status, state,
pairing): it checks what the host asked, maps failures to the API's errors,
and holds the running node (`sidecar.node.node.Node`) between start_peer and
stop_peer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import msgspec

from sidecar.contract import (
    MAX_PAYLOAD_BYTES,
    ControlEnvelope,
    LeaderStatus,
    OpenPairingParams,
    PairedParams,
    PairingWindow,
    ParamError,
    PeerInfo,
    PingResult,
    RoomKeyParams,
    RotateRoomKeyParams,
    RotationResult,
    SendControlMessageParams,
    SendResult,
    SignalPeer,
    StartPeerParams,
    StateEntry,
    payload_size,
)
from sidecar.core.identity import Identity
from sidecar.core.pairing import new_room_key
from sidecar.core.state import StateError, key_problem
from sidecar.host.errors import (
    AlreadyStarted,
    NotKeyed,
    NotStarted,
    PairingFailed,
    PayloadTooLarge,
    PeerNotConnected,
    StateFull,
)
from sidecar.node.keys import PairingFailed as KeysPairingFailed
from sidecar.node.membership import Stopped
from sidecar.node.node import (
    ROOM_MODULES,
    HostFlow,
    Node,
    Notify,
    import_modules,
    now_ms,
)

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 5.0
SEND_WAIT_S = 10.0
"""Longest a send waits for a peer's send window: beyond the channel's own
liveness rule (3 missed pings at 2 s), so only a peer that answers pings but
never acknowledges messages reaches it."""


class Service:
    def __init__(self, notify: Notify, host: HostFlow | None = None) -> None:
        self._notify = notify
        self._host = host
        self._node: Node | None = None

    # ----------------------------------------------------------------- the API

    @property
    def started(self) -> bool:
        return self._node is not None

    def _started(self) -> Node:
        if self._node is None:
            raise NotStarted()
        return self._node

    async def start(self, options: StartPeerParams) -> PeerInfo:
        if self._node is not None:
            raise AlreadyStarted()
        created: str | None = None
        if options.create_room_key:  # the room's first device: its key is new
            created = new_room_key()
            options = msgspec.structs.replace(options, room_key=created, create_room_key=False)
        identity = Identity()
        me = SignalPeer(
            peer_id=identity.peer_id,
            name=options.name,
            peer_type=options.peer_type,
            display_class=options.display_class,
            started_at=now_ms(),
            addresses=[],
            port=0,
        )
        node = Node(options, me, self._notify, identity, self._host)
        self._node = node
        # Imported off the loop: requests (get_leader_status…) are still answered.
        await asyncio.to_thread(import_modules, *ROOM_MODULES)
        try:
            if node.stopped:
                raise Stopped()
            await node.open()
            if created is not None:
                self._notify("webrtc:room_key", RoomKeyParams(room_key=created, reason="created"))
            if options.pairing_code is not None or options.pairing_token is not None:
                key = await node.paired()
                self._notify("webrtc:paired", PairedParams(room=options.room, room_key=key))
        except BaseException as exc:
            if self._node is node:
                self._node = None
            await node.close()
            if isinstance(exc, Stopped):
                raise NotStarted("stop_peer was called before start_peer completed") from None
            if isinstance(exc, KeysPairingFailed):
                raise PairingFailed(str(exc)) from None
            raise
        log.info(
            "peer started",
            extra={"peer_id": me.peer_id, "room": options.room, "port": node.me.port},
        )
        return node.info(node.me)

    # ------------------------------------------------------------ keyed rooms

    def open_pairing(self, params: OpenPairingParams) -> PairingWindow:
        node = self._started()
        try:
            return node.membership.keys.open_window(params.ttl_s, params.uses)
        except RuntimeError as exc:
            raise NotKeyed(str(exc)) from None

    def close_pairing(self) -> None:
        self._started().membership.keys.close_window()

    async def rotate_room_key(self, params: RotateRoomKeyParams) -> RotationResult:
        node = self._started()
        if node.options.room_key is None:
            raise NotKeyed("an open room has no key to rotate")
        revoke = sorted(set(params.revoke))
        if node.me.peer_id in revoke:
            raise ParamError("revoke", "this device cannot revoke itself")
        leader = node.membership.confirmed_leader()
        if leader is not None and leader in revoke and leader != node.me.peer_id:
            raise ParamError(
                "revoke", f"{leader} leads the room: it cannot be revoked (stop it, then rotate)"
            )
        try:
            took, revoked = await node.membership.keys.rotate(revoke)
        except RuntimeError as exc:
            raise PeerNotConnected([], f" ({exc})") from None
        except TimeoutError:
            raise PeerNotConnected(
                [], " (the leader did not answer: the rotation may not have happened)"
            ) from None
        return RotationResult(took=sorted(took), revoked=revoked)

    async def stop(self) -> None:
        """Leave the network; idempotent, so EOF after stop_peer is harmless."""
        node, self._node = self._node, None
        if node is None:
            return
        await node.close()
        log.info("peer stopped", extra={"peer_id": node.me.peer_id})

    async def send(self, params: SendControlMessageParams) -> SendResult:
        # No await before every channel has sent or queued the message: requests
        # read in order go out in order. The answer waits for the queued ones,
        # which is the backpressure a host flooding a slow peer feels.
        node = self._started()
        size = payload_size(params.payload)
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(size, MAX_PAYLOAD_BYTES)
        targets = _targets(node, params)
        envelope = ControlEnvelope(
            id=str(uuid.uuid4()), from_=node.me.peer_id, sent_at=now_ms(), payload=params.payload
        )
        if params.retain is not None:  # the map changes first, whoever gets the message
            if why := key_problem(params.retain):
                raise ParamError("retain", why)
            try:
                envelope.retain = node.replica.write(params.retain, params.payload, size)
            except StateError as exc:
                raise StateFull(str(exc)) from None
        sent, queued, failed = _deliver(node, targets, envelope)
        if params.retain is not None:
            node.replica.spread(params.retain, skip={p.peer_id for p in targets})
        stuck = False
        if queued:
            try:
                await asyncio.wait(queued.values(), timeout=SEND_WAIT_S)
            finally:  # timed out, or this request was cancelled: drop their places
                for went in queued.values():
                    stuck |= went.cancel()
            for peer_id, went in queued.items():
                if went.cancelled() or went.exception() is not None:
                    failed.append(peer_id)
                else:
                    sent.append(peer_id)
            order = {peer.peer_id: i for i, peer in enumerate(targets)}
            sent.sort(key=order.__getitem__)
        if failed:
            detail = " (channel closed or not taking messages)" if stuck else " (channel closed)"
            raise PeerNotConnected(failed, detail, sent_to=sent, message_id=envelope.id)
        return SendResult(message_id=envelope.id, sent_to=sent)

    def state(self) -> list[StateEntry]:
        """The room's retained state as this peer holds it, by key."""
        return self._node.replica.current() if self._node is not None else []

    def connected_peers(self) -> list[PeerInfo]:
        node = self._node
        if node is None or node.channels is None:
            return []
        return [node.info(peer) for peer in node.channels.connected()]

    def leader_status(self) -> LeaderStatus:
        node = self._node
        if node is None:
            return LeaderStatus(
                state="idle",
                leader_id=None,
                is_leader=False,
                term=0,
                leader=None,
                signaling_url=None,
                addresses=[],
                keyed=False,
            )
        return node.membership.leader_status(node.info)

    async def ping(self, peer_id: str) -> PingResult:
        node = self._started()
        link = node.channels.link(peer_id) if node.channels else None
        if link is None:
            raise PeerNotConnected([peer_id])
        try:
            return PingResult(rtt_ms=round(await link.ping(PING_TIMEOUT_S), 3))
        except (TimeoutError, ConnectionError):
            detail = f" (no answer to a ping within {PING_TIMEOUT_S:.0f} s)"
            raise PeerNotConnected([peer_id], detail) from None


def _targets(node: Node, params: SendControlMessageParams) -> list[SignalPeer]:
    channels = node.channels
    """Who a message goes to; every peer named must have an open channel."""
    connected = {p.peer_id: p for p in channels.connected()} if channels else {}
    if params.to is None:
        chosen = list(connected.values())
    else:
        wanted = [params.to] if isinstance(params.to, str) else list(dict.fromkeys(params.to))
        missing = [p for p in wanted if p not in connected]
        if missing:
            raise PeerNotConnected(missing)
        chosen = [connected[p] for p in wanted]
    if params.display_class is not None:
        chosen = [p for p in chosen if p.display_class == params.display_class]
    return chosen


def _deliver(
    node: Node, targets: list[SignalPeer], envelope: ControlEnvelope
) -> tuple[list[str], dict[str, asyncio.Future[None]], list[str]]:
    """Hand the message to each target's channel, without awaiting anything.

    Returns who it went to, who queued it behind a full send window (with
    the future of its going), and whose channel had closed meanwhile."""
    channels = node.channels
    sent: list[str] = []
    queued: dict[str, asyncio.Future[None]] = {}
    failed: list[str] = []
    text = msgspec.json.encode(envelope).decode()  # once for every channel
    for peer in targets:
        link = channels.link(peer.peer_id) if channels else None
        try:
            if link is None:
                raise ConnectionError(peer.peer_id)
            went = link.send(envelope, text)
        except ConnectionError:
            failed.append(peer.peer_id)
            continue
        if went is None:
            sent.append(peer.peer_id)
        else:
            queued[peer.peer_id] = went
    return sent, queued, failed
