"""One running node: its membership of the room and its data channels, wired.

A `Node` is what `sidecar.host.service.Service` holds between start_peer and
stop_peer: the membership (`sidecar.node.membership.Membership`: network,
discovery, election, signaling, the room key) and, once aiortc has loaded, the
data channels (`sidecar.net.channels.Channels`) with the retained state over
them (`sidecar.core.replica.Replica`). It receives the membership's and the
channels' events and turns them into notifications for the host.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from msgspec import Struct

from sidecar.contract import (
    ConnectedParams,
    ConnectionState,
    ControlEnvelope,
    DisconnectedParams,
    DisconnectReason,
    LeaderChangedParams,
    MessageParams,
    NetworkChangedParams,
    PairingParams,
    PairingState,
    ParamError,
    PeerInfo,
    PeerListChangedParams,
    PeerSignal,
    RoomKeyParams,
    RoomKeyReason,
    SignalPeer,
    StartPeerParams,
    StateEntry,
    StateEnvelope,
)
from sidecar.core.identity import Identity
from sidecar.core.replica import Replica
from sidecar.node.membership import Membership, Stopped

if TYPE_CHECKING:
    # The network stack (aiohttp, zeroconf, aiortc) is imported when a
    # peer starts, not at process start: the host's first request is answered
    # sooner (a frozen sidecar must answer in under 0.5 s). The room (aiohttp,
    # zeroconf: ~0.6 s to import here) is joined without waiting for aiortc
    # (~0.4 s more), which is only needed once a channel opens.
    from sidecar.core.registry import PairingUpdate
    from sidecar.net.channels import Channels


log = logging.getLogger(__name__)

MAX_EARLY_SIGNALS = 64
"""Offers and answers kept while aiortc loads (a few per peer of the room)."""

ROOM_MODULES = (
    "sidecar.net.signaling.server",
    "sidecar.net.signaling.client",
    "sidecar.net.discovery",
    "sidecar.net.netifs",
)
"""Imported by start_peer before it joins the room (aiohttp, zeroconf)."""
CHANNEL_MODULES = ("sidecar.net.channels",)
"""Imported while the room is joined (aiortc, without its media side)."""


def import_modules(*modules: str) -> None:
    """Import `modules` in order (run on a thread: they take ~1 s together)."""
    for name in modules:
        importlib.import_module(name)


class Notify(Protocol):
    """Sends a notification to the host; `soon`: after the loop's ready callbacks."""

    def __call__(self, method: str, params: Struct, *, soon: bool = False) -> None: ...


class HostFlow(Protocol):
    """Whether the host keeps up with what we write (sidecar.host.stdio.StdoutWriter)."""

    @property
    def busy(self) -> bool: ...

    def on_drained(self, listener: Callable[[], None]) -> None: ...


