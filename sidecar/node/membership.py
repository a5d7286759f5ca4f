"""This device's membership of the room, from start_peer to stop_peer.

A `Membership` owns this peer's network view (sidecar.core.netview), the election
(sidecar.core.election) and the adapters that do their I/O: the mDNS discovery,
the signaling server every peer binds, and the client that joins the leader.
It carries out the election's decisions and follows the network: it binds to
the addresses there are when they come, rebinds when they change, and pauses
the election while there are none.

What the host should hear goes up through `MembershipEvents` (sidecar.node.node
turns it into notifications and feeds the data channels); the membership never
touches the data channels itself. Its room key is `RoomKeys`' (sidecar.node.keys),
which reaches the membership only through the `KeyPorts` it implements.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from sidecar.contract import (
    Answer,
    Candidate,
    FoundBy,
    LeaderState,
    LeaderStatus,
    Offer,
    PeerInfo,
    PeerList,
    PeerRecord,
    PeerSignal,
    Rekey,
    Relay,
    RendezvousStatus,
    Role,
    SignalMessage,
    SignalPeer,
    StartPeerParams,
    Target,
)
from sidecar.core import netview
from sidecar.core.election import BecomeLeader, Decision, Election, Follow, Retermed
from sidecar.core.identity import Identity
from sidecar.core.pairing import Secret, Window
from sidecar.core.rendezvous import Rendezvous, parse_targets
from sidecar.node.keys import KeyEvents, RoomKeys
from sidecar.node.presence import Presence

if TYPE_CHECKING:
    from sidecar.net.signaling.client import SignalingClient
    from sidecar.net.signaling.query import Asker
    from sidecar.net.signaling.server import SignalingServer

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 1.5
"""One attempt to register at a leader (LAN round trips are milliseconds)."""

SUCCESSOR_WAIT_S = 3.5
"""How long to keep trying a successor that may not have noticed the loss yet:
followers' heartbeat phases differ by up to one 2 s interval."""

SUCCESSOR_RETRY_S = 0.1

_FINAL_JOIN_CODES = {"forbidden", "unproven_leader", "wrong_room", "id_conflict", "revoked"}
"""A join refused for one of these is not tried again at that leader."""

ROTATE_TIMEOUT_S = 5.0
"""A follower's rotation: how long the leader has to say who took the key."""

MAX_SOURCES = 128
"""Peers whose discovery path (mDNS, rendezvous) is remembered."""
MAX_ROOM_ADDRESSES = 8

STOP_S = 1.5
"""Bound on leaving the network (the process must be gone within 3 s)."""


class Stopped(Exception):
    """The membership was closed (stop_peer) while it was starting."""


class MembershipEvents(KeyEvents, Protocol):
    def room_changed(self) -> None:
        """The leader, the term or the membership may have changed."""

    def network_changed(self, addresses: list[str], online: bool, lost: list[str]) -> None:
        """The addresses in use changed (`lost`: no longer in use), or went
        offline, or came back."""

    def route_changed(self) -> None:
        """There is a new signaling route (joined a leader, or leading)."""

    def signal(self, msg: PeerSignal) -> None:
        """An offer, answer or candidate addressed to us."""


