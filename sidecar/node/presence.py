"""Where this device is on the network, and what it announces there.

A `Presence` follows the interfaces (sidecar.core.netview decides; it reads
them every POLL_S and shortly after the kernel reports a change), binds the
signaling server and mDNS to the addresses in use (and anew when they
change), publishes our record when it changes (and, in a keyed room, often
enough that its signature stays fresh), and re-announces it every second
while we lead. What it sees goes up through `PresenceEvents` to the
membership (sidecar.node.membership), which owns the election: a presence
never decides anything about the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from sidecar.contract import PeerRecord
from sidecar.core import netview
from sidecar.core.netview import Attach, NetChange, NetView, Offline, Online

if TYPE_CHECKING:
    from sidecar.net.discovery import Discovery
    from sidecar.net.netifs import ChangeSignal
    from sidecar.net.signaling.server import SignalingServer

log = logging.getLogger(__name__)

LEADER_ANNOUNCE_S = 1.0
"""The leader re-announces its record this often. One small multicast packet
per room per second bounds how long the halves of a healed partition take to
find each other, however far the mDNS query backoff has grown meanwhile."""


class PresenceEvents(Protocol):
    def bound(self) -> None:
        """The signaling server is bound (anew): our entry may have changed."""

    def attached(self, addresses: list[str], lost: list[str]) -> None:
        """The server and mDNS are in use on `addresses` (`lost`: no longer)."""

    def offline(self) -> None:
        """No usable address, or none that can be bound: waiting for one."""

    def online(self) -> None:
        """The addresses in use are back (the same as before)."""

    def record_seen(self, record: PeerRecord) -> None:
        """An mDNS record of a peer of our room."""

    def record_gone(self, peer_id: str) -> None: ...

    def keyed_hint(self, addresses: list[str], port: int) -> None:
        """A keyed record of our room while we hold no key (we are pairing)."""

    def our_record(self) -> PeerRecord:
        """What we announce now."""

    def leading(self) -> bool: ...


class Presence:
    def __init__(
        self,
        *,
        room: str,
        wanted: tuple[str, ...] | None,
        signaling_port: int,
        events: PresenceEvents,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        self.room = room
        self.room_key: str | None = None
        self.net = NetView(wanted)
        self.server: SignalingServer | None = None
        """The signaling server it binds (the membership's)."""
        self.discovery: Discovery | None = None
        self.networks: tuple[ipaddress.IPv4Network, ...] = ()
        """The networks of the addresses in use: we talk to nothing outside them."""
        self.publish_needed = asyncio.Event()
        self._signaling_port = signaling_port
        self._events = events
        self._spawn = spawn
        self._lock = asyncio.Lock()
        self._snapshot: list[netview.Iface] = []
        self._read: Callable[[], list[netview.Iface]] = list
        self.closed = False

    @property
    def addresses(self) -> list[str]:
        """The addresses in use now (empty while offline)."""
        return list(self.net.attached) if self.net.online else []

    @property
    def online(self) -> bool:
        return self.net.online

    def on_our_networks(self, address: str) -> bool:
        ip = ipaddress.IPv4Address(address)
        return any(ip in net and ip != net.broadcast_address for net in self.networks)

    # ---------------------------------------------------------------- lifecycle

    async def open(self, read_interfaces: Callable[[], list[netview.Iface]]) -> None:
        """Read the interfaces and bind to the addresses there are (if any)."""
        self._read = read_interfaces
        self._snapshot = await asyncio.to_thread(read_interfaces)
        changes = self.net.observe(self._snapshot)
        if changes:
            await self._apply(changes)

    def run(self) -> None:
        """Start following the network, publishing and announcing."""
        self._spawn(self._announcer())
        self._spawn(self._publisher())
        self._spawn(self._netwatch())

    async def settle(self, timeout: float) -> None:
        """Wait (bounded) for an attach in progress to finish (it sees `closed`)."""
        self.closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._lock:
                pass

    def set_room_key(self, room_key: str | None) -> None:
        """Sign our record and check others' with this key from now on."""
        self.room_key = room_key
        if self.discovery is not None:
            self.discovery.set_room_key(room_key)
        self.publish_needed.set()

    def query(self) -> None:
        """Ask the room at once (and, leading, announce ourselves)."""
        if self.discovery is not None:
            with contextlib.suppress(RuntimeError):
                self.discovery.query()  # the room answers at once
                if self._events.leading():
                    self.discovery.announce()

    # ---------------------------------------------------------------- internals

    async def _netwatch(self) -> None:
        """Reads the interfaces every POLL_S, and SETTLE_S after the kernel
        reports a change. A reading that fails is logged and the next one tried."""
        from sidecar.net.netifs import ChangeSignal

        loop = asyncio.get_running_loop()
        reported = asyncio.Event()
        signal: ChangeSignal | None = ChangeSignal.open()
        if signal is not None:

            def readable(sig: ChangeSignal = signal) -> None:
                sig.drain()
                reported.set()

            loop.add_reader(signal.fileno(), readable)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(netview.POLL_S):
                        await reported.wait()
                if reported.is_set():
                    await asyncio.sleep(netview.SETTLE_S)
                    reported.clear()
                try:
                    self._snapshot = snapshot = self._read()
                    changes = self.net.observe(snapshot)
                    if changes:
                        await self._apply(changes)
                except Exception:
                    log.exception("network: reading or following the interfaces failed")
        finally:
            if signal is not None:
                loop.remove_reader(signal.fileno())
                signal.close()

    async def _apply(self, changes: list[NetChange]) -> None:
        async with self._lock:
            for change in changes:
                if self.closed:
                    return
                if isinstance(change, Attach):
                    await self._attach(change)
                elif isinstance(change, Offline):
                    log.warning("network: no usable address; waiting for one")
                    self._events.offline()
                elif isinstance(change, Online):
                    log.info("network: back on %s", ", ".join(self.net.attached))
                    self._events.online()

    async def _attach(self, change: Attach) -> None:
        """Bind the server and mDNS to `change.addresses` (first time or anew)."""
        from sidecar.net.discovery import Discovery

        server = self.server
        assert server is not None
        addresses = list(change.addresses)
        first = server.port is None
        log.info("network: using %s%s", ", ".join(addresses), "" if first else " (changed)")
        old = self.discovery
        self.discovery = None
        self.networks = netview.subnets(self._snapshot, addresses)
        server.set_networks(self.networks)
        try:
            if first:
                await server.bind(addresses, self._signaling_port)
            else:
                await server.rebind(addresses)
            self._events.bound()
            if old is not None:
                await old.close(goodbye=False)
            discovery = Discovery(
                room=self.room,
                interfaces=addresses,
                on_seen=self._events.record_seen,
                on_gone=self._events.record_gone,
                room_key=self.room_key,
                on_keyed=self._events.keyed_hint,
            )
            await discovery.start(self._events.our_record())
        except OSError as exc:
            log.warning("network: cannot use %s yet (%s); trying again", addresses, exc)
            self.net.attach_failed()
            self._events.offline()
            return
        self.discovery = discovery
        self.publish_needed.set()
        self._events.attached(addresses, list(change.lost))

    async def _announcer(self) -> None:
        while True:
            await asyncio.sleep(LEADER_ANNOUNCE_S)
            if self._events.leading() and self.net.online and self.discovery is not None:
                with contextlib.suppress(RuntimeError):  # being replaced
                    self.discovery.announce()

    async def _publisher(self) -> None:
        """Publishes our record when it changed, coalescing rapid changes; in a
        keyed room also every RESIGN_S / 2, so its signature stays fresh."""
        from sidecar.core.txt import RESIGN_S

        published: tuple[Discovery, PeerRecord] | None = None
        while True:
            keyed = self.room_key is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESIGN_S / 2 if keyed else None):
                    await self.publish_needed.wait()
            resign = not self.publish_needed.is_set()
            self.publish_needed.clear()
            discovery, record = self.discovery, self._events.our_record()
            if discovery is None or (published == (discovery, record) and not resign):
                continue
            try:
                await discovery.update(record)
            except Exception as exc:  # it must keep publishing what comes next
                log.warning("mDNS: could not publish our record: %r", exc)
                continue
            published = (discovery, record)