class _AlwaysReading:
    busy = False

    def on_drained(self, listener: Callable[[], None]) -> None:
        del listener


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Node:
    """One started peer: its membership, its channels, and what the host was told."""

    def __init__(
        self,
        options: StartPeerParams,
        me: SignalPeer,
        notify: Notify,
        identity: Identity,
        host: HostFlow | None = None,
    ) -> None:
        from sidecar.core.netview import check_interfaces

        try:
            wanted = (
                check_interfaces(options.interfaces) if options.interfaces is not None else None
            )
        except ValueError as exc:
            raise ParamError("interfaces", str(exc)) from None
        self.notify = notify
        self.host: HostFlow = host or _AlwaysReading()
        self.membership = Membership(options, me, self, wanted, identity)
        self.channels: Channels | None = None
        """None until aiortc is imported (see load_channels)."""
        self.replica = Replica(
            me.peer_id,
            links=lambda: self.channels.open_links() if self.channels else [],
            link=lambda peer_id: self.channels.link(peer_id) if self.channels else None,
            notify=self._on_state,
            now_ms=now_ms,
        )
        self.early_signals: list[PeerSignal] = []
        """Offers and answers that came before `channels` existed."""
        self.last_leader: tuple[str | None, int] = (None, 0)
        self.last_membership: list[tuple[str, bool]] = []
        self.stopped = False

    @property
    def options(self) -> StartPeerParams:
        return self.membership.options

    @property
    def me(self) -> SignalPeer:
        return self.membership.me

    async def open(self) -> None:
        from sidecar.net import netifs

        self.membership.spawn(self.load_channels())
        await self.membership.open(netifs.snapshot)

    async def close(self) -> None:
        self.stopped = True
        steps = []
        if self.channels is not None:
            steps.append(self.channels.close())  # says bye on every channel first
        steps.append(self.membership.close())
        await asyncio.gather(*steps, return_exceptions=True)

    async def load_channels(self) -> None:
        try:
            await asyncio.to_thread(import_modules, *CHANNEL_MODULES)
        except Exception:  # a broken install: the room works, no channel ever opens
            log.critical("cannot load the data-channel layer (aiortc)", exc_info=True)
            return
        from sidecar.net.channels import Channels

        if self.stopped:
            return
        o = self.options
        self.channels = Channels(
            me=self.me,
            mesh=o.mesh,
            ice_servers=o.ice_servers,
            ice_transport_policy=o.ice_transport_policy,
            may_contact=self.membership.may_contact,
            interfaces=self.membership.addresses,
            send_signal=self.membership.send_signal,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
            on_message=self._on_message,
            on_idle=self.replica.channel_idle,
            lookup=self.membership.find_member,
            room_key=o.room_key,
            host_busy=lambda: self.host.busy,
            identity=self.membership.identity,
        )
        self.host.on_drained(self._host_drained)
        early, self.early_signals = self.early_signals, []
        for msg in early:
            self.membership.spawn(self.channels.handle_signal(msg))
        self.room_changed()  # the room so far: opens the channels we offer

    # ---------------------------------------------------- membership events

    def room_changed(self) -> None:
        """Notify the host of a new leader or a new room membership."""
        if self.stopped:
            return
        m = self.membership
        leader = (m.confirmed_leader(), m.election.term)
        if leader[0] != self.last_leader[0]:  # also to none: the leader is lost
            self.last_leader = leader
            self.notify(
                "webrtc:leader_changed",
                LeaderChangedParams(
                    leader_id=leader[0], is_leader=m.election.is_leader, term=leader[1]
                ),
            )
        members = m.members()
        if self.channels is not None:
            self.channels.me = self.me
            self.channels.update_room(members, leader[0])
        infos = [self.info(m) for m in members]
        membership = sorted((i.peer_id, i.is_leader) for i in infos)
        if membership != self.last_membership:
            self.last_membership = membership
            self.notify("webrtc:peer_list_changed", PeerListChangedParams(peers=infos))

    def room_key_changed(
        self, room_key: str, reason: RoomKeyReason | None, revoked: Sequence[str]
    ) -> None:
        if self.channels is not None:
            self.channels.room_key = room_key
            self.channels.revoke(revoked)
        if reason is not None and not self.stopped:
            self.notify(
                "webrtc:room_key",
                RoomKeyParams(room_key=room_key, reason=reason, revoked=list(revoked)),
            )

    def pairing_changed(self, update: PairingUpdate) -> None:
        if self.stopped:
            return
        window = update.window
        info = None
        if window is not None:
            info = self.membership.keys.info(window)
        state: PairingState = "open" if info is not None else "closed"
        params = PairingParams(
            state=state, reason=update.reason, window=info, address=update.address
        )
        self.notify("webrtc:pairing", params)

    async def paired(self) -> str:
        """(Pairing) The room key, once a member gave it; raises
        KeysPairingFailed, or Stopped when stop_peer came first."""
        future = self.membership.keys.paired
        assert future is not None
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if self.stopped or future.cancelled():
                raise Stopped() from None
            raise

    def network_changed(self, addresses: list[str], online: bool, lost: list[str]) -> None:
        if self.stopped:
            return
        if self.channels is not None and online:
            self.channels.me = self.me
            self.channels.set_interfaces(addresses, lost)
        self.notify("webrtc:network_changed", NetworkChangedParams(addresses, online))

    def route_changed(self) -> None:
        if self.channels is not None and not self.stopped:
            self.channels.route_changed()

    def signal(self, msg: PeerSignal) -> None:
        if self.channels is not None:
            self.membership.spawn(self.channels.handle_signal(msg))
        elif len(self.early_signals) < MAX_EARLY_SIGNALS:
            self.early_signals.append(msg)

    # ------------------------------------------------------- channel events

    def _host_drained(self) -> None:
        if self.channels is not None and not self.stopped:
            self.channels.host_drained()

    def _on_connected(self, peer: SignalPeer) -> None:
        if not self.stopped:
            self.notify("webrtc:connected", ConnectedParams(peer=self.info(peer)))
            self.replica.channel_open(peer.peer_id)  # before anything else goes on it

    def _on_disconnected(self, peer_id: str, reason: DisconnectReason, unacked: list[str]) -> None:
        self.replica.channel_closed(peer_id)
        if not self.stopped:
            self.notify(
                "webrtc:disconnected",
                DisconnectedParams(peer_id=peer_id, reason=reason, unacknowledged=unacked),
            )

    def _on_state(self, entry: StateEntry) -> None:
        if not self.stopped:
            self.notify("webrtc:state", entry)

    def _on_message(self, peer_id: str, envelope: ControlEnvelope | StateEnvelope) -> None:
        if self.stopped:
            return
        if isinstance(envelope, StateEnvelope):
            self.replica.received_state(peer_id, envelope)
            return
        self.replica.received_control(peer_id, envelope)  # its webrtc:state comes first
        echo = self.options.echo and not envelope.echo  # two echoing peers: no ping-pong
        if echo:  # first, and the notification `soon`: the echo's latency
            # should not include our stdout (aiortc sends the echo from a task).
            link = self.channels.link(peer_id) if self.channels else None
            reply = ControlEnvelope(
                id=str(uuid.uuid4()),
                from_=self.me.peer_id,
                sent_at=now_ms(),
                payload=envelope.payload,
                echo=True,
            )
            try:
                if link is None:
                    raise ConnectionError(peer_id)
                went = link.send(reply)
            except ConnectionError:
                log.warning("echo to %s not sent: channel closed", peer_id)
            else:
                if went is not None:  # queued behind the send window
                    went.add_done_callback(functools.partial(_echo_went, peer_id))
        self.notify(
            "webrtc:message",
            MessageParams(
                from_=peer_id,
                message_id=envelope.id,
                payload=envelope.payload,
                sent_at=envelope.sent_at,
            ),
            soon=echo,
        )

    # ---------------------------------------------------------- what we show

    def connection_state(self, peer_id: str) -> ConnectionState:
        if peer_id == self.me.peer_id:
            return "self"
        return self.channels.state_of(peer_id) if self.channels else "new"

    def info(self, peer: SignalPeer) -> PeerInfo:
        return PeerInfo(
            peer_id=peer.peer_id,
            name=peer.name,
            peer_type=peer.peer_type,
            display_class=peer.display_class,
            started_at=peer.started_at,
            is_leader=peer.peer_id == self.membership.confirmed_leader(),
            connection_state=self.connection_state(peer.peer_id),
            relayed=self.channels.relayed(peer.peer_id) if self.channels else False,
            via=self.channels.via(peer.peer_id) if self.channels else "direct",
        )


def _echo_went(peer_id: str, went: asyncio.Future[None]) -> None:
    if not went.cancelled() and went.exception() is not None:
        log.warning("echo to %s not sent: channel closed", peer_id)
