"""mDNS discovery (docs/protocol.md, "Discovery"): the zeroconf adapter.

The TXT codec is `sidecar.core.txt` (pure). `Discovery` is the thin I/O adapter. It
registers this peer as `<peer_id>._mobile-worship._tcp.local.` on the given IPv4
interfaces, browses
the type, and reports every received announcement of another peer of the same
room and protocol version through `on_seen`, also when nothing changed (the
leader's periodic re-announce relies on that), and goodbyes through `on_gone`.
A record is a hint, never proof of life.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from zeroconf import (
    IPVersion,
    RecordUpdate,
    RecordUpdateListener,
    ServiceInfo,
    Zeroconf,
    current_time_millis,
)
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from sidecar.compat.zc import (
    DNSAddress,
    DNSPointer,
    DNSRecord,
    DNSService,
    DNSText,
    drop_registrations,
    force_close,
    ptr_query,
    purge_instances,
)
from sidecar.contract import PeerRecord
from sidecar.core.records import Ignored, KeyedHint, accept
from sidecar.core.txt import DNS_LABEL, encode_txt, parse_txt

log = logging.getLogger(__name__)

SERVICE_TYPE = "_mobile-worship._tcp.local."
_TYPE_KEY = SERVICE_TYPE.lower()
_INSTANCE_SUFFIX = "." + _TYPE_KEY

CLOSE_TIMEOUT_S = 0.8
"""Bound for `close()`: the goodbyes take 0.25 s (3 sends, 125 ms apart)."""

RESOLVE_TIMEOUT_MS = 2000
"""How long to query for the missing parts of an incomplete record."""
MAX_RESOLVES = 8
"""Incomplete records resolved at once. A flood of forged names must cost a
constant amount of work per packet: beyond this, an incomplete record waits
for its next announcement (a live peer's comes soon; a forged one's never)."""
MAX_KNOWN = 128
"""Peers remembered (the oldest go first)."""
QUERY_S = 60.0
"""The room is asked to answer this often (besides the leader's announcements
every second), so a peer whose announcement was lost is seen again."""
PURGE_S = 2.0
"""How often the records of instances we do not know are dropped from
zeroconf's cache (a flood of forged ones must not hold memory)."""

# ------------------------------------------------------------------ the adapter


@dataclass
class _Heard:
    """What one response packet said about one service instance."""

    name: str
    srv: DNSService | None = None
    txt: DNSText | None = None


class _Listener(RecordUpdateListener):
    """Receives every record of every response (not only changes, unlike the
    browser) and hands them to the Discovery; never lets an error escape into
    zeroconf's packet processing."""

    def __init__(self, owner: Discovery) -> None:
        self._owner = owner

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        try:
            self._owner._ingest(zc, now, records)
        except Exception:
            log.exception("mDNS: failed to process a response")

    def async_update_records_complete(self) -> None:
        try:
            self._owner._flush()
        except Exception:
            log.exception("mDNS: failed to process a response")


_R = TypeVar("_R", bound=DNSRecord)


def _newest(kind: type[_R], records: Iterable[DNSRecord], now: float) -> list[_R]:
    """The live records of one kind, newest first. A record superseded by a cache
    flush expires within 1 s, so the latest expiry is the latest current one."""
    live = [r for r in records if isinstance(r, kind) and not r.is_expired(now)]
    return sorted(live, key=lambda r: r.created + r.ttl * 1000.0, reverse=True)


def _ipv4(record: DNSAddress) -> str | None:
    return socket.inet_ntoa(record.address) if len(record.address) == 4 else None


