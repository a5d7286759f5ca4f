"""WebSocket signaling of the leader-elected room (docs/protocol.md, "Signaling").

Three layers, kept apart the h11 way:

- `RoomRegistry`: the rules, sans I/O. Fed with events and `now` (seconds from
  an injected clock), it returns actions (`Send`, `Close`, `Deliver`,
  `MembersChanged`) and never touches a socket or the event loop.
- `SignalingServer`: the aiohttp adapter. Every peer binds it at start so its
  port is known and advertised; it accepts registrations only while leading.
- `SignalingClient`: what a follower uses to join the leader, heartbeat it and
  notice its loss.

Room keys: the leader challenges every connection with a nonce; a follower
proves the key with HMAC-SHA256 over `register|nonce|peer_id|room`, and asks
the leader to prove it in turn (`registered|client_nonce|leader_id|room`). The
distinct prefixes keep one side's proof from being replayed as the other's.

`error` codes the leader sends: not_registered, not_leader, wrong_room,
wrong_version, forbidden, id_conflict (the refusals, each followed by a close,
see `CloseCode`); spoofed, unknown_peer, already_registered, unexpected,
malformed, invalid, unknown_type, binary (the connection stays open).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar, get_args

import aiohttp
import msgspec
from aiohttp import WSMsgType, web

from sidecar.clock import overslept
from sidecar.messages import (
    PROTOCOL_VERSION,
    Answer,
    Candidate,
    Challenge,
    Heartbeat,
    HeartbeatAck,
    Leave,
    Offer,
    PeerList,
    Register,
    Registered,
    SignalError,
    SignalMessage,
    SignalPeer,
    decode_signal,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SIGNAL_PATH = "/signal"
MAX_FRAME_BYTES = 256 * 1024
HEARTBEAT_INTERVAL_S = 2.0
MISSED_LIMIT = 3
HEARTBEAT_GRACE_S = 0.5
"""Slack on top of MISSED_LIMIT intervals, so a heartbeat that is merely late still counts."""
REGISTER_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 0.5
"""Bound on each closing step (close handshake, server shutdown)."""
SEND_TIMEOUT_S = 5.0
"""A peer whose socket accepts nothing for this long is cut off."""
OUTBOX_LIMIT_CHARS = 4 * 1024 * 1024
"""Text queued for one connection (beyond what its socket took) before it counts
as too slow and is cut off."""
BIND_ATTEMPTS = 5

PeerSignal = Offer | Answer | Candidate
"""What peers exchange through the leader to set up their data channels."""

ConnId = int
"""Opaque connection id chosen by the adapter."""


class CloseCode(IntEnum):
    """WebSocket close codes this module uses (4000-4999 are ours)."""

    NORMAL = 1000  # the peer left
    GOING_AWAY = 1001  # the server is shutting down
    TOO_BIG = 1009  # frame over MAX_FRAME_BYTES (sent by aiohttp itself)
    STEPPED_DOWN = 4000
    NOT_REGISTERED = 4001  # message before register, or no register in time
    REPLACED = 4002  # the same peer id registered on a newer connection
    FORBIDDEN = 4003  # bad room-key proof
    HEARTBEAT_TIMEOUT = 4008
    NOT_LEADER = 4009
    REJECTED = 4010  # wrong room, wrong protocol version, or the leader's own id


# The frames only the leader sends; a client sending one is confused.
_SERVER_ONLY = (Challenge, Registered, PeerList, HeartbeatAck, SignalError)
_KNOWN_TAGS = frozenset(str(t.__struct_config__.tag) for t in get_args(SignalMessage))
_encoder = msgspec.json.Encoder()


def encode_signal(msg: SignalMessage) -> str:
    """One signaling frame as text (binary frames are refused on the wire)."""
    return _encoder.encode(msg).decode()


def _hmac_hex(room_key: str, text: str) -> str:
    return hmac.new(room_key.encode(), text.encode(), hashlib.sha256).hexdigest()


def register_proof(room_key: str, nonce: str, peer_id: str, room: str) -> str:
    """The follower's answer to the leader's challenge."""
    return _hmac_hex(room_key, f"register|{nonce}|{peer_id}|{room}")


def registered_proof(room_key: str, client_nonce: str, leader_id: str, room: str) -> str:
    """The leader's answer to the follower's `client_nonce`."""
    return _hmac_hex(room_key, f"registered|{client_nonce}|{leader_id}|{room}")


def proof_matches(expected: str, given: str | None) -> bool:
    # Bytes, since compare_digest raises TypeError on non-ASCII str input.
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def _new_nonce() -> str:
    return secrets.token_hex(16)


def _tag(msg: SignalMessage) -> str:
    return str(type(msg).__struct_config__.tag)


# ----------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Send:
    conn_id: ConnId
    msg: SignalMessage


@dataclass(frozen=True, slots=True)
class Close:
    conn_id: ConnId
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """A signal addressed to the leader itself (the local member)."""

    msg: PeerSignal


@dataclass(frozen=True, slots=True)
class MembersChanged:
    members: list[SignalPeer]


Action = Send | Close | Deliver | MembersChanged


# ----------------------------------------------------------------- registry


@dataclass(slots=True)
class _Conn:
    nonce: str
    opened_at: float
    peer: SignalPeer | None = None
    last_heartbeat: float = 0.0
    seq: int = 0  # the registration's `seq`: a newer one of the same peer replaces it


class RoomRegistry:
    """The leader's room: who is connected, who is registered, what to send.

    Every method returns the actions the adapter must carry out, in order. A
    connection the registry closed is forgotten at once: later frames or a
    `disconnect` for it are ignored, so the adapter may report them freely.
    """

    def __init__(
        self,
        me: SignalPeer,
        room: str,
        room_key: str | None = None,
        *,
        heartbeat_interval: float = HEARTBEAT_INTERVAL_S,
        missed_limit: int = MISSED_LIMIT,
        grace: float = HEARTBEAT_GRACE_S,
        register_timeout: float = REGISTER_TIMEOUT_S,
        nonce_factory: Callable[[], str] = _new_nonce,
        version: int = PROTOCOL_VERSION,
    ) -> None:
        self._me = me
        self._room = room
        self._key = room_key
        self._heartbeat_timeout = heartbeat_interval * missed_limit + grace
        self._register_timeout = register_timeout
        self._nonce = nonce_factory
        self._version = version
        self._leading = False
        self._term = 0
        self._leader_hint: str | None = None
        self._conns: dict[ConnId, _Conn] = {}
        self._by_id: dict[str, ConnId] = {}  # insertion order = registration order

    # -- state

    @property
    def me(self) -> SignalPeer:
        return self._me

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def term(self) -> int:
        return self._term

    @property
    def heartbeat_timeout(self) -> float:
        return self._heartbeat_timeout

    def members(self) -> list[SignalPeer]:
        """The leader first, then the registered peers in registration order (a peer
        that re-registers counts from its new registration)."""
        peers = [self._conns[cid].peer for cid in self._by_id.values()]
        return [self._me, *(p for p in peers if p is not None)]

    def next_deadline(self) -> float | None:
        """When `tick` next has something to do; None while nobody is connected."""
        deadlines = [self._deadline(c) for c in self._conns.values()]
        return min(deadlines, default=None)

    def _deadline(self, conn: _Conn) -> float:
        if conn.peer is None:
            return conn.opened_at + self._register_timeout
        return conn.last_heartbeat + self._heartbeat_timeout

    # -- leadership

    def start_leading(self, term: int, now: float) -> list[Action]:
        """Accept registrations from now on. `now` is unused but kept for symmetry."""
        del now
        if self._leading:
            return self.set_term(term)
        self._leading = True
        self._term = term
        self._leader_hint = self._me.peer_id
        return []

    def stop_leading(
        self, now: float, redirect: SignalPeer | None = None, term: int | None = None
    ) -> list[Action]:
        """Close every connection (4000) and forget them.

        With `redirect` (the peer we step down in favour of), every member
        first gets a PeerList naming it leader, at `term` if given, so the
        followers move to it without waiting for discovery. Later `not_leader`
        refusals name it too.
        """
        del now
        self._leader_hint = redirect.peer_id if redirect is not None else None
        if not self._leading:
            return []
        self._leading = False
        actions: list[Action] = []
        if redirect is not None and self._by_id:
            others = [m for m in self.members() if m.peer_id != redirect.peer_id]
            turn = PeerList(
                leader_id=redirect.peer_id,
                term=self._term if term is None else term,
                peers=[redirect, *others],
            )
            actions += [Send(cid, turn) for cid in self._by_id.values()]
        had_members = bool(self._by_id)
        actions += [
            Close(cid, CloseCode.STEPPED_DOWN, "leader stepped down") for cid in self._conns
        ]
        self._conns.clear()
        self._by_id.clear()
        if had_members:
            actions.append(MembersChanged(self.members()))
        return actions

    def set_term(self, term: int) -> list[Action]:
        """A new term; the members hear of it through a PeerList."""
        if term == self._term:
            return []
        self._term = term
        return self._broadcast() if self._leading else []

    def set_leader_hint(self, leader_id: str | None) -> None:
        """Who leads when this peer does not, named in `not_leader` refusals."""
        self._leader_hint = leader_id

    def update_me(self, me: SignalPeer) -> list[Action]:
        """This peer's own entry changed (e.g. its bound port): tell the members."""
        if me.peer_id != self._me.peer_id:
            raise ValueError("update_me cannot change the peer id")
        self._me = me
        if not self._leading or not self._by_id:
            return []
        return [*self._broadcast(), MembersChanged(self.members())]

    def send_local(self, msg: PeerSignal) -> list[Action]:
        """A signal from the leader itself to a member.

        Raises KeyError when `msg.to` is not a registered member (or this peer
        does not lead): the caller learns at once that the peer is gone.
        """
        if msg.from_ != self._me.peer_id:
            raise ValueError(f"send_local must send as {self._me.peer_id!r}")
        cid = self._by_id.get(msg.to) if self._leading else None
        if cid is None:
            raise KeyError(msg.to)
        return [Send(cid, msg)]

    # -- connection events

    def connect(self, conn_id: ConnId, now: float) -> list[Action]:
        if conn_id in self._conns:
            raise ValueError(f"connection {conn_id} already known")
        conn = _Conn(nonce=self._nonce(), opened_at=now)
        self._conns[conn_id] = conn
        return [Send(conn_id, Challenge(nonce=conn.nonce))]

    def disconnect(self, conn_id: ConnId, now: float) -> list[Action]:
        del now
        conn = self._conns.pop(conn_id, None)
        if conn is None or conn.peer is None:
            return []
        if self._by_id.get(conn.peer.peer_id) == conn_id:
            del self._by_id[conn.peer.peer_id]
        return self._members_changed()

    def resumed(self, slept: float) -> None:
        """This process was suspended for `slept` seconds: nobody's deadline
        counts that time."""
        for conn in self._conns.values():
            conn.opened_at += slept
            conn.last_heartbeat += slept

    def tick(self, now: float) -> list[Action]:
        """Close connections that never registered or stopped heartbeating."""
        actions: list[Action] = []
        changed = False
        for cid, conn in list(self._conns.items()):
            if now < self._deadline(conn):
                continue
            if conn.peer is None:
                actions.append(Close(cid, CloseCode.NOT_REGISTERED, "registration timeout"))
            else:
                actions.append(Close(cid, CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout"))
                changed = True
            self._forget(cid)
        if changed:
            actions += self._members_changed()
        return actions

    def receive(self, conn_id: ConnId, frame: str | bytes, now: float) -> list[Action]:
        conn = self._conns.get(conn_id)
        if conn is None:
            return []  # a frame that raced our own close
        if isinstance(frame, bytes):
            return [_error(conn_id, "binary", "frames must be text (JSON)")]
        try:
            msg = decode_signal(frame)
        except msgspec.ValidationError as exc:  # before DecodeError: it is a subclass
            return [Send(conn_id, _invalid(frame, exc))]
        except msgspec.DecodeError as exc:
            return [_error(conn_id, "malformed", f"not valid JSON: {exc}")]
        if conn.peer is None:
            if isinstance(msg, Register):
                return self._register(conn_id, conn, msg, now)
            return self._refuse(
                conn_id,
                "not_registered",
                f"send register first (got {_tag(msg)})",
                CloseCode.NOT_REGISTERED,
                "not registered",
            )
        return self._from_member(conn_id, conn.peer, conn, msg, now)

    # -- rules

    def _register(self, conn_id: ConnId, conn: _Conn, msg: Register, now: float) -> list[Action]:
        peer_id = msg.peer.peer_id
        if not self._leading:
            hint = f"; the leader is {self._leader_hint}" if self._leader_hint else ""
            return self._refuse(
                conn_id,
                "not_leader",
                f"{self._me.peer_id} does not lead the room{hint}",
                CloseCode.NOT_LEADER,
                "not leader",
            )
        if msg.v != self._version:
            return self._refuse(
                conn_id,
                "wrong_version",
                f"protocol version {msg.v} is not {self._version}",
                CloseCode.REJECTED,
                "wrong protocol version",
            )
        if msg.room != self._room:
            return self._refuse(
                conn_id,
                "wrong_room",
                f"this leader serves another room, not {msg.room!r}",
                CloseCode.REJECTED,
                "wrong room",
            )
        if self._key is not None:
            expected = register_proof(self._key, conn.nonce, peer_id, self._room)
            if not proof_matches(expected, msg.proof):
                return self._refuse(
                    conn_id,
                    "forbidden",
                    "missing or wrong room key proof",
                    CloseCode.FORBIDDEN,
                    "forbidden",
                )
        if peer_id == self._me.peer_id:
            return self._refuse(
                conn_id,
                "id_conflict",
                "that peer id is the leader's own",
                CloseCode.REJECTED,
                "peer id conflict",
            )

        actions: list[Action] = []
        old = self._by_id.get(peer_id)
        if old is not None:
            if self._conns[old].seq >= msg.seq:
                # A registration that the peer itself has already superseded (it came
                # late from an attempt it gave up): the newer connection stays.
                return self._refuse(
                    conn_id,
                    "id_conflict",
                    f"{peer_id} is registered on a newer connection",
                    CloseCode.REJECTED,
                    "peer id conflict",
                )
            actions.append(Close(old, CloseCode.REPLACED, "replaced by a newer connection"))
            self._forget(old)
        conn.peer = msg.peer
        conn.seq = msg.seq
        conn.last_heartbeat = now  # registering counts as the first heartbeat
        self._by_id[peer_id] = conn_id
        proof = None
        if self._key is not None and msg.client_nonce is not None:
            proof = registered_proof(self._key, msg.client_nonce, self._me.peer_id, self._room)
        members = self.members()
        reply = Registered(leader_id=self._me.peer_id, term=self._term, peers=members, proof=proof)
        actions.append(Send(conn_id, reply))
        actions += self._broadcast(skip=conn_id)
        actions.append(MembersChanged(members))
        return actions

    def _from_member(
        self, conn_id: ConnId, peer: SignalPeer, conn: _Conn, msg: SignalMessage, now: float
    ) -> list[Action]:
        match msg:
            case Offer() | Answer() | Candidate():
                return self._forward(conn_id, peer, msg)
            case Heartbeat():
                conn.last_heartbeat = now
                return [Send(conn_id, HeartbeatAck(seq=msg.seq, term=self._term))]
            case Leave():
                if msg.peer_id != peer.peer_id:
                    return [_error(conn_id, "spoofed", f"you are {peer.peer_id}")]
                self._forget(conn_id)
                return [Close(conn_id, CloseCode.NORMAL, "left"), *self._members_changed()]
            case Register():
                return [_error(conn_id, "already_registered", f"already {peer.peer_id}")]
            case _:
                assert isinstance(msg, _SERVER_ONLY)
                return [_error(conn_id, "unexpected", f"{_tag(msg)} is sent by the leader only")]

    def _forward(self, conn_id: ConnId, peer: SignalPeer, msg: PeerSignal) -> list[Action]:
        if msg.from_ != peer.peer_id:
            return [_error(conn_id, "spoofed", f"from must be your own id {peer.peer_id}")]
        if msg.to == self._me.peer_id:
            return [Deliver(msg)]
        target = self._by_id.get(msg.to)
        if target is None:
            return [_error(conn_id, "unknown_peer", f"{msg.to} is not in the room")]
        return [Send(target, msg)]

    # -- helpers

    def _refuse(
        self, conn_id: ConnId, code: str, message: str, close: CloseCode, reason: str
    ) -> list[Action]:
        self._forget(conn_id)
        return [_error(conn_id, code, message), Close(conn_id, close, reason)]

    def _forget(self, conn_id: ConnId) -> None:
        conn = self._conns.pop(conn_id)
        if conn.peer is not None and self._by_id.get(conn.peer.peer_id) == conn_id:
            del self._by_id[conn.peer.peer_id]

    def _broadcast(self, skip: ConnId | None = None) -> list[Action]:
        msg = PeerList(leader_id=self._me.peer_id, term=self._term, peers=self.members())
        return [Send(cid, msg) for cid in self._by_id.values() if cid != skip]

    def _members_changed(self) -> list[Action]:
        return [*self._broadcast(), MembersChanged(self.members())]


def _error(conn_id: ConnId, code: str, message: str) -> Send:
    return Send(conn_id, SignalError(code=code, message=message))


def _invalid(frame: str, exc: msgspec.ValidationError) -> SignalError:
    # msgspec reports an unknown tag as an invalid `$.type`; tell the two apart.
    with contextlib.suppress(msgspec.DecodeError):
        raw = msgspec.json.decode(frame)
        tag = raw.get("type") if isinstance(raw, dict) else None
        if isinstance(tag, str) and tag not in _KNOWN_TAGS:
            return SignalError(code="unknown_type", message=f"unknown type {tag[:64]!r}")
    # Cap the echo: an unknown field's name comes from the sender and may be huge.
    return SignalError(code="invalid", message=str(exc)[:300])


# ----------------------------------------------------------------- server


@dataclass(slots=True, eq=False)
class _Link:
    """One accepted WebSocket and the queue its writer task drains in order."""

    ws: web.WebSocketResponse
    request: web.Request
    outbox: asyncio.Queue[str | Close] = field(default_factory=asyncio.Queue)
    queued: int = 0  # characters in the outbox, bounded by OUTBOX_LIMIT_CHARS
    writer: asyncio.Task[None] | None = None
    closing: bool = False

    def put(self, item: str | Close) -> None:
        if self.closing:
            return
        if isinstance(item, Close):
            self.closing = True
        else:
            if self.queued + len(item) > OUTBOX_LIMIT_CHARS:
                # Its socket is full and its backlog too: a stuck peer cannot even
                # take a close frame, so cut the TCP connection.
                log.warning("signaling: peer too slow, cutting it off")
                self.abort()
                return
            self.queued += len(item)
        self.outbox.put_nowait(item)

    def abort(self) -> None:
        self.closing = True
        if self.writer is not None:
            self.writer.cancel()
        transport = self.request.transport
        if transport is not None:
            transport.abort()


class SignalingServer:
    """The WebSocket signaling server of this peer, on `ws://<address>:<port>/signal`.

    Bound at start on the announced addresses; refuses registrations (4009)
    until `start_leading`. Callbacks run on the event loop and must not block.
    """

    def __init__(
        self,
        me: SignalPeer,
        room: str,
        room_key: str | None = None,
        *,
        on_deliver: Callable[[PeerSignal], None],
        on_members_changed: Callable[[list[SignalPeer]], None],
        heartbeat_interval: float = HEARTBEAT_INTERVAL_S,
        missed_limit: int = MISSED_LIMIT,
        grace: float = HEARTBEAT_GRACE_S,
        register_timeout: float = REGISTER_TIMEOUT_S,
    ) -> None:
        self._registry = RoomRegistry(
            me,
            room,
            room_key,
            heartbeat_interval=heartbeat_interval,
            missed_limit=missed_limit,
            grace=grace,
            register_timeout=register_timeout,
        )
        self._on_deliver = on_deliver
        self._on_members_changed = on_members_changed
        self._links: dict[ConnId, _Link] = {}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._sites: dict[str, web.TCPSite] = {}  # by address
        self._port: int | None = None
        self._wake = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def port(self) -> int | None:
        """The bound port, once `bind` returned."""
        return self._port

    @property
    def me(self) -> SignalPeer:
        """This peer's entry, with the bound addresses and port once bound."""
        return self._registry.me

    @property
    def leading(self) -> bool:
        return self._registry.leading

    @property
    def term(self) -> int:
        return self._registry.term

    def members(self) -> list[SignalPeer]:
        return self._registry.members()

    async def bind(self, addresses: list[str], port: int) -> int:
        """Listen on every address with one common port and return it.

        A port in use is logged as a warning and replaced by a free one, the
        same on every address; the caller advertises what this returns.
        """
        if not addresses:
            raise ValueError("bind needs at least one address")
        if self._runner is not None or self._closed:
            raise RuntimeError("signaling server already bound or closed")
        app = web.Application()
        app.router.add_get(SIGNAL_PATH, self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_TIMEOUT_S)
        await runner.setup()
        try:
            actual, in_use = await self._start_sites(runner, addresses, port)
        except BaseException:
            await runner.cleanup()
            raise
        if in_use is not None:
            log.warning(
                "signaling: port %d is in use (%s); fell back to free port %d",
                port,
                in_use,
                actual,
            )
        self._runner = runner
        self._bound(addresses, actual)
        self._ticker = asyncio.create_task(self._tick_loop(), name="signaling-tick")
        return actual

    async def rebind(self, addresses: list[str]) -> int:
        """Listen on `addresses` instead of the old set (this host's addresses
        changed) and return the port. Addresses no longer listed stop listening
        (their connections are dead anyway); new ones listen on the same port,
        or, when it is taken on one of them, every address moves to a common
        free port. The members hear of the change through a peer list."""
        if not addresses:
            raise ValueError("rebind needs at least one address")
        if self._runner is None or self._port is None or self._closed:
            raise RuntimeError("signaling server not bound, or closed")
        for address in [a for a in self._sites if a not in addresses]:
            await self._sites.pop(address).stop()
        try:
            for address in addresses:
                if address not in self._sites:
                    site = web.TCPSite(self._runner, address, self._port)
                    await site.start()
                    self._sites[address] = site
            port = self._port
        except OSError as exc:
            if exc.errno not in _ADDR_IN_USE:
                raise
            for site in self._sites.values():
                await site.stop()
            self._sites.clear()
            old = self._port
            port, _ = await self._start_sites(self._runner, addresses, 0)
            log.warning("signaling: port %d is taken on a new address; moved to %d", old, port)
        self._bound(addresses, port)
        return port

    def _bound(self, addresses: list[str], port: int) -> None:
        self._port = port
        me = msgspec.structs.replace(self._registry.me, addresses=list(addresses), port=port)
        self._apply(self._registry.update_me(me))
        log.info("signaling: listening on %s port %d", ", ".join(addresses), port)

    async def _start_sites(
        self, runner: web.AppRunner, addresses: list[str], port: int
    ) -> tuple[int, str | None]:
        """The common port, and why the wanted one was given up (None if it was not)."""
        wanted = port
        in_use: str | None = None
        for _ in range(BIND_ATTEMPTS):
            sites: dict[str, web.TCPSite] = {}
            try:
                for address in addresses:
                    site = web.TCPSite(runner, address, wanted)
                    await site.start()
                    sites[address] = site
                    wanted = site.port  # the first site fixes the port for the others
            except OSError as exc:
                if exc.errno not in _ADDR_IN_USE:
                    for site in sites.values():
                        await site.stop()
                    raise
                for site in sites.values():
                    await site.stop()
                log.debug("signaling: port %d is in use on %s", wanted, address)
                in_use = in_use or f"on {address}: {exc.strerror}"
                wanted = 0
                continue
            self._sites = sites
            return wanted, in_use
        raise OSError(errno.EADDRINUSE, f"no common free port on {', '.join(addresses)}")

    # -- leadership, mirrored from the registry

    def start_leading(self, term: int) -> None:
        self._apply(self._registry.start_leading(term, time.monotonic()))

    def stop_leading(self, redirect: SignalPeer | None = None, term: int | None = None) -> None:
        """Close every follower (4000), after pointing them at `redirect` if given."""
        self._apply(self._registry.stop_leading(time.monotonic(), redirect, term))

    def set_term(self, term: int) -> None:
        self._apply(self._registry.set_term(term))

    def set_leader_hint(self, leader_id: str | None) -> None:
        self._registry.set_leader_hint(leader_id)

    def send_local(self, msg: PeerSignal) -> None:
        """Queue a signal from this (leading) peer to a member; KeyError if unknown."""
        self._apply(self._registry.send_local(msg))

    # -- I/O

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        # aiohttp refuses a frame whose size *equals* max_msg_size, hence the + 1.
        ws = web.WebSocketResponse(
            max_msg_size=MAX_FRAME_BYTES + 1, timeout=CLOSE_TIMEOUT_S, compress=False
        )
        try:
            await ws.prepare(request)
        except ConnectionResetError:  # gone during the upgrade (it raced another address)
            log.debug("signaling: a connection closed during its upgrade")
            return ws
        if self._closed:
            await ws.close(code=CloseCode.GOING_AWAY, message=b"going away")
            return ws
        conn_id = next(self._ids)
        link = _Link(ws, request)
        link.writer = asyncio.create_task(self._write(link), name=f"signaling-write-{conn_id}")
        self._links[conn_id] = link
        try:
            self._apply(self._registry.connect(conn_id, time.monotonic()))
            async for frame in ws:
                if frame.type is WSMsgType.TEXT or frame.type is WSMsgType.BINARY:
                    self._apply(self._registry.receive(conn_id, frame.data, time.monotonic()))
                elif frame.type is WSMsgType.ERROR:
                    # aiohttp already closed it (1009 for an oversize frame).
                    log.info("signaling: connection %d: %s", conn_id, ws.exception())
        finally:
            del self._links[conn_id]
            if not self._closed:
                self._apply(self._registry.disconnect(conn_id, time.monotonic()))
            if not link.closing:
                link.writer.cancel()
        return ws

    async def _write(self, link: _Link) -> None:
        try:
            while True:
                item = await link.outbox.get()
                if isinstance(item, Close):
                    await link.ws.close(code=item.code, message=item.reason.encode()[:123])
                    return
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await link.ws.send_str(item)
                link.queued -= len(item)
        except TimeoutError:
            log.warning("signaling: peer stopped reading, cutting it off")
            link.abort()
        except (ConnectionError, aiohttp.ClientError) as exc:
            log.debug("signaling: send failed: %s", exc)

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Send(conn_id, msg):
                    if isinstance(msg, SignalError):
                        log.debug("signaling: %d: error %s: %s", conn_id, msg.code, msg.message)
                    if link := self._links.get(conn_id):
                        link.put(encode_signal(msg))
                case Close(conn_id, code, reason):
                    log.debug("signaling: %d: closing %d %s", conn_id, code, reason)
                    if link := self._links.get(conn_id):
                        link.put(action)
                case Deliver(msg):
                    self._call(self._on_deliver, msg)
                case MembersChanged(members):
                    self._call(self._on_members_changed, members)
        self._wake.set()  # deadlines may have moved

    def _call(self, callback: Callable[[_T], None], arg: _T) -> None:
        if not self._closed:  # the owner is shutting down; spare it late news
            _call(callback, arg)

    async def _tick_loop(self) -> None:
        while True:
            self._wake.clear()
            deadline = self._registry.next_deadline()
            delay = None if deadline is None else deadline - time.monotonic()
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            now = time.monotonic()
            if deadline is not None and (slept := overslept(deadline, now)):
                # We were not running: our followers' silence meanwhile is ours.
                log.info("signaling: woke %.1f s late; followers get a fresh interval", slept)
                self._registry.resumed(slept)
            self._apply(self._registry.tick(now))

    async def close(self) -> None:
        """Close every connection (1001) and stop listening, within about a second."""
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
        links = list(self._links.values())
        for conn_id, link in self._links.items():
            link.put(Close(conn_id, CloseCode.GOING_AWAY, "going away"))
        writers = [link.writer for link in links if link.writer is not None]
        if writers:
            _, pending = await asyncio.wait(writers, timeout=CLOSE_TIMEOUT_S)
            for link in links:
                if link.writer in pending:
                    link.abort()
        if self._ticker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._runner is not None:
            await self._runner.cleanup()


_ADDR_IN_USE = {errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)}


# ----------------------------------------------------------------- client


class JoinFailed(Exception):
    """Joining a leader failed; `code` says why in one word.

    Codes: refused (no connection, or closed without a reason), timeout,
    not_leader, forbidden (our key proof was refused), wrong_room,
    wrong_version, id_conflict, unproven_leader (the leader cannot prove the
    room key), protocol (the leader sent something unexpected).
    """

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.reason = reason
        self.code = code


_JOIN_CODES = {"not_leader", "forbidden", "wrong_room", "wrong_version", "id_conflict"}
_CLOSE_TO_JOIN_CODE: dict[int, str] = {
    CloseCode.NOT_LEADER: "not_leader",
    CloseCode.FORBIDDEN: "forbidden",
    CloseCode.REJECTED: "wrong_room",
}


class SignalingClient:
    """A follower's connection to the leader.

    After `join`, heartbeats every `heartbeat_interval` seconds; the leader is
    lost when no ack came for `missed_limit` intervals or the connection
    closes. `on_lost` then fires exactly once, and never after `close`.
    """

    def __init__(
        self,
        *,
        on_lost: Callable[[str], None],
        on_peer_list: Callable[[PeerList], None] | None = None,
        on_signal: Callable[[PeerSignal], None] | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL_S,
        missed_limit: int = MISSED_LIMIT,
    ) -> None:
        self._on_lost = on_lost
        self._on_peer_list = on_peer_list
        self._on_signal = on_signal
        self._interval = heartbeat_interval
        self._missed_limit = missed_limit
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._me: SignalPeer | None = None
        self._leader_id: str | None = None
        self._term = 0
        self._last_ack = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._teardown: asyncio.Task[None] | None = None
        self._closing = False
        self._lost = False

    @property
    def leader_id(self) -> str | None:
        return self._leader_id

    @property
    def term(self) -> int:
        """The leader's term as last heard (Registered, PeerList, HeartbeatAck)."""
        return self._term

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed and not self._lost

    @property
    def dropped(self) -> bool:
        """The leader closed the connection because our heartbeats stopped (we
        slept, or our network was down): it is alive, and takes us back."""
        return self._ws is not None and self._ws.close_code == CloseCode.HEARTBEAT_TIMEOUT

    async def join(
        self,
        urls: str | list[str],
        me: SignalPeer,
        room: str,
        room_key: str | None,
        timeout: float,
        seq: int = 0,
    ) -> Registered:
        """Connect, answer the challenge, register; raises JoinFailed.

        With several URLs (a leader on two networks), all are tried at once and
        the first connection that opens is the one used: an address on a
        network we cannot reach then costs nothing."""
        if self._session is not None:
            raise RuntimeError("a SignalingClient joins once")
        targets = [urls] if isinstance(urls, str) else list(urls)
        if not targets:
            raise JoinFailed("no address to join", "refused")
        self._session = session = aiohttp.ClientSession()
        where = " or ".join(targets)
        try:
            async with asyncio.timeout(timeout):
                ws = await _connect_first(session, targets)
                self._ws = ws
                registered = await self._handshake(ws, me, room, room_key, seq)
        except TimeoutError:
            await self._shutdown()
            raise JoinFailed(
                f"no registration from {where} within {timeout} s", "timeout"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            await self._shutdown()
            raise JoinFailed(f"cannot connect to {where}: {exc}", "refused") from exc
        except BaseException:
            await self._shutdown()
            raise
        self._me = me
        self._leader_id = registered.leader_id
        self._term = registered.term
        self._last_ack = asyncio.get_running_loop().time()
        self._tasks = [
            asyncio.create_task(self._read_loop(ws), name="signaling-client-read"),
            asyncio.create_task(self._heartbeat_loop(ws), name="signaling-client-heartbeat"),
        ]
        return registered

    async def _handshake(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        me: SignalPeer,
        room: str,
        room_key: str | None,
        seq: int,
    ) -> Registered:
        refusal: list[SignalError] = []
        first = await _next_join_frame(ws, refusal)
        if not isinstance(first, Challenge):
            raise JoinFailed(f"expected a challenge, got {_tag(first)}", "protocol")
        client_nonce = _new_nonce() if room_key is not None else None
        proof = None
        if room_key is not None:
            proof = register_proof(room_key, first.nonce, me.peer_id, room)
        register = Register(peer=me, room=room, proof=proof, client_nonce=client_nonce, seq=seq)
        await ws.send_str(encode_signal(register))
        while True:
            msg = await _next_join_frame(ws, refusal)
            if isinstance(msg, Registered):
                break
            if isinstance(msg, SignalError):
                refusal.append(msg)  # the close that follows says we are refused
            else:
                log.debug("signaling: ignoring %s before registered", _tag(msg))
        if room_key is not None and client_nonce is not None:
            expected = registered_proof(room_key, client_nonce, msg.leader_id, room)
            if not proof_matches(expected, msg.proof):
                await ws.close(code=CloseCode.FORBIDDEN, message=b"leader cannot prove the key")
                raise JoinFailed(
                    f"leader {msg.leader_id} cannot prove the room key", "unproven_leader"
                )
        return msg

    async def send(self, msg: PeerSignal) -> None:
        """Send an offer, answer or candidate through the leader."""
        ws = self._ws
        if ws is None or ws.closed or self._lost or self._closing:
            raise ConnectionError("not connected to a leader")
        await ws.send_str(encode_signal(msg))

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        reason = "connection closed"
        try:
            while True:
                frame = await ws.receive()
                if frame.type is WSMsgType.TEXT:
                    self._on_frame(frame.data)
                elif frame.type is WSMsgType.BINARY:
                    log.warning("signaling: ignoring a binary frame from the leader")
                else:
                    if frame.type is WSMsgType.CLOSE:
                        reason = f"leader closed the connection ({frame.data} {frame.extra or ''})"
                    elif frame.type is WSMsgType.ERROR:
                        reason = f"connection error: {frame.data}"
                    break
        except Exception as exc:  # whatever broke the reader, the leader is gone to us
            reason = f"connection failed: {exc!r}"
        self._lose(reason.strip())

    def _on_frame(self, text: str) -> None:
        try:
            msg = decode_signal(text)
        except msgspec.DecodeError as exc:
            log.warning("signaling: bad frame from the leader: %s", exc)
            return
        match msg:
            case HeartbeatAck():
                self._last_ack = asyncio.get_running_loop().time()
                self._term = max(self._term, msg.term)
            case PeerList():
                if msg.term < self._term:
                    log.debug("signaling: ignoring a peer list of stale term %d", msg.term)
                    return
                # leader_id stays the one we are connected to: a list naming
                # another leader is a redirect, and the close follows.
                self._term = msg.term
                _call(self._on_peer_list, msg)
            case Offer() | Answer() | Candidate():
                _call(self._on_signal, msg)
            case SignalError():
                log.warning("signaling: leader says %s: %s", msg.code, msg.message)
            case _:
                log.debug("signaling: ignoring %s from the leader", _tag(msg))

    async def _heartbeat_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        loop = asyncio.get_running_loop()
        silence_limit = self._interval * self._missed_limit
        next_beat = loop.time() + self._interval
        seq = 0
        while True:
            # Sleep to the next beat or the moment silence becomes loss, whichever is first.
            due = max(loop.time(), min(next_beat, self._last_ack + silence_limit))
            await asyncio.sleep(due - loop.time())
            now = loop.time()
            if slept := overslept(due, now):
                # We were not running (sleep, SIGSTOP): the leader's silence is ours. Beat
                # now; what it sent meanwhile (an ack, or its close) is read next.
                log.info("signaling: woke %.1f s late; asking the leader again", slept)
                self._last_ack = now
                next_beat = now
            if now >= self._last_ack + silence_limit:
                self._lose(f"no heartbeat ack for {now - self._last_ack:.1f} s")
                return
            if now >= next_beat:
                seq += 1
                next_beat = max(next_beat + self._interval, now)
                try:
                    async with asyncio.timeout(self._interval):
                        await ws.send_str(encode_signal(Heartbeat(seq=seq, term=self._term)))
                except (TimeoutError, ConnectionError, aiohttp.ClientError) as exc:
                    log.debug("signaling: heartbeat not sent: %s", exc)

    def _lose(self, reason: str) -> None:
        if self._closing or self._lost:
            return
        self._lost = True
        log.info("signaling: leader %s lost: %s", self._leader_id, reason)
        self._teardown = asyncio.create_task(self._shutdown(), name="signaling-client-teardown")
        _call(self._on_lost, reason)

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                if self._ws is not None:
                    await self._ws.close()
        except TimeoutError:
            log.debug("signaling: close handshake timed out")
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._session is not None:
                await self._session.close()

    async def close(self, leave: bool = True) -> None:
        """Leave (optionally) and disconnect, within about a second; never fires on_lost."""
        if self._closing:
            return
        self._closing = True
        ws, me = self._ws, self._me
        if leave and ws is not None and me is not None and not ws.closed and not self._lost:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await ws.send_str(encode_signal(Leave(peer_id=me.peer_id)))
            except (TimeoutError, ConnectionError, aiohttp.ClientError) as exc:
                log.debug("signaling: leave not sent: %s", exc)
        if self._teardown is not None:
            await self._teardown
        else:
            await self._shutdown()


async def _connect_first(
    session: aiohttp.ClientSession, urls: list[str]
) -> aiohttp.ClientWebSocketResponse:
    """The first WebSocket of `urls` to open; the others are cancelled or closed.
    Raises the last connection error when none opens."""

    async def connect(url: str) -> aiohttp.ClientWebSocketResponse:
        return await session.ws_connect(
            url,
            max_msg_size=MAX_FRAME_BYTES + 1,  # aiohttp's limit is exclusive
            compress=0,
            timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
        )

    if len(urls) == 1:
        return await connect(urls[0])
    attempts = [asyncio.create_task(connect(url)) for url in urls]
    winner: aiohttp.ClientWebSocketResponse | None = None
    error: BaseException | None = None
    try:
        for next_done in asyncio.as_completed(attempts):
            try:
                winner = await next_done
                break
            except (aiohttp.ClientError, OSError) as exc:
                error = exc
    finally:
        for attempt in attempts:
            attempt.cancel()
        results = await asyncio.gather(*attempts, return_exceptions=True)
        for ws in results:
            if isinstance(ws, aiohttp.ClientWebSocketResponse) and ws is not winner:
                await ws.close()
    if winner is None:
        assert error is not None
        raise error
    return winner


async def _next_join_frame(
    ws: aiohttp.ClientWebSocketResponse, refusal: list[SignalError]
) -> SignalMessage:
    frame = await ws.receive()
    if frame.type is WSMsgType.TEXT:
        try:
            return decode_signal(frame.data)
        except msgspec.DecodeError as exc:
            raise JoinFailed(f"bad frame from the leader: {exc}", "protocol") from None
    if frame.type is WSMsgType.BINARY:
        raise JoinFailed("binary frame from the leader", "protocol")
    close_code = ws.close_code
    if refusal and refusal[-1].code in _JOIN_CODES:
        raise JoinFailed(refusal[-1].message, refusal[-1].code)
    code = _CLOSE_TO_JOIN_CODE.get(close_code, "refused") if close_code else "refused"
    reason = refusal[-1].message if refusal else f"closed with {close_code} {frame.extra or ''}"
    raise JoinFailed(reason.strip(), code)


def _call(callback: Callable[[_T], None] | None, arg: _T) -> None:
    if callback is None:
        return
    try:
        callback(arg)
    except Exception:
        log.exception("signaling: callback %r failed", callback)
