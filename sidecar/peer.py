"""The peer: owns this device's state and ties the adapters together.

Discovery (mDNS records), the signaling server and client (WebSocket) and the
clock feed the election core; its decisions are carried out here, and every
change the host cares about goes out as a notification. Data channels arrive
with issue 4: until then no peer is ever `connected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from msgspec import Struct, structs

from sidecar.election import BecomeLeader, Decision, Election, Follow, Retermed
from sidecar.errors import AlreadyStarted, NotStarted, PayloadTooLarge, PeerNotConnected
from sidecar.messages import (
    MAX_PAYLOAD_BYTES,
    Answer,
    Candidate,
    ConnectedParams,
    ConnectionState,
    ControlEnvelope,
    DisconnectedParams,
    DisconnectReason,
    LeaderChangedParams,
    LeaderState,
    LeaderStatus,
    MessageParams,
    Offer,
    ParamError,
    PeerInfo,
    PeerList,
    PeerListChangedParams,
    PeerRecord,
    PingResult,
    Role,
    SendControlMessageParams,
    SendResult,
    SignalMessage,
    SignalPeer,
    StartPeerParams,
    payload_size,
)

if TYPE_CHECKING:
    # The network stack (aiohttp, zeroconf, aiortc with PyAV) is imported when a
    # peer starts, not at process start: the host's first request is answered
    # sooner (a frozen sidecar must answer in under 0.5 s). The room (aiohttp,
    # zeroconf: ~0.6 s to import here) is joined without waiting for aiortc
    # (~0.4 s more), which is only needed once a channel opens.
    from sidecar.channel import Channels, PeerSignal
    from sidecar.discovery import Discovery
    from sidecar.signaling import SignalingClient, SignalingServer

log = logging.getLogger(__name__)

MAX_EARLY_SIGNALS = 64
"""Offers and answers kept while aiortc loads (a few per peer of the room)."""


ROOM_MODULES = ("sidecar.signaling", "sidecar.discovery")
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


LEADER_ANNOUNCE_S = 1.0
"""The leader re-announces its record this often. One small multicast packet
per room per second bounds how long the halves of a healed partition take to
find each other, however far the mDNS query backoff has grown meanwhile."""

JOIN_TIMEOUT_S = 1.5
"""One attempt to register at a leader (LAN round trips are milliseconds)."""

SUCCESSOR_WAIT_S = 3.5
"""How long to keep trying a successor that may not have noticed the loss yet:
followers' heartbeat phases differ by up to one 2 s interval."""

SUCCESSOR_RETRY_S = 0.1

PING_TIMEOUT_S = 5.0
SEND_WAIT_S = 10.0
"""Longest a send waits for a peer's send window: beyond the channel's own
liveness rule (3 missed pings at 2 s), so only a peer that answers pings but
never acknowledges messages reaches it."""

