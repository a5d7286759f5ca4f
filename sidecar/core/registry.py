"""The leader's room, sans I/O: who is connected, who is registered, what to send.

What the leader accepts, and why (docs/protocol.md, "Signaling"):

* A registration proves its identity: the peer id is the hash of the public
  key it presents, and it signs this connection's challenge with that key
  (sidecar/core/identity.py). So nobody registers as another peer; the peer itself
  may register again (a new address, a new connection), and the newer
  registration (higher `seq`) replaces the older.
* In a keyed room every frame from the registration on is sealed under the
  session key (sidecar/core/roomkey.py); a frame that is not, or whose MAC or
  sequence number is wrong, ends the connection (4003).
* A member lists at most MAX_ADDRESSES addresses, each a unicast address on
  one of the leader's own networks or the one its connection comes from (a
  peer on another subnet, routed; others are dropped; none left: refused).
* Any peer, leading or not, answers a `query` (a peer that cannot hear mDNS
  asks what this one knows of the room) with the records set by `set_known`,
  then closes; in a keyed room only a sealed query is answered.
* A connection sends at most FRAME_BURST frames at once and FRAME_RATE per
  second on average; beyond that it is closed (4029). A room's traffic is a
  heartbeat every 2 s and a few offers: the bound is two orders above it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from sidecar.contract import (
    MAX_ROOM_INFO,
    PROTOCOL_VERSION,
    Answer,
    Candidate,
    Challenge,
    Heartbeat,
    HeartbeatAck,
    Leave,
    Offer,
    PairConfirm,
    PairHello,
    PairingReason,
    PeerList,
    PeerRecord,
    PeerSignal,
    Query,
    Register,
    Registered,
    Rekey,
    Rekeyed,
    Relay,
    RoomInfo,
    Sealed,
    SignalError,
    SignalMessage,
    SignalPeer,
    decode_signal,
)
from sidecar.core.identity import peer_id_of, registration_statement, verify
from sidecar.core.pairdesk import PairingDesk, Refusal
from sidecar.core.pairing import Window
from sidecar.core.roomkey import Box, Ephemeral, new_nonce, open_session, session_binding
from sidecar.core.signaling import (
    HEARTBEAT_GRACE_S,
    HEARTBEAT_INTERVAL_S,
    KNOWN_TAGS,
    MISSED_LIMIT,
    REGISTER_TIMEOUT_S,
    CloseCode,
    ConnId,
    encode_signal,
    tag,
)

FRAME_RATE = 20.0
"""Frames per second a connection may send on average."""
FRAME_BURST = 60
"""Frames a connection may send at once."""
RELAY_COST = 0.05
"""What a small `relay` frame costs of that budget: a web peer's channel through
the leader carries its messages, acks and pings (400 frames a second at most)."""
RELAY_BYTES_PER_FRAME = 16 * 1024
"""A relay frame costs one frame more per this many characters: a connection
relays 320 KiB a second at most (1 MiB at once), however it sizes its frames.
An honest channel has at most its window in flight (core/flow.py: ~140 KiB)."""
MAX_MEMBERS_PER_ADDRESS = 16
"""Members registered from one source address (a computer with a few browser
tabs, a sidecar and its page): one device cannot fill the room."""
APP_PAGE_ORIGINS = frozenset(
    {"tauri://localhost", "http://tauri.localhost", "https://tauri.localhost"}
)
"""The origins of a Tauri v2 app's own pages, as its webview sends them: `tauri://localhost`
(iOS, macOS, Linux), `http://tauri.localhost` (Android, Windows), `https://tauri.localhost`
(those two with `useHttpsScheme`). No web site can claim one: a browser sets `Origin` from
the page's own address, and `*.localhost` is the browser's own device (RFC 6761; Chromium
and Firefox resolve it to loopback without asking DNS). Only software on that device serves
there, and such software can open a WebSocket with no `Origin` at all."""

# ----------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Send:
    conn_id: ConnId
    msg: SignalMessage
    relay_from: ConnId | None = None
    """A `relay` frame forwarded from this connection: the shell charges the
    sender, not the receiver, when the receiver cannot take more."""


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


@dataclass(frozen=True, slots=True)
class PairingUpdate:
    """This peer's pairing window changed (its host hears of it)."""

    reason: PairingReason
    window: Window | None
    """What is left of it (None: closed)."""
    address: str | None = None
    """Where the try (or the device that paired) came from."""


