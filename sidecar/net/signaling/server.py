"""The signaling server every peer binds (aiohttp); it serves while its peer leads."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import itertools
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
import msgspec
from aiohttp import WSMsgType, web

from sidecar.compat.web import watched_server
from sidecar.contract import PeerRecord, PeerSignal, Rekey, SignalError, SignalPeer
from sidecar.core.admission import Admission
from sidecar.core.clock import overslept
from sidecar.core.connqueue import ConnQueue, Verdict
from sidecar.core.pairing import Window
from sidecar.core.registry import (
    Action,
    Close,
    Deliver,
    KeyRotated,
    MembersChanged,
    PairingUpdate,
    RoomRegistry,
    Send,
)
from sidecar.core.signaling import (
    CLOSE_TIMEOUT_S,
    HEARTBEAT_GRACE_S,
    HEARTBEAT_INTERVAL_S,
    MAX_FRAME_BYTES,
    MISSED_LIMIT,
    REGISTER_TIMEOUT_S,
    SIGNAL_PATH,
    CloseCode,
    ConnId,
    call_safely,
    encode_signal,
)
from sidecar.net.signaling.static import page_response, static_response

log = logging.getLogger("sidecar.signaling")
_T = TypeVar("_T")

SEND_TIMEOUT_S = 5.0
"""A peer whose socket accepts nothing for this long is cut off."""
BIND_ATTEMPTS = 5


# ----------------------------------------------------------------- server


@dataclass(slots=True, eq=False)
class _Link:
    """One accepted WebSocket and the queue its writer task drains in order."""

    ws: web.WebSocketResponse
    request: web.BaseRequest
    outbox: asyncio.Queue[str | Close | tuple[str, ConnId]] = field(default_factory=asyncio.Queue)
    writer: asyncio.Task[None] | None = None
    closing: bool = False
    counts: ConnQueue = field(default_factory=ConnQueue)

    def put(self, item: str | Close, relay_from: ConnId | None = None) -> bool:
        """Queue a frame; False (nothing queued) when it is a relay frame whose
        sender must be cut off instead (sidecar/core/connqueue.py)."""
        if self.closing:
            return True
        if isinstance(item, Close):
            self.closing = True
            self.outbox.put_nowait(item)
            return True
        verdict = self.counts.offer(len(item), relay_from)
        if verdict is Verdict.CUT_SENDER:
            return False
        if verdict is Verdict.CUT_RECEIVER:
            # Its socket is full and its backlog too: a stuck peer cannot even
            # take a close frame, so cut the TCP connection.
            log.warning("signaling: peer too slow, cutting it off")
            self.abort()
            return True
        self.outbox.put_nowait((item, relay_from) if relay_from is not None else item)
        return True

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
        on_pairing: Callable[[PairingUpdate], None] = lambda _: None,
        on_rekey: Callable[[Rekey], None] = lambda _: None,
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
        self._on_pairing = on_pairing
        self._on_rekey = on_rekey
        self._links: dict[ConnId, _Link] = {}
        self._ids = itertools.count(1)
        self._runner: web.ServerRunner | None = None
        self._admission = Admission()
        self._transports: dict[Hashable, asyncio.BaseTransport] = {}
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
        server = watched_server(self._route, self, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=CLOSE_TIMEOUT_S)
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
        self, runner: web.ServerRunner, addresses: list[str], port: int
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

    def set_key(self, room_key: str | None) -> None:
        self._registry.set_key(room_key)

    def rekey(self, room_key: str, revoke: Sequence[str] = ()) -> list[str]:
        """Rotate: the members but `revoke` hear the new key, which is the room's
        from now on; the revoked are closed out. Returns who holds it now."""
        self._apply(self._registry.rekey(room_key, revoke))
        return [m.peer_id for m in self._registry.members()]

    @property
    def pairing(self) -> Window | None:
        return self._registry.pairing

    def open_pairing(self, window: Window) -> None:
        self._apply(self._registry.open_pairing(window))

    def close_pairing(self) -> None:
        self._apply(self._registry.close_pairing())

    def set_known(self, records: Sequence[PeerRecord]) -> None:
        """What a rendezvous `query` is answered (this peer's record, its leader's)."""
        self._registry.set_known(records)

    def set_networks(self, networks: Sequence[ipaddress.IPv4Network]) -> None:
        """The networks we are on: members' addresses must be on one of them."""
        self._registry.set_networks(networks)

    def send_local(self, msg: PeerSignal) -> None:
        """Queue a signal from this (leading) peer to a member; KeyError if unknown."""
        self._apply(self._registry.send_local(msg))

    # -- I/O

    # -- connections, bounded before any HTTP is read (sidecar/core/admission.py)

    def accepted(self, handler: web.RequestHandler, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        verdict = self._admission.opened(handler, address, time.monotonic())
        for evicted in verdict.evict:
            if (old := self._transports.pop(evicted, None)) is not None:
                _abort(old)
        if not verdict.admit:
            if self._admission.refused % 100 == 1:
                log.warning("signaling: refusing connections from %s (too many)", address)
            _abort(transport)
            return
        self._transports[handler] = transport
        self._wake.set()  # a handshake deadline to watch

    def gone(self, handler: web.RequestHandler) -> None:
        self._admission.closed(handler)
        self._transports.pop(handler, None)

    def _expire_handshakes(self, now: float) -> None:
        for late in self._admission.expired(now):
            if (transport := self._transports.pop(late, None)) is not None:
                _abort(transport)

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET" and request.path == SIGNAL_PATH:
            origin = request.headers.get("Origin")
            if origin is not None and not self._registry.admits_page(origin):
                # A page from elsewhere (a web site on a congregant's phone) may not
                # join: native clients send no Origin, the room's pages their device's,
                # a Tauri app's pages its own (core/registry.py, APP_PAGE_ORIGINS).
                log.info("signaling: refused a WebSocket from a page at %r", origin[:200])
                return page_response(403, "Only the room's own pages may join.")
            return await self._handle(request)
        page = static_response(request)  # the display page, for web peers
        return page if page is not None else page_response(404, "Not found.")

    async def _handle(self, request: web.BaseRequest) -> web.WebSocketResponse:
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
        member = False
        try:
            self._apply(self._registry.connect(conn_id, time.monotonic(), request.remote))
            async for frame in ws:
                if frame.type is WSMsgType.TEXT or frame.type is WSMsgType.BINARY:
                    self._apply(self._registry.receive(conn_id, frame.data, time.monotonic()))
                    if not member and self._registry.is_registered(conn_id):
                        member = True
                        self._admission.registered(request.protocol)
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
                text, sender = item if isinstance(item, tuple) else (item, None)
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await link.ws.send_str(text)
                link.counts.sent(len(text), sender)
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
                        relay_from = action.relay_from
                        if not link.put(encode_signal(msg), relay_from) and relay_from is not None:
                            self._cut_flooder(relay_from)
                case Close(conn_id, code, reason):
                    log.debug("signaling: %d: closing %d %s", conn_id, code, reason)
                    if link := self._links.get(conn_id):
                        link.put(action)
                case Deliver(msg):
                    self._call(self._on_deliver, msg)
                case MembersChanged(members):
                    self._call(self._on_members_changed, members)
                case PairingUpdate():
                    self._call(self._on_pairing, action)
                case KeyRotated(room_key, revoked):
                    self._call(self._on_rekey, Rekey(room_key=room_key, revoke=revoked))
        self._wake.set()  # deadlines may have moved

    def _cut_flooder(self, conn_id: ConnId) -> None:
        """A member relays more than its receiver takes: it goes, the receiver stays."""
        sender = self._links.get(conn_id)
        if sender is not None and not sender.closing:
            log.warning("signaling: %d relays more than its peer can take: cutting it off", conn_id)
            sender.put(Close(conn_id, CloseCode.TOO_FAST, "relay flood"))

    def _call(self, callback: Callable[[_T], None], arg: _T) -> None:
        if not self._closed:  # the owner is shutting down; spare it late news
            call_safely(callback, arg)

    async def _tick_loop(self) -> None:
        while True:
            self._wake.clear()
            deadline = self._registry.next_deadline()
            handshakes = self._admission.next_deadline()
            if handshakes is not None:
                self._expire_handshakes(time.monotonic())
                handshakes = self._admission.next_deadline()
            due = [d for d in (deadline, handshakes) if d is not None]
            delay = min(due) - time.monotonic() if due else None
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


def _abort(transport: asyncio.BaseTransport) -> None:
    """Close a TCP connection at once (a reset, no goodbye)."""
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    else:
        transport.close()
