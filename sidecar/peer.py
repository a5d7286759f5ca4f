"""The peer: the stdio API's view of this device in the room.

`Peer` answers the API's methods (start, stop, send, ping, status) and turns
what happens underneath into notifications. A started peer is a `_Run`: the
room machinery (`sidecar.session.Session`: network, discovery, election,
signaling) and, once aiortc has loaded, the data channels
(`sidecar.channel.Channels`). The run receives the session's events, feeds the
channels, and reports to the host what changed.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import msgspec
from msgspec import Struct

from sidecar.errors import (
    AlreadyStarted,
    NotKeyed,
    NotStarted,
    PairingFailed,
    PayloadTooLarge,
    PeerNotConnected,
    StateFull,
)
from sidecar.identity import Identity
from sidecar.keys import PairingFailed as KeysPairingFailed
from sidecar.messages import (
    MAX_PAYLOAD_BYTES,
    ConnectedParams,
    ConnectionState,
    ControlEnvelope,
    DisconnectedParams,
    DisconnectReason,
    LeaderChangedParams,
    LeaderStatus,
    MessageParams,
    NetworkChangedParams,
    OpenPairingParams,
    PairedParams,
    PairingParams,
    PairingState,
    PairingWindow,
    ParamError,
    PeerInfo,
    PeerListChangedParams,
    PingResult,
    RendezvousStatus,
    RoomKeyParams,
    RoomKeyReason,
    SendControlMessageParams,
    SendResult,
    SignalPeer,
    StartPeerParams,
    StateEntry,
    StateEnvelope,
    payload_size,
)
from sidecar.pairing import Window, new_room_key
from sidecar.replica import Replica
from sidecar.session import PeerSignal, Session, Stopped
from sidecar.state import StateError, key_problem

if TYPE_CHECKING:
    # The network stack (aiohttp, zeroconf, aiortc with PyAV) is imported when a
    # peer starts, not at process start: the host's first request is answered
    # sooner (a frozen sidecar must answer in under 0.5 s). The room (aiohttp,
    # zeroconf: ~0.6 s to import here) is joined without waiting for aiortc
    # (~0.4 s more), which is only needed once a channel opens.
    from sidecar.channel import Channels
    from sidecar.signaling.registry import PairingUpdate

log = logging.getLogger(__name__)

MAX_EARLY_SIGNALS = 64
"""Offers and answers kept while aiortc loads (a few per peer of the room)."""

ROOM_MODULES = (
    "sidecar.signaling.server",
    "sidecar.signaling.client",
    "sidecar.discovery",
    "sidecar.netifs",
)
"""Imported by start_peer before it joins the room (aiohttp, zeroconf)."""
CHANNEL_MODULES = ("sidecar.channel",)
"""Imported while the room is joined (aiortc with PyAV)."""


def import_modules(*modules: str) -> None:
    """Import `modules` in order (run on a thread: they take ~1 s together)."""
    for name in modules:
        importlib.import_module(name)


class Notify(Protocol):
    """Sends a notification to the host; `soon`: after the loop's ready callbacks."""

    def __call__(self, method: str, params: Struct, *, soon: bool = False) -> None: ...


class HostFlow(Protocol):
    """Whether the host keeps up with what we write (sidecar.stdio.StdoutWriter)."""

    @property
    def busy(self) -> bool: ...

    def on_drained(self, listener: Callable[[], None]) -> None: ...


class _AlwaysReading:
    busy = False

    def on_drained(self, listener: Callable[[], None]) -> None:
        del listener