class Membership:
    def __init__(
        self,
        options: StartPeerParams,
        me: SignalPeer,
        events: MembershipEvents,
        wanted: tuple[str, ...] | None,
        identity: Identity,
    ) -> None:
        self.options = options
        self.me = me
        self.identity = identity
        self.events = events
        self.election = Election(me)
        self.presence = Presence(
            room=options.room,
            wanted=wanted,
            signaling_port=options.signaling_port,
            events=self,
            spawn=self._spawn,
        )
        self.presence.room_key = options.room_key
        self.server: SignalingServer | None = None
        self.client: SignalingClient | None = None
        self.client_leader: str | None = None
        self.join_task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.wake = asyncio.Event()
        self.leader_members: list[SignalPeer] = []  # our registry while we lead
        self.closed = False
        self._loop_time: Callable[[], float] = time.monotonic
        self._join_seq = 0  # our registrations: a later one replaces an earlier one
        self.rendezvous = Rendezvous(parse_targets(options.rendezvous))
        self.asker: Asker | None = None
        self._sources: dict[str, set[FoundBy]] = {}  # peer id -> how its record came
        self.keys = RoomKeys(self, events)

    # --------------------------------------------------------------- lifecycle

    async def open(self, read_interfaces: Callable[[], list[netview.Iface]]) -> None:
        """Create the adapters, bind to the addresses there are (if any), start
        the election and the background tasks. Raises if stopped meanwhile."""
        from sidecar.net.signaling.server import SignalingServer

        self._loop_time = asyncio.get_running_loop().time
        o = self.options
        self.server = SignalingServer(
            me=self.me,
            room=o.room,
            room_key=o.room_key,
            on_deliver=self._on_signal,
            on_members_changed=self._on_members,
            on_pairing=self.events.pairing_changed,
            on_rekey=self.keys.rekeyed,
        )
        self.presence.server = self.server
        await self.presence.open(read_interfaces)
        self._check_open()
        self._spawn(self._clock())
        self.presence.run()
        secret = (
            Secret("code", o.pairing_code)
            if o.pairing_code is not None
            else Secret("token", o.pairing_token)
            if o.pairing_token is not None
            else None
        )
        if secret is None:
            self._start_room()
            return
        # The room (election, rendezvous) once a member let us in.
        self.keys.start_pairing(secret)
        self.keys.paired.add_done_callback(  # type: ignore[union-attr]
            lambda f: None if f.cancelled() or f.exception() else self._start_room()
        )

    def _start_room(self) -> None:
        if self.closed:
            return
        o = self.options
        self._feed(self.election.start(self._now(), offline=not self.presence.online))
        if self.rendezvous.targets:
            from sidecar.net.signaling.query import Asker

            self.asker = Asker(
                self.rendezvous,
                room=o.room,
                room_key=o.room_key,
                on_records=self._answered,
                online=lambda: self.presence.online,
                in_room=lambda: self.confirmed_leader() is not None,
                is_me=self.is_me,
            )
            self._spawn(self.asker.run())

    # ------------------------------------------------- the room key (KeyPorts)

    @property
    def room(self) -> str:
        return self.options.room

    @property
    def room_key(self) -> str | None:
        return self.options.room_key

    def use_key(self, room_key: str) -> None:
        """Sign and check with `room_key` from now on (a pairing gave it, or the
        room's key was rotated)."""
        self.options = msgspec.structs.replace(
            self.options, room_key=room_key, pairing_code=None, pairing_token=None
        )
        if self.server is not None:
            self.server.set_key(room_key)
        self.presence.set_room_key(room_key)  # and our record, signed with it
        if self.asker is not None:
            self.asker.set_room_key(room_key)

    async def send_rekey(self, room_key: str, revoke: list[str]) -> tuple[list[str], list[str]]:
        if self.server is not None and self.server.leading:
            took = self.server.rekey(room_key, revoke)
            return took, sorted(set(revoke) - {self.me.peer_id})
        if self.client is not None and self.client.connected:
            rekeyed = await self.client.rotate(
                Rekey(room_key=room_key, revoke=revoke), timeout=ROTATE_TIMEOUT_S
            )
            return rekeyed.took, rekeyed.revoked
        raise ConnectionError("not connected to the room's leader")

    def display_url(self) -> str | None:
        server = self.server
        if self.addresses and server is not None and server.port:
            return f"http://{self.addresses[0]}:{server.port}/"
        return None

    def open_window(self, window: Window) -> bool:
        if self.server is None:
            return False
        self.server.open_pairing(window)
        return True

    def close_window(self) -> None:
        if self.server is not None:
            self.server.close_pairing()

    def rendezvous_targets(self) -> Iterable[Target]:
        return self.rendezvous.targets

    def resolved(self, target: Target, addresses: list[str]) -> None:
        self.rendezvous.resolved(target, addresses)

    def is_me(self, address: str, port: int) -> bool:
        return address in self.addresses and self.server is not None and port == self.server.port

    def _check_open(self) -> None:
        if self.closed:
            raise Stopped()

    async def close(self) -> None:
        """Leave the network (bounded by STOP_S). A start still binding is waited
        for, then undone: a stop during a start leaves nothing running."""
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        await self.presence.settle(STOP_S / 2)
        steps: list[Coroutine[Any, Any, None]] = []
        if self.client is not None:
            steps.append(self.client.close(leave=True))
        if self.server is not None:
            steps.append(self.server.close())
        if self.presence.discovery is not None:
            steps.append(self.presence.discovery.close())  # goodbye packets
        # In parallel: the goodbye and the leave message go out together.
        results = await asyncio.wait_for(asyncio.gather(*steps, return_exceptions=True), STOP_S)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("leaving the network: a step failed: %r", result)
        self.election.stop()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return self._spawn(coro)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(_log_crash)
        return task

    def _now(self) -> float:
        return self._loop_time()

    def now(self) -> float:
        """The membership's clock (the event loop's), in seconds."""
        return self._loop_time()

    # ------------------------------------------------------------ the network

    @property
    def addresses(self) -> list[str]:
        """The addresses in use now (empty while offline)."""
        return self.presence.addresses

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network, ...]:
        return self.presence.networks

    def bound(self) -> None:
        assert self.server is not None
        self.me = self.server.me
        self.election.me = self.me

    def attached(self, addresses: list[str], lost: list[str]) -> None:
        self.events.network_changed(addresses, True, lost)
        if self.election.offline:
            self._back_online()
        elif lost:
            self._feed(self.election.rejoin(self._now()))

    def offline(self) -> None:
        if not self.election.offline:
            self._feed(self.election.network_down(self._now()))
            self.events.network_changed([], False, [])

    def online(self) -> None:
        self._back_online()
        self.events.network_changed(list(self.presence.net.attached), True, [])

    def _back_online(self) -> None:
        self.presence.query()
        self._feed(self.election.network_up(self._now()))
        self._ask_rendezvous()
        self.events.route_changed()

    def record_seen(self, record: PeerRecord) -> None:
        self._saw(record, "mdns")

    def record_gone(self, peer_id: str) -> None:
        self._on_gone(peer_id)

    def keyed_hint(self, addresses: list[str], port: int) -> None:
        self.keys.found(addresses, port)

    def our_record(self) -> PeerRecord:
        return self._record()

    def leading(self) -> bool:
        return self.election.is_leader

    # ------------------------------------------------------ background tasks

    async def _clock(self) -> None:
        """Ticks the election at its deadlines (woken early by any decision)."""
        while True:
            deadline = self.election.next_deadline()
            self.wake.clear()
            if deadline is None:
                await self.wake.wait()
                continue
            delay = deadline - self._now()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), delay)
                continue
            try:
                self._feed(self.election.tick(self._now()))
            except Exception:  # a bug of ours; the clock must keep ticking
                log.exception("election: a tick failed")
                await asyncio.sleep(0.1)

    # --------------------------------------------------------------- discovery

    def _saw(self, record: PeerRecord, source: FoundBy) -> None:
        """A record from mDNS or a rendezvous answer: both feed the election."""
        sources = self._sources.pop(record.peer_id, set())
        sources.add(source)
        self._sources[record.peer_id] = sources  # last seen last
        while len(self._sources) > MAX_SOURCES:
            del self._sources[next(iter(self._sources))]
        self._feed(self.election.record_seen(record, self._now()))

    def _answered(self, records: list[PeerRecord]) -> None:
        for record in records:
            self._saw(record, "rendezvous")

    def _ask_rendezvous(self) -> None:
        if self.asker is not None:
            self.rendezvous.ask_all_soon(self._now())
            self.asker.wake()

    def may_contact(self, address: str) -> bool:
        """On one of our networks, or given by the host (a rendezvous address)."""
        return self.presence.on_our_networks(address) or address in self.rendezvous.addresses()

    def _known_records(self) -> list[PeerRecord]:
        """What a rendezvous query is answered: our record, then our leader's
        (or, leading, our members')."""
        e, room = self.election, self.options.room
        records = [self._record()]
        leader = self.confirmed_leader()
        if e.is_leader:
            records += [
                PeerRecord.of(m, role="follower", leader_id=leader, term=e.term, room=room)
                for m in self.leader_members
                if m.peer_id != self.me.peer_id
            ]
        elif leader is not None and (member := self.find_member(leader)) is not None:
            records.append(
                PeerRecord.of(member, role="leader", leader_id=leader, term=e.term, room=room)
            )
        return records

    # --------------------------------------------------------------- decisions

    def _feed(self, decisions: list[Decision]) -> None:
        """Carry out the election's decisions, then tell the host what changed."""
        if self.closed:
            return  # a late event from a stopped membership
        for decision in decisions:
            log.info("election: %s", decision, extra={"term": self.election.term})
            if isinstance(decision, BecomeLeader):
                self._lead(decision.term)
            elif isinstance(decision, Follow):
                self._follow(decision)
            elif isinstance(decision, Retermed) and self.server is not None:
                self.server.set_term(decision.term)
        self.wake.set()
        self.presence.publish_needed.set()
        if self.server is not None:
            self.server.set_known(self._known_records())
        self.events.room_changed()

    def _lead(self, term: int) -> None:
        self._drop_client()
        assert self.server is not None
        self.server.start_leading(term)
        self.leader_members = self.server.members()
        self.events.route_changed()

    def _follow(self, decision: Follow) -> None:
        if decision.rejoin:
            self._cancel_join()
            self.join_task = self._spawn(self._join(decision))
            return
        if self.server is not None:
            if self.server.leading:
                # Our followers get a peer list naming the new leader first.
                target = self.find_member(decision.leader_id)
                self.server.stop_leading(redirect=target, term=decision.term)
                self.leader_members = []
            self.server.set_leader_hint(decision.leader_id)
        self._drop_client()
        self.join_task = self._spawn(self._join(decision))

    def _cancel_join(self) -> None:
        if self.join_task is not None:
            self.join_task.cancel()
            self.join_task = None

    def _drop_client(self) -> None:
        self._cancel_join()
        client, self.client, self.client_leader = self.client, None, None
        if client is not None:
            self._spawn(client.close(leave=True))

    async def _join(self, decision: Follow) -> None:
        from sidecar.net.signaling.client import JoinFailed, SignalingClient

        wait = SUCCESSOR_WAIT_S if decision.successor else JOIN_TIMEOUT_S
        deadline = self._now() + wait
        # Only addresses on our own networks: a list from the network is not a
        # list of places to send packets to.
        reachable = [a for a in decision.addresses if self.may_contact(a)]
        urls = [f"ws://{address}:{decision.port}/signal" for address in reachable]
        last_error = "no address on our networks"
        while True:
            this: list[SignalingClient] = []  # the callback must know which client lost

            def lost(reason: str, this: list[SignalingClient] = this) -> None:
                self._on_lost(this[0], decision.leader_id, reason)

            client = SignalingClient(
                on_peer_list=self._on_peer_list,
                on_signal=self._on_signal,
                on_lost=lost,
                on_rekey=self.keys.rekeyed,
            )
            this.append(client)
            remaining = max(deadline - self._now(), 0.2)
            try:
                self._join_seq += 1
                registered = await client.join(
                    urls,
                    self.me,
                    self.options.room,
                    self.options.room_key,
                    timeout=remaining,
                    identity=self.identity,
                    seq=self._join_seq,
                )
            except JoinFailed as exc:
                last_error = f"{exc.code}: {exc.reason}"
                with contextlib.suppress(Exception):
                    await client.close(leave=False)
                if exc.code in (
                    "forbidden",
                    "unproven_leader",
                    "wrong_room",
                    "id_conflict",
                    "revoked",
                ):
                    deadline = 0.0  # retrying cannot help
                if self._now() >= deadline:
                    break
                await asyncio.sleep(SUCCESSOR_RETRY_S)
                continue
            old, self.client, self.client_leader = self.client, client, decision.leader_id
            self.join_task = None
            if old is not None:
                self._spawn(old.close(leave=False))
            self._feed(
                self.election.joined_leader(
                    registered.leader_id, registered.term, registered.peers, self._now()
                )
            )
            self.events.route_changed()
            return
        self.join_task = None
        if decision.rejoin and self.client is not None and self.client.connected:
            log.info("could not register again at %s (%s); staying", decision.leader_id, last_error)
            return
        log.warning("could not join leader %s: %s", decision.leader_id, last_error)
        self._feed(self.election.join_failed(decision.leader_id, self._now()))

    # ----------------------------------------------------------- adapter events

    def _on_lost(self, client: SignalingClient, leader_id: str, reason: str) -> None:
        if client is not self.client:
            return  # one we replaced, or are replacing
        log.warning("lost leader %s: %s", leader_id, reason)
        self.client, self.client_leader = None, None
        self._ask_rendezvous()
        if self.join_task is not None:
            return  # registering again right now: its outcome decides
        if client.dropped:
            self._feed(self.election.dropped(leader_id, self._now()))
        else:
            self._feed(self.election.leader_lost(leader_id, self._now()))

    def _on_peer_list(self, msg: PeerList) -> None:
        self._feed(self.election.peer_list(msg.leader_id, msg.term, msg.peers, self._now()))

    def _on_members(self, members: list[SignalPeer]) -> None:
        self.leader_members = members
        if self.server is not None:
            self.server.set_known(self._known_records())
        self.events.room_changed()

    def _on_gone(self, peer_id: str) -> None:
        self._feed(self.election.record_gone(peer_id, self._now()))

    def _on_signal(self, msg: SignalMessage) -> None:
        """An offer, answer or candidate for us, from the leader or its server."""
        if isinstance(msg, Offer | Answer | Candidate | Relay):
            self.events.signal(msg)

    def send_signal(self, msg: PeerSignal) -> bool:
        """Route an offer or answer through the current leader; False: no route now."""
        if self.server is not None and self.server.leading:
            try:
                self.server.send_local(msg)
            except (KeyError, ValueError):
                return False
            return True
        client = self.client
        if client is None or not client.connected:
            return False
        self._spawn(client.send(msg))
        return True

    # ----------------------------------------------------------- what we show

    def leader_status(self, describe: Callable[[SignalPeer], PeerInfo]) -> LeaderStatus:
        """get_leader_status: the room as this membership sees it (`describe`: a
        member as the host sees it, its channel included)."""
        leader_id = self.confirmed_leader()
        leader = self.find_member(leader_id) if leader_id else None
        server = self.server
        return LeaderStatus(
            state=self.state,
            leader_id=leader_id,
            is_leader=self.election.is_leader,
            term=self.election.term,
            leader=describe(leader) if leader is not None else None,
            signaling_url=(
                f"ws://{leader.addresses[0]}:{leader.port}"
                if leader is not None and leader.addresses
                else None
            ),
            addresses=self.addresses,
            keyed=self.options.room_key is not None,
            pairing=(
                self.keys.info(server.pairing)
                if server is not None and server.pairing is not None
                else None
            ),
            found_by=self.found_by,
            display_url=self.display_url(),
            room_addresses=self.room_addresses,
            rendezvous=[
                RendezvousStatus(
                    target=st.target.text,
                    state=st.state,
                    addresses=list(st.addresses),
                    error=st.error,
                )
                for st in self.rendezvous.statuses.values()
            ],
        )

    def _record(self) -> PeerRecord:
        e = self.election
        role: Role = "candidate"
        if e.is_leader:
            role = "leader"
        elif e.state == "follower" and e.joined:
            role = "follower"
        return PeerRecord.of(
            self.me,
            role=role,
            leader_id=e.leader_id if role != "candidate" else None,
            term=e.term,
            room=self.options.room,
        )

    @property
    def state(self) -> LeaderState:
        e = self.election
        if e.offline:
            return "offline"
        if e.state == "follower" and not e.joined:
            return "electing"  # chosen, not yet registered
        return e.state

    @property
    def found_by(self) -> list[FoundBy]:
        """How we heard of the leader we follow (empty while leading or unled)."""
        leader = self.confirmed_leader()
        if leader is None or leader == self.me.peer_id:
            return []
        return sorted(self._sources.get(leader, set()))

    @property
    def room_addresses(self) -> list[str]:
        """The room's signaling servers, `ip:port`, the leader's first."""
        out: list[str] = []
        for member in self.members():
            for address in member.addresses if member.port else []:
                if f"{address}:{member.port}" not in out:
                    out.append(f"{address}:{member.port}")
        return out[:MAX_ROOM_ADDRESSES]

    def confirmed_leader(self) -> str | None:
        e = self.election
        return e.leader_id if e.is_leader or (e.state == "follower" and e.joined) else None

    def members(self) -> list[SignalPeer]:
        e = self.election
        if e.is_leader:
            return self.leader_members or [self.me]
        if e.state == "follower" and e.joined and e.members():
            return e.members()
        return [self.me]

    def find_member(self, peer_id: str | None) -> SignalPeer | None:
        if peer_id is None:
            return None
        if peer_id == self.me.peer_id:
            return self.me
        for member in self.members():
            if member.peer_id == peer_id:
                return member
        record = self.election.record(peer_id)
        return record.as_signal_peer() if record is not None else None


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background task failed", exc_info=exc)