class Discovery:
    """The zeroconf adapter: announce this peer, report the others of the room.

    Callbacks run on the event loop, from zeroconf's packet processing: keep
    them short. `on_seen` fires for every received announcement of a peer of
    this room and protocol version (duplicates included), `on_gone` with the
    peer id when it says goodbye or its PTR record expires.

    Two limits of zeroconf underneath:

    * It drops a packet byte-identical to one it processed less than 0.8 s
      before, so an unchanged record announced more often than that is seen
      at most once per 0.8 s (a 1 s announce period is fine).
    * It sends only on `interfaces` and joins the mDNS group only there, but
      its listening socket is bound to 0.0.0.0:5353: on Linux, when another
      socket of the host (avahi, another mDNS stack) joined the group on some
      other interface, that interface's mDNS reaches us too. (Setting
      IP_MULTICAST_ALL to 0 would stop that, but with zeroconf's SO_REUSEPORT
      the kernel then hands group traffic to an arbitrary socket of the
      reuseport group, other processes' included: worse.)
    """

    def __init__(
        self,
        *,
        room: str,
        interfaces: list[str],
        on_seen: Callable[[PeerRecord], None],
        on_gone: Callable[[str], None],
        room_key: str | None = None,
        on_keyed: Callable[[list[str], int], None] | None = None,
    ) -> None:
        if not interfaces:
            raise ValueError("interfaces: at least one IPv4 address is needed")
        self._interfaces = [str(ipaddress.IPv4Address(a)) for a in interfaces]
        self._room = room
        self._room_key = room_key
        self._on_seen = on_seen
        self._on_gone = on_gone
        self._on_keyed = on_keyed
        self._aiozc: AsyncZeroconf | None = None
        self._listener: _Listener | None = None
        self._me: PeerRecord | None = None
        self._info: ServiceInfo | None = None
        self._own_key = ""
        self._known: dict[str, PeerRecord] = {}  # peer id -> last record
        self._peer_of: dict[str, str] = {}  # instance key -> peer id
        self._resolving: dict[str, asyncio.Task[None]] = {}  # instance key -> query task
        self._broadcasts: set[asyncio.Future[Any]] = set()
        # What the packet being processed says; filled by _ingest, emptied by _flush.
        self._heard: dict[str, _Heard] = {}  # instance key -> records
        self._heard_addresses: dict[str, list[DNSAddress]] = {}  # server key -> A records
        self._said_goodbye: set[str] = set()
        self._purger: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ public

    def set_room_key(self, room_key: str | None) -> None:
        """Sign our record and check others' with this key from now on (pairing
        gave one, or the room's key was rotated); `update` publishes anew."""
        self._room_key = room_key

    @property
    def interfaces(self) -> list[str]:
        return list(self._interfaces)

    def known(self) -> dict[str, PeerRecord]:
        """The live records by peer id: reported seen and not gone since."""
        return dict(self._known)

    async def start(self, me: PeerRecord) -> None:
        """Open mDNS on the interfaces, browse, and announce `me` at once.

        Raises ValueError for a record that cannot be announced and OSError when
        no interface could be opened.
        """
        if self._aiozc is not None or self._closed:
            raise RuntimeError("Discovery.start: already started")
        if not DNS_LABEL.fullmatch(me.peer_id):
            raise ValueError(f"peer_id: {me.peer_id!r} is not a DNS label")
        info = self._service_info(me)
        self._me, self._info = me, info
        self._own_key = info.key
        self._aiozc = AsyncZeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
        zc = self._aiozc.zeroconf
        # Listen before the first await lets zeroconf read its sockets: in a room
        # started together, another peer's first announcement can arrive during our
        # start-up, and zeroconf drops its two repeats as duplicate packets.
        self._listener = _Listener(self)
        zc.async_add_listener(self._listener, None)
        try:
            await zc.async_wait_for_start()
            if self._closed:
                raise RuntimeError("Discovery closed while starting")
            if not zc.engine.senders:
                raise OSError(f"mDNS: no socket could be opened on {self._interfaces}")
            # No probing: instance names are UUIDs, so they cannot conflict, and a
            # room started together must see each other within a few hundred ms.
            # The first of the three announcements goes out now.
            done = await self._aiozc.async_register_service(info, cooperating_responders=True)
            self._track(done)
            # Ask now for the peers already there rather than after a browser's
            # 20-120 ms anti-synchronisation delay (RFC 6762 5.2): a room is a handful
            # of peers, and a joiner must find its leader quickly.
            self.query()
            self._purger = asyncio.get_running_loop().create_task(self._maintain())
        except BaseException:
            await self.close()
            raise

    def query(self, unicast: bool = True) -> None:
        """Ask every peer of the type to answer now: on start and when the network
        is back QU (the answers come back unicast, at once), and QM every QUERY_S."""
        self._started().zeroconf.async_send(ptr_query(SERVICE_TYPE, unicast))

    async def update(self, me: PeerRecord) -> None:
        """Announce a changed record (TXT and port) at once, then twice more."""
        aiozc = self._started()
        if self._me is not None and me.peer_id != self._me.peer_id:
            raise ValueError("peer_id: cannot change while announced")
        info = self._service_info(me)
        # An older record's pending repeats would announce it again after this one.
        self._cancel_broadcasts()
        self._me, self._info = me, info
        self._track(await aiozc.async_update_service(info))

    def announce(self) -> None:
        """Send our current record once, now, unsolicited (the leader's heartbeat
        on mDNS: it reaches a healed partition whatever its query backoff)."""
        aiozc = self._started()
        assert self._info is not None
        zc = aiozc.zeroconf
        zc.async_send(zc.generate_service_broadcast(self._info, None))

    async def close(self, goodbye: bool = True) -> None:
        """Say goodbye (others learn at once) and stop, in under a second even if
        something hangs. Leaves no zeroconf task, timer or socket behind.
        Idempotent. `goodbye=False`: the peer stays, on other sockets (its
        addresses changed), so the others must not hear that it left."""
        if self._closed:
            return
        self._closed = True
        aiozc, self._aiozc = self._aiozc, None
        if aiozc is not None and not goodbye:
            drop_registrations(aiozc.zeroconf)
        pending: list[asyncio.Future[Any]] = [*self._resolving.values(), *self._broadcasts]
        if self._purger is not None:
            pending.append(self._purger)
        self._resolving.clear()
        self._broadcasts.clear()
        for future in pending:
            future.cancel()
        self._known.clear()
        self._peer_of.clear()
        zc = aiozc.zeroconf if aiozc is not None else None
        if zc is not None and self._listener is not None:
            zc.async_remove_listener(self._listener)
        self._listener = None
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.gather(*pending, return_exceptions=True)
                if aiozc is not None:
                    await aiozc.async_close()  # goodbyes, then sockets
        except TimeoutError:
            log.warning("mDNS: closing took over %.1f s; closed without waiting", CLOSE_TIMEOUT_S)
            if zc is not None:
                force_close(zc)
        except BaseException:
            if zc is not None:
                force_close(zc)
            raise

    # ---------------------------------------------------------------- internals

    async def _maintain(self) -> None:
        """Every PURGE_S, drop what zeroconf cached of instances we do not know;
        every QUERY_S, ask the room again (what a zeroconf browser would do,
        without its per-name refresh schedule, which a flood of forged names
        would grow for as long as their TTLs say)."""
        ticks = 0
        while True:
            await asyncio.sleep(PURGE_S)
            aiozc = self._aiozc
            if aiozc is None:
                return
            ticks += 1
            if ticks % round(QUERY_S / PURGE_S) == 0:
                with contextlib.suppress(Exception):
                    self.query(unicast=False)
            keep = {key[: -len(_INSTANCE_SUFFIX)] for key in [*self._peer_of, *self._resolving]}
            keep.add(self._own_key[: -len(_INSTANCE_SUFFIX)])
            try:
                dropped = purge_instances(aiozc.zeroconf, SERVICE_TYPE, keep)
            except Exception:  # an internals change: log it, keep the peer running
                log.exception("mDNS: purging the cache failed")
                return
            if dropped:
                log.debug("mDNS: dropped %d cached records of unknown instances", dropped)

    def _started(self) -> AsyncZeroconf:
        if self._aiozc is None:
            raise RuntimeError("Discovery is not started (or already closed)")
        return self._aiozc

    def _service_info(self, me: PeerRecord) -> ServiceInfo:
        # Signed with what is really advertised: these addresses, this port.
        me = msgspec.structs.replace(me, addresses=tuple(self._interfaces))
        return ServiceInfo(
            SERVICE_TYPE,
            f"{me.peer_id}.{SERVICE_TYPE}",
            port=me.port,
            properties=encode_txt(me, self._room_key, _now_ms()),
            server=f"{me.peer_id}.local.",
            parsed_addresses=self._interfaces,  # never what the host name resolves to
        )

    def _track(self, future: Any) -> None:
        if isinstance(future, asyncio.Future):
            self._broadcasts.add(future)
            future.add_done_callback(self._broadcasts.discard)

    def _cancel_broadcasts(self) -> None:
        for future in list(self._broadcasts):
            future.cancel()
        self._broadcasts.clear()

    def _heard_of(self, name: str) -> _Heard:
        key = name.lower()
        heard = self._heard.get(key)
        if heard is None:
            heard = self._heard[key] = _Heard(name)
        return heard

    def _ingest(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        """Note what one response says about instances of our type (before the
        cache takes it in); `_flush` acts on it once the cache has it."""
        for update in records:
            record = update.new
            if isinstance(record, DNSPointer):
                if record.key != _TYPE_KEY:
                    continue
                if record.is_expired(now):  # a goodbye, or expired from the cache
                    self._said_goodbye.add(record.alias.lower())
                else:
                    self._heard_of(record.alias)
            elif isinstance(record, DNSService | DNSText):
                if not record.key.endswith(_INSTANCE_SUFFIX):
                    continue
                if record.ttl == 0:  # a goodbye (a cache expiry keeps its ttl)
                    if isinstance(record, DNSService):
                        self._said_goodbye.add(record.key)
                elif not record.is_expired(now):
                    heard = self._heard_of(record.name)
                    if isinstance(record, DNSService):
                        heard.srv = record
                    else:
                        heard.txt = record
            elif isinstance(record, DNSAddress) and not record.is_expired(now):
                # An address alone still comes from the peer: report its services.
                for service in zc.cache.async_entries_with_server(record.name):
                    if isinstance(service, DNSService) and service.key.endswith(_INSTANCE_SUFFIX):
                        self._heard_of(service.name)
                self._heard_addresses.setdefault(record.key, []).append(record)

    def _flush(self) -> None:
        heard, self._heard = self._heard, {}
        in_packet, self._heard_addresses = self._heard_addresses, {}
        gone, self._said_goodbye = self._said_goodbye, set()
        if self._closed or self._aiozc is None:
            return
        for key in gone:
            self._forget(key)
        zc = self._aiozc.zeroconf
        now = current_time_millis()
        for key, what in heard.items():
            if key in gone or key == self._own_key or not key.endswith(_INSTANCE_SUFFIX):
                continue
            self._report(zc, key, what, in_packet, now)

    def _report(
        self,
        zc: Zeroconf,
        key: str,
        what: _Heard,
        in_packet: dict[str, list[DNSAddress]],
        now: float,
    ) -> None:
        """Report an instance from this packet, completed from the cache (the
        packet first: the cache may briefly hold the superseded TXT too); query
        for what is still missing."""
        cached = zc.cache.async_entries_with_name(key)
        srv = what.srv or next(iter(_newest(DNSService, cached, now)), None)
        txt = what.txt or next(iter(_newest(DNSText, cached, now)), None)
        addresses: list[str] = []
        if srv is not None:
            records = in_packet.get(srv.server_key) or _newest(
                DNSAddress, zc.cache.async_entries_with_name(srv.server), now
            )
            for record in records:
                if (ip := _ipv4(record)) is not None and ip not in addresses:
                    addresses.append(ip)
        if srv is None or txt is None or not addresses:
            self._resolve(what.name)
            return
        self._accept(key, srv.name, parse_txt(txt.text), addresses, srv.port)

    def _accept(
        self,
        key: str,
        name: str,
        properties: dict[bytes, bytes | None],
        addresses: list[str],
        port: int,
    ) -> None:
        label = name[: -len(_INSTANCE_SUFFIX)]
        verdict = accept(
            properties,
            addresses,
            port,
            label=label,
            room=self._room,
            room_key=self._room_key,
            pairing=self._on_keyed is not None,
            now_ms=_now_ms(),
        )
        if verdict is None:
            return
        if isinstance(verdict, KeyedHint):
            if self._on_keyed is not None:
                self._on_keyed(verdict.addresses, verdict.port)
            return
        if isinstance(verdict, Ignored):
            self._ignore(key, label, verdict.reason, verdict.detail)
            return
        record = verdict.record
        previous = self._peer_of.get(key)
        if previous is not None and previous != record.peer_id:  # cannot happen: id == label
            self._forget(key)
        self._peer_of[key] = record.peer_id
        self._known.pop(record.peer_id, None)  # re-inserted last: the newest
        self._known[record.peer_id] = record
        while len(self._known) > MAX_KNOWN:
            oldest = next(iter(self._known))
            del self._known[oldest]
            for instance in [k for k, p in self._peer_of.items() if p == oldest]:
                del self._peer_of[instance]
        try:
            self._on_seen(record)
        except Exception:
            log.exception("mDNS: on_seen failed")

    def _ignore(self, key: str, label: str, reason: str, detail: str) -> None:
        log.debug(
            "mDNS: ignoring %s (%s)",
            label,
            detail,
            extra={"mdns_ignored": reason, "peer_id": label},
        )
        if key in self._peer_of:  # was one of ours, now is not: as good as gone
            self._forget(key)

    def _forget(self, key: str) -> None:
        task = self._resolving.pop(key, None)
        if task is not None:
            task.cancel()
        peer_id = self._peer_of.pop(key, None)
        if peer_id is None or self._known.pop(peer_id, None) is None:
            return
        try:
            self._on_gone(peer_id)
        except Exception:
            log.exception("mDNS: on_gone failed")

    def _resolve(self, name: str) -> None:
        key = name.lower()
        if key in self._resolving or self._aiozc is None:
            return
        if len(self._resolving) >= MAX_RESOLVES:
            log.debug(
                "mDNS: %d resolves running; %s waits for its next announcement", MAX_RESOLVES, name
            )
            return
        task = asyncio.get_running_loop().create_task(self._query(self._aiozc.zeroconf, name))
        self._resolving[key] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._resolving.get(key) is finished:
                del self._resolving[key]

        task.add_done_callback(done)

    async def _query(self, zc: Zeroconf, name: str) -> None:
        """Ask for the missing records of one instance (bounded). The answer also
        reaches the listener; reporting it here too covers split answers."""
        try:
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if not await info.async_request(zc, RESOLVE_TIMEOUT_MS):
                log.debug("mDNS: %s did not resolve", name)
                return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("mDNS: resolving %s failed: %r", name, exc)
            return
        if self._closed or info.port is None:
            return
        addresses = info.parsed_addresses(IPVersion.V4Only)
        self._accept(name.lower(), info.name, parse_txt(info.text), addresses, info.port)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