PING_TIMEOUT_S = 5.0
SEND_WAIT_S = 10.0
"""Longest a send waits for a peer's send window: beyond the channel's own
liveness rule (3 missed pings at 2 s), so only a peer that answers pings but
never acknowledges messages reaches it."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Run:
    """One started peer: its session, its channels, and what the host was told."""

    def __init__(
        self,
        options: StartPeerParams,
        me: SignalPeer,
        notify: Notify,
        identity: Identity,
        host: HostFlow | None = None,
    ) -> None:
        from sidecar.netview import check_interfaces

        try:
            wanted = (
                check_interfaces(options.interfaces) if options.interfaces is not None else None
            )
        except ValueError as exc:
            raise ParamError("interfaces", str(exc)) from None
        self.notify = notify
        self.host: HostFlow = host or _AlwaysReading()
        self.session = Session(options, me, self, wanted, identity)
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
        return self.session.options

    @property
    def me(self) -> SignalPeer:
        return self.session.me

    async def open(self) -> None:
        from sidecar import netifs

        self.session.spawn(self.load_channels())
        await self.session.open(netifs.snapshot)

    async def close(self) -> None:
        self.stopped = True
        steps = []
        if self.channels is not None:
            steps.append(self.channels.close())  # says bye on every channel first
        steps.append(self.session.close())
        await asyncio.gather(*steps, return_exceptions=True)

    async def load_channels(self) -> None:
        try:
            await asyncio.to_thread(import_modules, *CHANNEL_MODULES)
        except Exception:  # a broken install: the room works, no channel ever opens
            log.critical("cannot load the data-channel layer (aiortc)", exc_info=True)
            return
        from sidecar.channel import Channels

        if self.stopped:
            return
        o = self.options
        self.channels = Channels(
            me=self.me,
            mesh=o.mesh,
            ice_servers=o.ice_servers,
            ice_transport_policy=o.ice_transport_policy,
            may_contact=self.session.may_contact,
            interfaces=self.session.addresses,
            send_signal=self.session.send_signal,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
            on_message=self._on_message,
            on_idle=self.replica.channel_idle,
            lookup=self.session.find_member,
            room_key=o.room_key,
            host_busy=lambda: self.host.busy,
        )
        self.host.on_drained(self._host_drained)
        early, self.early_signals = self.early_signals, []
        for msg in early:
            self.session.spawn(self.channels.handle_signal(msg))
        self.room_changed()  # the room so far: opens the channels we offer

    # ------------------------------------------------------- session events

    def room_changed(self) -> None:
        """Notify the host of a new leader or a new room membership."""
        if self.stopped:
            return
        s = self.session
        leader = (s.confirmed_leader(), s.election.term)
        if leader[0] != self.last_leader[0]:  # also to none: the leader is lost
            self.last_leader = leader
            self.notify(
                "webrtc:leader_changed",
                LeaderChangedParams(
                    leader_id=leader[0], is_leader=s.election.is_leader, term=leader[1]
                ),
            )
        members = s.members()
        if self.channels is not None:
            self.channels.me = self.me
            self.channels.update_room(members)
        infos = [self.info(m) for m in members]
        membership = sorted((i.peer_id, i.is_leader) for i in infos)
        if membership != self.last_membership:
            self.last_membership = membership
            self.notify("webrtc:peer_list_changed", PeerListChangedParams(peers=infos))

    def room_key_changed(self, room_key: str, reason: RoomKeyReason | None) -> None:
        if self.channels is not None:
            self.channels.room_key = room_key
        if reason is not None and not self.stopped:
            self.notify("webrtc:room_key", RoomKeyParams(room_key=room_key, reason=reason))

    def pairing_changed(self, update: PairingUpdate) -> None:
        if self.stopped:
            return
        window = update.window
        info = None
        if window is not None:
            info = _window_info(window, self.session.keys.wall_ms(window.expires_at))
        state: PairingState = "open" if info is not None else "closed"
        self.notify("webrtc:pairing", PairingParams(state=state, reason=update.reason, window=info))

    async def paired(self) -> str:
        """(Pairing) The room key, once a member gave it; raises
        KeysPairingFailed, or Stopped when stop_peer came first."""
        future = self.session.keys.paired
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
            self.session.spawn(self.channels.handle_signal(msg))
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
            is_leader=peer.peer_id == self.session.confirmed_leader(),
            connection_state=self.connection_state(peer.peer_id),
            relayed=self.channels.relayed(peer.peer_id) if self.channels else False,
        )


class Peer:
    def __init__(self, notify: Notify, host: HostFlow | None = None) -> None:
        self._notify = notify
        self._host = host
        self._run: _Run | None = None

    # ----------------------------------------------------------------- the API

    @property
    def started(self) -> bool:
        return self._run is not None

    def _started(self) -> _Run:
        if self._run is None:
            raise NotStarted()
        return self._run

    async def start(self, options: StartPeerParams) -> PeerInfo:
        if self._run is not None:
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
        run = _Run(options, me, self._notify, identity, self._host)
        self._run = run
        # Imported off the loop: requests (get_leader_status…) are still answered.
        await asyncio.to_thread(import_modules, *ROOM_MODULES)
        try:
            if run.stopped:
                raise Stopped()
            await run.open()
            if created is not None:
                self._notify("webrtc:room_key", RoomKeyParams(room_key=created, reason="created"))
            if options.pairing_code is not None:
                key = await run.paired()
                self._notify("webrtc:paired", PairedParams(room=options.room, room_key=key))
        except BaseException as exc:
            if self._run is run:
                self._run = None
            await run.close()
            if isinstance(exc, Stopped):
                raise NotStarted("stop_peer was called before start_peer completed") from None
            if isinstance(exc, KeysPairingFailed):
                raise PairingFailed(str(exc)) from None
            raise
        log.info(
            "peer started",
            extra={"peer_id": me.peer_id, "room": options.room, "port": run.me.port},
        )
        return run.info(run.me)

    # ------------------------------------------------------------ keyed rooms

    def open_pairing(self, params: OpenPairingParams) -> PairingWindow:
        run = self._started()
        try:
            window, expires_ms = run.session.keys.open_window(params.ttl_s, params.uses)
        except RuntimeError as exc:
            raise NotKeyed(str(exc)) from None
        return _window_info(window, expires_ms)

    def close_pairing(self) -> None:
        self._started().session.keys.close_window()

    def rotate_room_key(self) -> None:
        run = self._started()
        if run.options.room_key is None:
            raise NotKeyed("an open room has no key to rotate")
        try:
            run.session.keys.rotate()
        except RuntimeError as exc:
            raise PeerNotConnected([], f" ({exc})") from None

    async def stop(self) -> None:
        """Leave the network; idempotent, so EOF after stop_peer is harmless."""
        run, self._run = self._run, None
        if run is None:
            return
        await run.close()
        log.info("peer stopped", extra={"peer_id": run.me.peer_id})

    async def send(self, params: SendControlMessageParams) -> SendResult:
        # No await before every channel has sent or queued the message: requests
        # read in order go out in order. The answer waits for the queued ones,
        # which is the backpressure a host flooding a slow peer feels.
        run = self._started()
        size = payload_size(params.payload)
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(size, MAX_PAYLOAD_BYTES)
        targets = _targets(run.channels, params)
        envelope = ControlEnvelope(
            id=str(uuid.uuid4()), from_=run.me.peer_id, sent_at=now_ms(), payload=params.payload
        )
        if params.retain is not None:  # the map changes first, whoever gets the message
            if why := key_problem(params.retain):
                raise ParamError("retain", why)
            try:
                envelope.retain = run.replica.write(params.retain, params.payload, size)
            except StateError as exc:
                raise StateFull(str(exc)) from None
        sent, queued, failed = _deliver(run.channels, targets, envelope)
        if params.retain is not None:
            run.replica.spread(params.retain, skip={p.peer_id for p in targets})
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
        return self._run.replica.current() if self._run is not None else []

    def connected_peers(self) -> list[PeerInfo]:
        run = self._run
        if run is None or run.channels is None:
            return []
        return [run.info(peer) for peer in run.channels.connected()]

    def leader_status(self) -> LeaderStatus:
        run = self._run
        if run is None:
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
        s = run.session
        leader_id = s.confirmed_leader()
        leader = s.find_member(leader_id) if leader_id else None
        url = None
        if leader is not None and leader.addresses:
            url = f"ws://{leader.addresses[0]}:{leader.port}"
        return LeaderStatus(
            state=s.state,
            leader_id=leader_id,
            is_leader=s.election.is_leader,
            term=s.election.term,
            leader=run.info(leader) if leader is not None else None,
            signaling_url=url,
            addresses=s.addresses,
            keyed=s.options.room_key is not None,
            pairing=(
                _window_info(s.server.pairing, s.keys.wall_ms(s.server.pairing.expires_at))
                if s.server is not None and s.server.pairing is not None
                else None
            ),
            found_by=s.found_by,
            room_addresses=s.room_addresses,
            rendezvous=[
                RendezvousStatus(
                    target=st.target.text,
                    state=st.state,
                    addresses=list(st.addresses),
                    error=st.error,
                )
                for st in s.rendezvous.statuses.values()
            ],
        )

    async def ping(self, peer_id: str) -> PingResult:
        run = self._started()
        link = run.channels.link(peer_id) if run.channels else None
        if link is None:
            raise PeerNotConnected([peer_id])
        try:
            return PingResult(rtt_ms=round(await link.ping(PING_TIMEOUT_S), 3))
        except (TimeoutError, ConnectionError):
            detail = f" (no answer to a ping within {PING_TIMEOUT_S:.0f} s)"
            raise PeerNotConnected([peer_id], detail) from None


def _targets(channels: Channels | None, params: SendControlMessageParams) -> list[SignalPeer]:
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
    channels: Channels | None, targets: list[SignalPeer], envelope: ControlEnvelope
) -> tuple[list[str], dict[str, asyncio.Future[None]], list[str]]:
    """Hand the message to each target's channel, without awaiting anything.

    Returns who it went to, who queued it behind a full send window (with
    the future of its going), and whose channel had closed meanwhile."""
    sent: list[str] = []
    queued: dict[str, asyncio.Future[None]] = {}
    failed: list[str] = []
    for peer in targets:
        link = channels.link(peer.peer_id) if channels else None
        try:
            if link is None:
                raise ConnectionError(peer.peer_id)
            went = link.send(envelope)
        except ConnectionError:
            failed.append(peer.peer_id)
            continue
        if went is None:
            sent.append(peer.peer_id)
        else:
            queued[peer.peer_id] = went
    return sent, queued, failed


def _echo_went(peer_id: str, went: asyncio.Future[None]) -> None:
    if not went.cancelled() and went.exception() is not None:
        log.warning("echo to %s not sent: channel closed", peer_id)


def _window_info(window: Window, expires_ms: int) -> PairingWindow:
    return PairingWindow(
        code=window.code,
        expires_at=expires_ms,
        tries_left=max(window.tries_left, 0),
        uses_left=max(window.uses_left, 0),
    )