STOP_S = 1.5
"""Bound on leaving the network (the process must be gone within 3 s)."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Session:
    """Everything that exists between start_peer and stop_peer."""

    def __init__(self, options: StartPeerParams, me: SignalPeer) -> None:
        self.options = options
        self.me = me
        self.election = Election(me)
        self.server: SignalingServer | None = None
        self.discovery: Discovery | None = None
        self.client: SignalingClient | None = None
        self.client_leader: str | None = None
        self.channels: Channels | None = None
        """None until aiortc is imported (see _load_channels)."""
        self.early_signals: list[PeerSignal] = []
        """Offers and answers that came before `channels` existed."""
        self.tasks: set[asyncio.Task[Any]] = set()
        self.join_task: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()
        self.publish_needed = asyncio.Event()
        self.leader_members: list[SignalPeer] = []  # our registry while we lead
        self.last_leader: tuple[str | None, int] = (None, 0)
        self.last_membership: list[tuple[str, bool]] = []


class Peer:
    def __init__(self, notify: Notify) -> None:
        self._notify = notify
        self._s: _Session | None = None
        self._loop_time: Callable[[], float] = time.monotonic

    # ----------------------------------------------------------------- the API

    @property
    def started(self) -> bool:
        return self._s is not None

    def _session(self) -> _Session:
        if self._s is None:
            raise NotStarted()
        return self._s

    async def start(self, options: StartPeerParams) -> PeerInfo:
        if self._s is not None:
            raise AlreadyStarted()
        interfaces = self._interfaces(options)
        me = SignalPeer(
            peer_id=str(uuid.uuid4()),
            name=options.name,
            peer_type=options.peer_type,
            display_class=options.display_class,
            started_at=now_ms(),
            addresses=interfaces,
            port=0,
        )
        session = _Session(options, me)
        self._s = session
        self._loop_time = asyncio.get_running_loop().time
        try:
            await self._open(session, interfaces)
        except BaseException:
            self._s = None
            await self._close(session)
            raise
        log.info(
            "peer started",
            extra={"peer_id": me.peer_id, "room": options.room, "port": session.me.port},
        )
        return self._info(session, session.me)

    async def stop(self) -> None:
        """Leave the network; idempotent, so EOF after stop_peer is harmless."""
        session, self._s = self._s, None
        if session is None:
            return
        await self._close(session)
        log.info("peer stopped", extra={"peer_id": session.me.peer_id})

    async def send(self, params: SendControlMessageParams) -> SendResult:
        # No await before every channel has sent or queued the message: requests
        # read in order go out in order. The answer waits for the queued ones,
        # which is the backpressure a host flooding a slow peer feels.
        s = self._session()
        size = payload_size(params.payload)
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(size, MAX_PAYLOAD_BYTES)
        targets = self._targets(s, params)
        envelope = ControlEnvelope(
            id=str(uuid.uuid4()), from_=s.me.peer_id, sent_at=now_ms(), payload=params.payload
        )
        sent, queued, failed = self._deliver(s, targets, envelope)
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

    @staticmethod
    def _targets(s: _Session, params: SendControlMessageParams) -> list[SignalPeer]:
        """Who a message goes to; every peer named must have an open channel."""
        connected = {p.peer_id: p for p in s.channels.connected()} if s.channels else {}
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

    @staticmethod
    def _deliver(
        s: _Session, targets: list[SignalPeer], envelope: ControlEnvelope
    ) -> tuple[list[str], dict[str, asyncio.Future[None]], list[str]]:
        """Hand the message to each target's channel, without awaiting anything.

        Returns who it went to, who queued it behind a full send window (with
        the future of its going), and whose channel had closed meanwhile."""
        sent: list[str] = []
        queued: dict[str, asyncio.Future[None]] = {}
        failed: list[str] = []
        for peer in targets:
            link = s.channels.link(peer.peer_id) if s.channels else None
            try:
                if link is None:
                    raise ConnectionError(peer.peer_id)
                went = link.send_control(envelope)
            except ConnectionError:
                failed.append(peer.peer_id)
                continue
            if went is None:
                sent.append(peer.peer_id)
            else:
                queued[peer.peer_id] = went
        return sent, queued, failed

    def connected_peers(self) -> list[PeerInfo]:
        s = self._s
        if s is None or s.channels is None:
            return []
        return [self._info(s, peer) for peer in s.channels.connected()]

    def leader_status(self) -> LeaderStatus:
        s = self._s
        if s is None:
            return LeaderStatus(
                state="idle",
                leader_id=None,
                is_leader=False,
                term=0,
                leader=None,
                signaling_url=None,
            )
        e = s.election
        state: LeaderState = e.state
        if state == "follower" and not e.joined:
            state = "electing"  # chosen, not yet registered
        leader_id = self._confirmed_leader(s)
        leader = self._find_member(s, leader_id) if leader_id else None
        url = None
        if leader is not None and leader.addresses:
            url = f"ws://{leader.addresses[0]}:{leader.port}"
        return LeaderStatus(
            state=state,
            leader_id=leader_id,
            is_leader=e.is_leader,
            term=e.term,
            leader=self._info(s, leader) if leader is not None else None,
            signaling_url=url,
        )

    async def ping(self, peer_id: str) -> PingResult:
        s = self._session()
        link = s.channels.link(peer_id) if s.channels else None
        if link is None:
            raise PeerNotConnected([peer_id])
        try:
            return PingResult(rtt_ms=round(await link.ping(PING_TIMEOUT_S), 3))
        except (TimeoutError, ConnectionError):
            detail = f" (no answer to a ping within {PING_TIMEOUT_S:.0f} s)"
            raise PeerNotConnected([peer_id], detail) from None

    # -------------------------------------------------------------- lifecycle

    @staticmethod
    def _interfaces(options: StartPeerParams) -> list[str]:
        from sidecar import netifs

        if options.interfaces is not None:
            try:
                return netifs.validate_interfaces(options.interfaces)
            except ValueError as exc:
                raise ParamError("interfaces", str(exc)) from None
        found = netifs.default_ipv4_addresses()
        if not found:
            raise ParamError("interfaces", "no non-loopback IPv4 interface is up")
        return found

    async def _open(self, s: _Session, interfaces: list[str]) -> None:
        # Imported off the loop: requests (get_leader_status…) are still answered.
        await asyncio.to_thread(import_modules, *ROOM_MODULES)
        from sidecar.discovery import Discovery
        from sidecar.signaling import SignalingServer

        o = s.options
        s.server = SignalingServer(
            me=s.me,
            room=o.room,
            room_key=o.room_key,
            on_deliver=lambda msg: self._on_signal(s, msg),
            on_members_changed=lambda members: self._on_members(s, members),
        )
        port = await s.server.bind(interfaces, o.signaling_port)
        s.me = structs.replace(s.me, port=port)
        s.election.me = s.me
        s.discovery = Discovery(
            room=o.room,
            interfaces=interfaces,
            on_seen=lambda record: self._feed(s, s.election.record_seen(record, self._now())),
            on_gone=lambda peer_id: self._on_gone(s, peer_id),
            room_key=o.room_key,
        )
        await s.discovery.start(self._record(s))
        self._spawn(s, self._clock(s))
        self._spawn(s, self._announcer(s))
        self._spawn(s, self._publisher(s))
        self._spawn(s, self._load_channels(s, interfaces))
        self._feed(s, s.election.start(self._now()))

    async def _load_channels(self, s: _Session, interfaces: list[str]) -> None:
        try:
            await asyncio.to_thread(import_modules, *CHANNEL_MODULES)
        except Exception:  # a broken install: the room works, no channel ever opens
            log.critical("cannot load the data-channel layer (aiortc)", exc_info=True)
            return
        from sidecar.channel import Channels

        o = s.options
        s.channels = Channels(
            me=s.me,
            mesh=o.mesh,
            ice_servers=o.ice_servers,
            interfaces=interfaces,
            send_signal=lambda msg: self._send_signal(s, msg),
            on_connected=lambda peer: self._on_connected(s, peer),
            on_disconnected=lambda peer_id, reason: self._on_disconnected(s, peer_id, reason),
            on_message=lambda peer_id, envelope: self._on_message(s, peer_id, envelope),
            lookup=lambda peer_id: self._find_member(s, peer_id),
        )
        early, s.early_signals = s.early_signals, []
        for msg in early:
            self._spawn(s, s.channels.handle_signal(msg))
        self._report(s)  # the room so far: opens the channels we offer

    async def _close(self, s: _Session) -> None:
        for task in list(s.tasks):
            task.cancel()
        steps: list[Coroutine[Any, Any, None]] = []
        if s.channels is not None:
            steps.append(s.channels.close())  # says bye on every channel first
        if s.client is not None:
            steps.append(s.client.close(leave=True))
        if s.server is not None:
            steps.append(s.server.close())
        if s.discovery is not None:
            steps.append(s.discovery.close())  # goodbye packets
        # In parallel: the goodbye and the leave message go out together.
        results = await asyncio.wait_for(asyncio.gather(*steps, return_exceptions=True), STOP_S)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("leaving the network: a step failed: %r", result)
        s.election.stop()

    def _spawn(self, s: _Session, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        s.tasks.add(task)
        task.add_done_callback(s.tasks.discard)
        task.add_done_callback(_log_crash)
        return task

    def _now(self) -> float:
        return self._loop_time()

    # ------------------------------------------------------ background tasks

    async def _clock(self, s: _Session) -> None:
        """Ticks the election at its deadlines (woken early by any decision)."""
        while True:
            deadline = s.election.next_deadline()
            s.wake.clear()
            if deadline is None:
                await s.wake.wait()
                continue
            delay = deadline - self._now()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.wake.wait(), delay)
                continue
            self._feed(s, s.election.tick(self._now()))

    async def _announcer(self, s: _Session) -> None:
        while True:
            await asyncio.sleep(LEADER_ANNOUNCE_S)
            if s.election.is_leader and s.discovery is not None:
                s.discovery.announce()

    async def _publisher(self, s: _Session) -> None:
        """Publishes our record when it changed, coalescing rapid changes."""
        published: PeerRecord | None = None
        while True:
            await s.publish_needed.wait()
            s.publish_needed.clear()
            record = self._record(s)
            if record != published and s.discovery is not None:
                await s.discovery.update(record)
                published = record

    # --------------------------------------------------------------- decisions

    def _feed(self, s: _Session, decisions: list[Decision]) -> None:
        """Carry out the election's decisions, then tell the host what changed."""
        if self._s is not s:
            return  # a late event from a stopped session
        for decision in decisions:
            log.info("election: %s", decision, extra={"term": s.election.term})
            if isinstance(decision, BecomeLeader):
                self._lead(s, decision.term)
            elif isinstance(decision, Follow):
                self._follow(s, decision)
            elif isinstance(decision, Retermed) and s.server is not None:
                s.server.set_term(decision.term)
        s.wake.set()
        s.publish_needed.set()
        self._report(s)

    def _lead(self, s: _Session, term: int) -> None:
        self._drop_client(s)
        assert s.server is not None
        s.server.start_leading(term)
        s.leader_members = s.server.members()

    def _follow(self, s: _Session, decision: Follow) -> None:
        if s.server is not None:
            if s.server.leading:
                # Our followers get a peer list naming the new leader first.
                target = self._find_member(s, decision.leader_id)
                s.server.stop_leading(redirect=target, term=decision.term)
                s.leader_members = []
            s.server.set_leader_hint(decision.leader_id)
        self._drop_client(s)
        s.join_task = self._spawn(s, self._join(s, decision))

    def _drop_client(self, s: _Session) -> None:
        if s.join_task is not None:
            s.join_task.cancel()
            s.join_task = None
        client, s.client, s.client_leader = s.client, None, None
        if client is not None:
            self._spawn(s, client.close(leave=True))

    async def _join(self, s: _Session, decision: Follow) -> None:
        from sidecar.signaling import JoinFailed, SignalingClient

        deadline = self._now() + (SUCCESSOR_WAIT_S if decision.successor else JOIN_TIMEOUT_S)
        urls = [f"ws://{address}:{decision.port}/signal" for address in decision.addresses]
        last_error = "no address"
        while True:
            for url in urls:
                client = SignalingClient(
                    on_peer_list=lambda msg: self._on_peer_list(s, msg),
                    on_signal=lambda msg: self._on_signal(s, msg),
                    on_lost=functools.partial(self._on_lost, s, decision.leader_id),
                )
                remaining = max(deadline - self._now(), 0.2)
                try:
                    registered = await client.join(
                        url, s.me, s.options.room, s.options.room_key, timeout=remaining
                    )
                except JoinFailed as exc:
                    last_error = f"{exc.code}: {exc.reason}"
                    with contextlib.suppress(Exception):
                        await client.close(leave=False)
                    if exc.code in ("forbidden", "unproven_leader", "wrong_room"):
                        deadline = 0.0  # retrying cannot help
                    continue
                s.client, s.client_leader = client, decision.leader_id
                s.join_task = None
                self._feed(
                    s,
                    s.election.joined_leader(
                        registered.leader_id, registered.term, registered.peers, self._now()
                    ),
                )
                return
            if self._now() >= deadline:
                break
            await asyncio.sleep(SUCCESSOR_RETRY_S)
        log.warning("could not join leader %s: %s", decision.leader_id, last_error)
        s.join_task = None
        self._feed(s, s.election.join_failed(decision.leader_id, self._now()))

    # ----------------------------------------------------------- adapter events

    def _on_lost(self, s: _Session, leader_id: str, reason: str) -> None:
        log.warning("lost leader %s: %s", leader_id, reason)
        if s.client_leader == leader_id:
            s.client, s.client_leader = None, None
        self._feed(s, s.election.leader_lost(leader_id, self._now()))

    def _on_peer_list(self, s: _Session, msg: PeerList) -> None:
        self._feed(s, s.election.peer_list(msg.leader_id, msg.term, msg.peers, self._now()))

    def _on_members(self, s: _Session, members: list[SignalPeer]) -> None:
        s.leader_members = members
        self._report(s)

    def _on_gone(self, s: _Session, peer_id: str) -> None:
        if s.channels is not None:
            s.channels.peer_left(peer_id)
        self._feed(s, s.election.record_gone(peer_id, self._now()))

    def _on_signal(self, s: _Session, msg: SignalMessage) -> None:
        """An offer, answer or candidate for us, from the leader or its server."""
        if not isinstance(msg, Offer | Answer | Candidate):
            return
        if s.channels is not None:
            self._spawn(s, s.channels.handle_signal(msg))
        elif len(s.early_signals) < MAX_EARLY_SIGNALS:
            s.early_signals.append(msg)

    def _send_signal(self, s: _Session, msg: PeerSignal) -> bool:
        """Route an offer or answer through the current leader; False: no route now."""
        if s.server is not None and s.server.leading:
            try:
                s.server.send_local(msg)
            except (KeyError, ValueError):
                return False
            return True
        client = s.client
        if client is None or not client.connected:
            return False
        self._spawn(s, client.send(msg))
        return True

    def _on_connected(self, s: _Session, peer: SignalPeer) -> None:
        if self._s is s:
            self._notify("webrtc:connected", ConnectedParams(peer=self._info(s, peer)))

    def _on_disconnected(self, s: _Session, peer_id: str, reason: DisconnectReason) -> None:
        if self._s is s:
            self._notify("webrtc:disconnected", DisconnectedParams(peer_id=peer_id, reason=reason))

    def _on_message(self, s: _Session, peer_id: str, envelope: ControlEnvelope) -> None:
        if self._s is not s:
            return
        if s.options.echo:  # first, and the notification `soon`: the echo's latency
            # should not include our stdout (aiortc sends the echo from a task).
            link = s.channels.link(peer_id) if s.channels else None
            reply = ControlEnvelope(
                id=str(uuid.uuid4()), from_=s.me.peer_id, sent_at=now_ms(), payload=envelope.payload
            )
            try:
                if link is None:
                    raise ConnectionError(peer_id)
                went = link.send_control(reply)
            except ConnectionError:
                log.warning("echo to %s not sent: channel closed", peer_id)
            else:
                if went is not None:  # queued behind the send window
                    went.add_done_callback(functools.partial(_echo_went, peer_id))
        self._notify(
            "webrtc:message",
            MessageParams(
                from_=peer_id,
                message_id=envelope.id,
                payload=envelope.payload,
                sent_at=envelope.sent_at,
            ),
            soon=s.options.echo,
        )

    # ----------------------------------------------------------- what we show

    def _record(self, s: _Session) -> PeerRecord:
        e = s.election
        role: Role = "candidate"
        if e.is_leader:
            role = "leader"
        elif e.state == "follower" and e.joined:
            role = "follower"
        return PeerRecord.of(
            s.me,
            role=role,
            leader_id=e.leader_id if role != "candidate" else None,
            term=e.term,
            room=s.options.room,
        )

    @staticmethod
    def _confirmed_leader(s: _Session) -> str | None:
        e = s.election
        return e.leader_id if e.is_leader or (e.state == "follower" and e.joined) else None

    def _members(self, s: _Session) -> list[SignalPeer]:
        e = s.election
        if e.is_leader:
            return s.leader_members or [s.me]
        if e.state == "follower" and e.joined and e.members():
            return e.members()
        return [s.me]

    def _find_member(self, s: _Session, peer_id: str | None) -> SignalPeer | None:
        if peer_id is None:
            return None
        if peer_id == s.me.peer_id:
            return s.me
        for member in self._members(s):
            if member.peer_id == peer_id:
                return member
        record = s.election.record(peer_id)
        return record.as_signal_peer() if record is not None else None

    def _connection_state(self, s: _Session, peer_id: str) -> ConnectionState:
        if peer_id == s.me.peer_id:
            return "self"
        return s.channels.state_of(peer_id) if s.channels else "new"

    def _info(self, s: _Session, peer: SignalPeer) -> PeerInfo:
        return PeerInfo(
            peer_id=peer.peer_id,
            name=peer.name,
            peer_type=peer.peer_type,
            display_class=peer.display_class,
            started_at=peer.started_at,
            is_leader=peer.peer_id == self._confirmed_leader(s),
            connection_state=self._connection_state(s, peer.peer_id),
        )

    def _report(self, s: _Session) -> None:
        """Notify the host of a new leader or a new room membership."""
        leader = (self._confirmed_leader(s), s.election.term)
        if leader[0] is not None and leader[0] != s.last_leader[0]:
            s.last_leader = leader
            self._notify(
                "webrtc:leader_changed",
                LeaderChangedParams(
                    leader_id=leader[0], is_leader=s.election.is_leader, term=leader[1]
                ),
            )
        members = self._members(s)
        if s.channels is not None:
            s.channels.update_room(members)
        infos = [self._info(s, m) for m in members]
        membership = sorted((i.peer_id, i.is_leader) for i in infos)
        if membership != s.last_membership:
            s.last_membership = membership
            self._notify("webrtc:peer_list_changed", PeerListChangedParams(peers=infos))


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background task failed", exc_info=exc)


def _echo_went(peer_id: str, went: asyncio.Future[None]) -> None:
    if not went.cancelled() and went.exception() is not None:
        log.warning("echo to %s not sent: channel closed", peer_id)