@dataclass(frozen=True, slots=True)
class KeyRotated:
    """A member rotated the room key: this peer uses it from now on; `revoked`
    were shut out, `took` hold it (this peer included)."""

    room_key: str
    revoked: list[str]
    took: list[str]


Action = Send | Close | Deliver | MembersChanged | PairingUpdate | KeyRotated

MAX_REMEMBERED_REVOKED = 256
"""Peer ids a leader keeps refusing (the oldest forgotten first)."""


# ----------------------------------------------------------------- registry


@dataclass(slots=True)
class _Conn:
    nonce: str
    ephemeral: Ephemeral  # our share of this connection's session keys
    opened_at: float
    peer: SignalPeer | None = None
    last_heartbeat: float = 0.0
    seq: int = 0  # the registration's `seq`: a newer one of the same peer replaces it
    box: Box | None = None  # a keyed room's session, once its first frame opened
    binding: str = ""  # that session, as a registration signed in it names it
    remote: str | None = None  # the address the connection comes from
    tokens: float = FRAME_BURST  # the frame-rate bucket
    refilled: float = 0.0


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
        nonce_factory: Callable[[], str] = new_nonce,
        ephemeral_factory: Callable[[], Ephemeral] = Ephemeral,
        version: int = PROTOCOL_VERSION,
    ) -> None:
        self._me = me
        self._room = room
        self._key = room_key
        self._heartbeat_timeout = heartbeat_interval * missed_limit + grace
        self._register_timeout = register_timeout
        self._nonce = nonce_factory
        self._ephemeral = ephemeral_factory
        self._version = version
        self._leading = False
        self._term = 0
        self._leader_hint: str | None = None
        self._conns: dict[ConnId, _Conn] = {}
        self._by_id: dict[str, ConnId] = {}  # insertion order = registration order
        self._revoked: dict[str, None] = {}  # peer ids shut out by a rotation (oldest first)
        self._networks: tuple[ipaddress.IPv4Network, ...] = ()
        self._known: list[PeerRecord] = []
        self._desk = PairingDesk(room)

    def set_networks(self, networks: Sequence[ipaddress.IPv4Network]) -> None:
        """The networks this leader is on: a member's addresses must be on one."""
        self._networks = tuple(networks)

    @property
    def registered(self) -> int:
        """Connections that belong to a member (the others have not registered)."""
        return len(self._by_id)

    def is_registered(self, conn_id: ConnId) -> bool:
        conn = self._conns.get(conn_id)
        return conn is not None and conn.peer is not None

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
        """When `tick` next has something to do; None while nobody is connected
        and no pairing window is open."""
        deadlines = [self._deadline(c) for c in self._conns.values()]
        if (expiry := self._desk.next_deadline()) is not None:
            deadlines.append(expiry)
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
            actions += [self._send(cid, turn) for cid in self._by_id.values()]
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

    # -- the room key and pairing

    def set_key(self, room_key: str | None) -> None:
        """The room key from now on (pairing gave one, or a rotation). Sessions
        already sealed carry on; new ones need this key."""
        self._key = room_key

    def rekey(self, room_key: str, revoke: Sequence[str] = ()) -> list[Action]:
        """This peer rotates the key: every member but `revoke` hears it (in its
        own session, whose keys nobody else holds), the revoked are closed out,
        then the new key is the room's."""
        return self._rotate(room_key, list(revoke), by=None)

    def _rotate(self, room_key: str, revoke: list[str], by: ConnId | None) -> list[Action]:
        revoked = sorted(set(revoke) - {self._me.peer_id})
        actions: list[Action] = []
        shut = False
        for peer_id, cid in list(self._by_id.items()):
            if peer_id in revoked:
                actions.append(Close(cid, CloseCode.REVOKED, "revoked"))
                self._forget(cid)
                shut = True
            elif cid != by:
                actions.append(self._send(cid, Rekey(room_key=room_key, revoke=revoked)))
        for peer_id in revoked:  # refused from now on, whatever key they show
            self._revoked.pop(peer_id, None)
            self._revoked[peer_id] = None
        while len(self._revoked) > MAX_REMEMBERED_REVOKED:
            del self._revoked[next(iter(self._revoked))]
        self._key = room_key
        took = [self._me.peer_id, *self._by_id]
        if by is not None:  # a member's rotation: it hears the outcome, we take the key
            actions.append(self._send(by, Rekeyed(took=took, revoked=revoked)))
            actions.append(KeyRotated(room_key, revoked, took))
        if shut:
            actions += self._members_changed()
        return actions

    @property
    def pairing(self) -> Window | None:
        return self._desk.window

    def open_pairing(self, window: Window) -> list[Action]:
        self._desk.open(window)
        return [PairingUpdate("opened", window)]

    def close_pairing(self) -> list[Action]:
        return [PairingUpdate("closed", None)] if self._desk.close() else []

    def _pair(
        self, conn_id: ConnId, conn: _Conn, msg: PairHello | PairConfirm, now: float
    ) -> list[Action]:
        if self._key is None:
            return self._refuse(
                conn_id, "pairing_closed", "an open room has no key to pair with",
                CloseCode.REJECTED, "open room",
            )  # fmt: skip
        if isinstance(msg, PairHello):
            if msg.v != self._version:
                return self._wrong_room(conn_id, msg.v, msg.room)
            outcome = self._desk.hello(conn_id, conn.nonce, msg, now, conn.remote or "")
        else:
            outcome = self._desk.confirm(conn_id, msg, self._key, conn.remote or "")
        update = (
            [PairingUpdate(outcome.update, self._desk.window, outcome.address or None)]
            if outcome.update
            else []
        )
        if isinstance(outcome.reply, Refusal):
            close = (
                CloseCode.FORBIDDEN if outcome.reply.code == "wrong_code" else CloseCode.REJECTED
            )
            refusal = self._refuse(
                conn_id, outcome.reply.code, outcome.reply.message, close, "pairing"
            )
            return [*refusal, *update]
        if isinstance(msg, PairConfirm):  # the room key went: done
            self._forget(conn_id)
            return [
                Send(conn_id, outcome.reply),
                Close(conn_id, CloseCode.NORMAL, "paired"),
                *update,
            ]
        return [Send(conn_id, outcome.reply), *update]

    def set_known(self, records: Sequence[PeerRecord]) -> None:
        """What a `query` is answered: this peer's record, then its leader's."""
        self._known = list(records)[:MAX_ROOM_INFO]

    def admits_page(self, origin: str) -> bool:
        """Whether a WebSocket whose `Origin` is `origin` (a web page's) may open this
        signaling server: the room's own display page, `http://<address>:<port>` of a
        device of the room (serves_page), or a Tauri app's own page (APP_PAGE_ORIGINS:
        an app on iOS or Android, which runs a web peer). Native clients send no
        `Origin` and are not asked."""
        if origin in APP_PAGE_ORIGINS:
            return True
        try:
            parts = urllib.parse.urlsplit(origin)
            port = parts.port or 80
        except ValueError:
            return False
        return parts.scheme == "http" and self.serves_page(parts.hostname or "", port)

    def serves_page(self, address: str, port: int) -> bool:
        """Whether a device of the room serves its display page at `address:port`
        (this peer, a member, or a peer this one knows of): a browser's page may
        come only from there (the `Origin` of its WebSocket)."""
        devices: list[SignalPeer | PeerRecord] = [*self.members(), *self._known]
        return any(d.port == port and address in d.addresses for d in devices if d.port > 0)

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
        return [self._send(cid, msg)]

    # -- connection events

    def connect(self, conn_id: ConnId, now: float, remote: str | None = None) -> list[Action]:
        """A new connection; `remote`: the IPv4 address it comes from."""
        if conn_id in self._conns:
            raise ValueError(f"connection {conn_id} already known")
        conn = _Conn(
            nonce=self._nonce(),
            ephemeral=self._ephemeral(),
            opened_at=now,
            refilled=now,
            remote=remote,
        )
        self._conns[conn_id] = conn
        return [Send(conn_id, Challenge(nonce=conn.nonce, share=conn.ephemeral.share))]

    def disconnect(self, conn_id: ConnId, now: float) -> list[Action]:
        del now
        self._desk.forget(conn_id)
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
        """Close connections that never registered or stopped heartbeating, and
        a pairing window whose time is up."""
        actions: list[Action] = []
        if self._desk.expire(now):
            actions.append(PairingUpdate("expired", None))
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
        if not self._take_token(conn, now):
            return self._refuse(
                conn_id,
                "too_fast",
                f"more than {FRAME_RATE:.0f} frames per second",
                CloseCode.TOO_FAST,
                "too many frames",
            )
        if isinstance(frame, bytes):
            return [self._error(conn_id, "binary", "frames must be text (JSON)")]
        try:
            msg = decode_signal(frame)
        except msgspec.ValidationError as exc:  # before DecodeError: it is a subclass
            return [self._send(conn_id, _invalid(frame, exc))]
        except msgspec.DecodeError as exc:
            return [self._error(conn_id, "malformed", f"not valid JSON: {exc}")]
        if isinstance(msg, PairHello | PairConfirm) and conn.peer is None and conn.box is None:
            return self._pair(conn_id, conn, msg, now)  # a device without the key: never sealed
        if self._key is not None:
            opened = self._unseal(conn, msg)
            if isinstance(opened, tuple):  # intact, but not a valid frame
                return [self._send(conn_id, _invalid(*opened))]
            if opened is None:
                return self._refuse(
                    conn_id,
                    "forbidden",
                    "in this room every frame is sealed with the room's key",
                    CloseCode.FORBIDDEN,
                    "forbidden",
                )
            msg = opened
        elif isinstance(msg, Sealed):
            return [self._error(conn_id, "unexpected", "this room has no key: nothing is sealed")]
        if isinstance(msg, Relay):  # a channel's traffic: charged by its size
            cost = RELAY_COST + len(frame) / RELAY_BYTES_PER_FRAME
            conn.tokens = min(float(FRAME_BURST), conn.tokens + 1.0 - cost)
            if conn.tokens < 0.0:
                return self._refuse(
                    conn_id,
                    "too_fast",
                    "more relayed data than a channel ever carries",
                    CloseCode.TOO_FAST,
                    "relay flood",
                )
        if conn.peer is None:
            if isinstance(msg, Register):
                return self._register(conn_id, conn, msg, now)
            if isinstance(msg, Query):
                return self._answer(conn_id, msg)
            return self._refuse(
                conn_id,
                "not_registered",
                f"send register first (got {tag(msg)})",
                CloseCode.NOT_REGISTERED,
                "not registered",
            )
        return self._from_member(conn_id, conn.peer, conn, msg, now)

    def _take_token(self, conn: _Conn, now: float) -> bool:
        conn.tokens = min(FRAME_BURST, conn.tokens + (now - conn.refilled) * FRAME_RATE)
        conn.refilled = now
        if conn.tokens < 1.0:
            return False
        conn.tokens -= 1.0
        return True

    def _unseal(
        self, conn: _Conn, msg: SignalMessage
    ) -> SignalMessage | tuple[str, msgspec.ValidationError] | None:
        """The frame inside a keyed room's sealed frame; None when it is not
        sealed, not intact, not the next one, or itself sealed; its text and the
        validation error when it is intact but not a valid frame (answered
        `invalid`)."""
        if not isinstance(msg, Sealed) or self._key is None:
            return None
        if conn.box is None:
            if conn.peer is not None or msg.nonce is None or msg.share is None:
                return None
            try:
                box = open_session(
                    self._key,
                    self._room,
                    side="server",
                    mine=conn.ephemeral,
                    server_nonce=conn.nonce,
                    client_nonce=msg.nonce,
                    server_share=conn.ephemeral.share,
                    client_share=msg.share,
                )
            except ValueError:  # not a share
                return None
            first = box.open(msg.seq, msg.box)
            if first is None:
                return None  # (the box is kept only once a first frame opened)
            conn.box, body = box, first
            conn.binding = session_binding(msg.nonce, conn.ephemeral.share, msg.share)
        else:
            opened = conn.box.open(msg.seq, msg.box)
            if opened is None:
                return None
            body = opened
        try:
            inner = decode_signal(body)
        except msgspec.ValidationError as exc:  # before DecodeError: it is a subclass
            return body, exc
        except msgspec.DecodeError:
            return None
        return None if isinstance(inner, Sealed) else inner

    # -- rules

    def _answer(self, conn_id: ConnId, msg: Query) -> list[Action]:
        if refusal := self._wrong_room(conn_id, msg.v, msg.room):
            return refusal
        answer = self._send(conn_id, RoomInfo(records=self._known))
        self._forget(conn_id)
        return [answer, Close(conn_id, CloseCode.NORMAL, "answered")]

    def _wrong_room(self, conn_id: ConnId, v: int, room: str) -> list[Action]:
        if v != self._version:
            return self._refuse(
                conn_id,
                "wrong_version",
                f"protocol version {v} is not {self._version}",
                CloseCode.REJECTED,
                "wrong protocol version",
            )
        if room != self._room:
            return self._refuse(
                conn_id,
                "wrong_room",
                f"this leader serves another room, not {room!r}",
                CloseCode.REJECTED,
                "wrong room",
            )
        return []

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
        if refusal := self._wrong_room(conn_id, msg.v, msg.room):
            return refusal
        statement = registration_statement(conn.nonce, peer_id, msg.room, msg.seq, conn.binding)
        if peer_id_of(msg.identity) != peer_id or not verify(
            msg.identity, statement, msg.signature
        ):
            return self._refuse(
                conn_id,
                "bad_identity",
                "the peer id is not the key's, or the signature is wrong",
                CloseCode.FORBIDDEN,
                "bad identity",
            )
        listed = msg.peer.addresses
        if not listed and msg.peer.port == 0 and conn.remote is not None:
            listed = [conn.remote]  # a web peer does not know its own address
        addresses = self._reachable(listed, conn.remote)
        if not addresses:
            return self._refuse(
                conn_id,
                "bad_address",
                "no unicast address on this leader's networks",
                CloseCode.REJECTED,
                "no usable address",
            )
        if peer_id == self._me.peer_id:
            return self._refuse(
                conn_id,
                "id_conflict",
                "that peer id is the leader's own",
                CloseCode.REJECTED,
                "peer id conflict",
            )
        if peer_id in self._revoked:
            return self._refuse(
                conn_id,
                "revoked",
                "this device was shut out of the room",
                CloseCode.REVOKED,
                "revoked",
            )
        old = self._by_id.get(peer_id)
        from_there = sum(
            1
            for cid in self._by_id.values()
            if cid != old and conn.remote is not None and self._conns[cid].remote == conn.remote
        )
        if from_there >= MAX_MEMBERS_PER_ADDRESS:
            return self._refuse(
                conn_id,
                "too_many_members",
                f"{MAX_MEMBERS_PER_ADDRESS} members already registered from this address",
                CloseCode.REJECTED,
                "too many members",
            )

        actions: list[Action] = []
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
        conn.peer = msgspec.structs.replace(msg.peer, addresses=addresses)
        conn.seq = msg.seq
        conn.last_heartbeat = now  # registering counts as the first heartbeat
        self._by_id[peer_id] = conn_id
        members = self.members()
        reply = Registered(leader_id=self._me.peer_id, term=self._term, peers=members)
        actions.append(self._send(conn_id, reply))
        actions += self._broadcast(skip=conn_id)
        actions.append(MembersChanged(members))
        return actions

    def _from_member(
        self, conn_id: ConnId, peer: SignalPeer, conn: _Conn, msg: SignalMessage, now: float
    ) -> list[Action]:
        match msg:
            case Offer() | Answer() | Candidate() | Relay():
                return self._forward(conn_id, peer, msg)
            case Heartbeat():
                conn.last_heartbeat = now
                return [self._send(conn_id, HeartbeatAck(seq=msg.seq, term=self._term))]
            case Leave():
                if msg.peer_id != peer.peer_id:
                    return [self._error(conn_id, "spoofed", f"you are {peer.peer_id}")]
                self._forget(conn_id)
                return [Close(conn_id, CloseCode.NORMAL, "left"), *self._members_changed()]
            case Register():
                return [self._error(conn_id, "already_registered", f"already {peer.peer_id}")]
            case Rekey() if self._key is not None and conn.box is not None:
                if self._me.peer_id in msg.revoke:
                    return [self._error(conn_id, "invalid", "the leader cannot be revoked")]
                return self._rotate(msg.room_key, msg.revoke, by=conn_id)
            case _:  # a server's frame, a query, pairing, or a rekey of an open room
                return [self._error(conn_id, "unexpected", f"{tag(msg)} is not a member's frame")]

    def _forward(self, conn_id: ConnId, peer: SignalPeer, msg: PeerSignal) -> list[Action]:
        if msg.from_ != peer.peer_id:
            return [self._error(conn_id, "spoofed", f"from must be your own id {peer.peer_id}")]
        if msg.to == self._me.peer_id:
            return [Deliver(msg)]
        target = self._by_id.get(msg.to)
        if target is None:
            return [self._error(conn_id, "unknown_peer", f"{msg.to} is not in the room")]
        forwarded = self._send(target, msg)
        if isinstance(msg, Relay):
            return [Send(forwarded.conn_id, forwarded.msg, relay_from=conn_id)]
        return [forwarded]

    # -- helpers

    def _send(self, conn_id: ConnId, msg: SignalMessage) -> Send:
        """A frame to send: sealed, once the connection has a session."""
        conn = self._conns.get(conn_id)
        if conn is None or conn.box is None:
            return Send(conn_id, msg)
        seq, box = conn.box.seal(encode_signal(msg))
        return Send(conn_id, Sealed(seq=seq, box=box))

    def _error(self, conn_id: ConnId, code: str, message: str) -> Send:
        return self._send(conn_id, SignalError(code=code, message=message))

    def _reachable(self, addresses: Sequence[str], remote: str | None) -> list[str]:
        """The unicast addresses among `addresses` on this leader's networks, or
        the one the connection comes from."""
        kept: list[str] = []
        for text in addresses:
            address = ipaddress.IPv4Address(text)
            if address.is_multicast or address.is_loopback or address.is_unspecified:
                continue
            on_ours = any(address in net for net in self._networks)
            if self._networks and not on_ours and text != remote:
                continue
            if any(address == net.broadcast_address for net in self._networks):
                continue
            if text not in kept:
                kept.append(text)
        return kept

    def _refuse(
        self, conn_id: ConnId, code: str, message: str, close: CloseCode, reason: str
    ) -> list[Action]:
        # Plain, not sealed: a refusal may come before any session exists.
        was_member = self.is_registered(conn_id)
        self._forget(conn_id)
        gone = self._members_changed() if was_member else []
        return [
            *gone,
            Send(conn_id, SignalError(code=code, message=message)),
            Close(conn_id, close, reason),
        ]

    def _forget(self, conn_id: ConnId) -> None:
        conn = self._conns.pop(conn_id)
        if conn.peer is not None and self._by_id.get(conn.peer.peer_id) == conn_id:
            del self._by_id[conn.peer.peer_id]

    def _broadcast(self, skip: ConnId | None = None) -> list[Action]:
        msg = PeerList(leader_id=self._me.peer_id, term=self._term, peers=self.members())
        return [self._send(cid, msg) for cid in self._by_id.values() if cid != skip]

    def _members_changed(self) -> list[Action]:
        return [*self._broadcast(), MembersChanged(self.members())]


def _invalid(frame: str, exc: msgspec.ValidationError) -> SignalError:
    # msgspec reports an unknown tag as an invalid `$.type`; tell the two apart.
    with contextlib.suppress(msgspec.DecodeError):
        raw = msgspec.json.decode(frame)
        tag = raw.get("type") if isinstance(raw, dict) else None
        if isinstance(tag, str) and tag not in KNOWN_TAGS:
            return SignalError(code="unknown_type", message=f"unknown type {tag[:64]!r}")
    # Cap the echo: an unknown field's name comes from the sender and may be huge.
    return SignalError(code="invalid", message=str(exc)[:300])
