"""One logical `live-control` channel to one peer, over a replaceable transport.

A `Link` is what the host sees as "connected to that peer". Underneath it
runs one `Transport` at a time; when the network path of that transport dies
(an address of either side went away), the offering side negotiates a new one
(`epoch` + 1) and the channel carries on: the delivery rules of
`sidecar.core.delivery` resend, in order, what the old transport lost, and the
host sees no disconnection. A link that cannot get a working transport in
time is down, and reports every message it sent that was never acknowledged.

Liveness is our own ping (every 2 s, 3 missed: `timeout`): ICE consent checks
would take ~30 s. Flow control is the send window of `sidecar.core.flow`.

Events go up through `LinkEvents`; the owner (`sidecar.net.channels.Channels`)
decides what a link's end means for the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec

from sidecar.compat.rtc import RTCConfiguration
from sidecar.contract import (
    MAX_PAYLOAD_BYTES,
    RELAY_SDP,
    AckEnvelope,
    Answer,
    ByeEnvelope,
    ControlEnvelope,
    DisconnectReason,
    Offer,
    PingEnvelope,
    PongEnvelope,
    SignalPeer,
    StateEnvelope,
    SyncEnvelope,
    decode_envelope,
)
from sidecar.core.clock import overslept
from sidecar.core.delivery import Inbox, Outbox, Sent
from sidecar.core.flow import ACK_DELAY_S, ACK_STALL_S, WINDOW_DATAGRAMS, datagrams
from sidecar.net.transport import AnyTransport, RelayTransport, Transport, TransportEnd

log = logging.getLogger(__name__)

PING_INTERVAL_S = 2.0
MISSED_PINGS = 3
CONNECT_TIMEOUT_S = 10.0
"""A new link that has not opened by then is failed (and retried while wanted)."""
MIGRATE_S = 5.0
"""A link whose path died must have a new transport by then, or it is down."""
OFFER_RESEND_S = 1.0
"""An offer not answered is sent again this often: the leader may have changed,
or the other side may have registered anew, while it was on its way."""
_WATCH_S = 0.25
PROBE_S = 1.0
RELAY_AFTER_S = 3.0
UPGRADE_EVERY_S = 10.0
"""While a channel goes through the leader, the offerer tries a direct path
this often (make before break: the relay carries on until the direct one opens)."""
UPGRADE_WINDOW_S = 6.0
"""A direct path that has not opened in this long is given up until the next try."""
"""A channel to a web peer that has not opened by then goes through the leader."""
MAX_MESSAGE_BYTES = MAX_PAYLOAD_BYTES + 2048
"""Largest data-channel message taken: a 64 KiB payload and its envelope. aiortc
does not enforce the size it advertises; a larger message is a broken or
hostile peer, and ends the channel."""
MAX_UNACKED_DATAGRAMS = WINDOW_DATAGRAMS + datagrams(MAX_MESSAGE_BYTES)
"""What a sender may have unacknowledged: its window, plus one large message
that went alone. More means it ignores the window: the channel ends."""
"""A path whose state cannot be read is pinged after a network change; no answer
within this time counts as a dead path."""

LinkState = Literal["connecting", "connected", "disconnected"]

_encoder = msgspec.json.Encoder()


class LinkEvents(Protocol):
    def link_up(self, link: Link) -> None: ...
    def link_down(self, link: Link, reason: DisconnectReason, unacked: list[str]) -> None: ...
    def link_message(self, link: Link, envelope: ControlEnvelope | StateEnvelope) -> None: ...
    def link_idle(self, link: Link) -> None:
        """Nothing waits to be sent: what was held back may go now."""
        ...

    def link_signal(self, link: Link, msg: Offer | Answer) -> bool:
        """Hand an offer or answer to the signaling path; False: no route now."""
        ...

    def link_relay(self, link: Link, epoch: int, text: str) -> bool:
        """Carry a message of a relay transport through the leader; False: no route."""
        ...

    def host_busy(self) -> bool:
        """Our host is not reading what we give it: hold back acks (the senders
        then wait, rather than our memory grow)."""
        ...


def new_link_id() -> str:
    return secrets.token_hex(8)


@dataclass
class _Pending:
    future: asyncio.Future[float]
    sent: float


@dataclass
class _Queued:
    """A control message waiting for room in the send window."""

    message: Sent
    went: asyncio.Future[None]


class Link:
    def __init__(
        self,
        *,
        me: str,
        remote: SignalPeer,
        link_id: str,
        offerer: bool,
        configuration: RTCConfiguration,
        events: LinkEvents,
    ) -> None:
        self.me = me
        self.remote = remote
        self.link_id = link_id
        self.offerer = offerer
        self._configuration = configuration
        self._events = events
        self.state: LinkState = "connecting"
        self.epoch = 0
        self.transport: AnyTransport | None = None
        self.relay_fallback = remote.port == 0
        """The other side is a web peer (it serves nothing): when no direct path
        opens in RELAY_AFTER_S, the channel goes through the leader."""
        self.opened_at: float | None = None
        self.last_heard = time.monotonic()
        self._outbox = Outbox()
        self._inbox = Inbox()
        self._backlog: deque[_Queued] = deque()
        self._synced_out = False  # our sync went on the current transport
        self._synced_in = False  # theirs came
        self._offer_sdp: str | None = None  # the current transport's offer, until answered
        self._answer_sdp: str | None = None  # our answer, sent again for a repeated offer
        self._migrating_until: float | None = None
        self._ping_seq = 0
        self._pings: dict[int, _Pending] = {}
        self._ack_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_resend = 0.0
        self._held = False  # acks held back while our host does not read
        self._peer_busy = False  # its last pong said its host does not read
        self.refused = 0
        """Messages refused: malformed (dropped) or oversize (the channel ended)."""
        self._retired: list[AnyTransport] = []  # replaced, not closed yet (see _replace_transport)
        self._upgrade: Transport | None = None  # a direct path tried while relayed
        self._upgrade_until = 0.0
        self._next_upgrade = time.monotonic() + UPGRADE_EVERY_S
        self._tried_epoch = 0  # the epochs of direct paths tried never repeat
        self._disposing: set[asyncio.Task[None]] = set()
        self._failed = False  # reported down; the owner closes it
        self._closing = False
        self._spawn(self._watch())

    @property
    def peer_id(self) -> str:
        return self.remote.peer_id

    @property
    def migrating(self) -> bool:
        return self._migrating_until is not None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ negotiation

    @property
    def via(self) -> Literal["direct", "relay"]:
        return "relay" if self.transport is not None and self.transport.relayed else "direct"

    def offer(self, relay: bool = False) -> None:
        """(Offerer) Negotiate a new transport: the first, one that replaces a
        transport whose path died, or (`relay`) one through the leader."""
        if self._closing:
            return
        self._replace_transport(self.epoch + 1, relay)
        transport = self.transport
        assert transport is not None

        async def negotiate() -> None:
            try:
                sdp = await transport.offer()
            except Exception as exc:
                log.warning("offer to %s failed: %s", self.peer_id, exc)
                self._fail("failed")
                return
            if transport is self.transport:
                self._offer_sdp = sdp
                self._send_offer()

        self._spawn(negotiate())

    def resend_offer(self) -> None:
        """Send the pending offer again now (a new signaling route exists)."""
        if self._offer_sdp is not None:
            self._send_offer()

    def _send_offer(self) -> None:
        if self._offer_sdp is None:
            return
        msg = Offer(
            from_=self.me, to=self.peer_id, sdp=self._offer_sdp, link=self.link_id, epoch=self.epoch
        )
        if not self._events.link_signal(self, msg):
            log.debug("offer to %s: no signaling route now; sent again later", self.peer_id)

    async def on_offer(self, msg: Offer) -> None:
        """(Answerer) An offer for this link: a new transport, or the same offer again."""
        if msg.epoch < self.epoch or self._closing:
            return
        if msg.epoch == self.epoch:
            if self._answer_sdp is not None:  # our answer was lost: send it again
                self._send_answer(self._answer_sdp)
            return
        if self._relayed_and_open() and msg.sdp != RELAY_SDP:
            await self._answer_upgrade(msg)
            return
        self._drop_upgrade()
        self._replace_transport(msg.epoch, relay=msg.sdp == RELAY_SDP)
        transport = self.transport
        assert transport is not None
        try:
            sdp = await transport.answer(msg.sdp)
        except Exception as exc:
            log.warning("answering %s failed: %s", self.peer_id, exc)
            if transport is self.transport:
                self._fail("failed")
            return
        if transport is self.transport:
            self._answer_sdp = sdp
            self._send_answer(sdp)

    def _send_answer(self, sdp: str) -> None:
        msg = Answer(from_=self.me, to=self.peer_id, sdp=sdp, link=self.link_id, epoch=self.epoch)
        self._events.link_signal(self, msg)

    async def on_answer(self, msg: Answer) -> None:
        upgrade = self._upgrade
        if upgrade is not None and msg.epoch == upgrade.epoch:
            try:
                await upgrade.accept_answer(msg.sdp)
            except Exception as exc:
                log.info("direct path to %s: the answer failed (%s)", self.peer_id, exc)
                self._drop_upgrade(upgrade)
            return
        transport = self.transport
        if transport is None or msg.epoch != self.epoch or transport.answered:
            return
        try:
            await transport.accept_answer(msg.sdp)
        except Exception as exc:
            log.warning("answer from %s failed: %s", self.peer_id, exc)
            if transport is self.transport:
                self._fail("failed")
            return
        self._offer_sdp = None

    async def on_candidate(self, text: str, sdp_mid: str | None, index: int | None) -> None:
        if self.transport is not None:
            await self.transport.add_candidate(text, sdp_mid, index)

    def on_relay(self, epoch: int, data: str) -> None:
        """A message of a relay transport, through the leader."""
        transport = self.transport
        if isinstance(transport, RelayTransport) and transport.epoch == epoch:
            transport.deliver(data)

    def _relay_out(self, epoch: int, text: str) -> bool:
        return self._events.link_relay(self, epoch, text)

    # ------------------------------------------------- from the relay to a direct path

    def _relayed_and_open(self) -> bool:
        return (
            self.state == "connected"
            and not self.migrating
            and self.transport is not None
            and self.transport.relayed
            and self._synced_in
        )

    def _try_upgrade(self, now: float) -> None:
        """(Offerer) Offer a direct transport beside the relay that carries the channel."""
        self._next_upgrade = now + UPGRADE_EVERY_S
        epoch = self._tried_epoch = max(self.epoch, self._tried_epoch) + 1
        upgrade = self._upgrade = Transport(self._configuration, epoch, self)
        self._upgrade_until = now + UPGRADE_WINDOW_S

        async def negotiate() -> None:
            try:
                sdp = await upgrade.offer()
            except Exception as exc:
                log.info("direct path to %s: no offer (%s)", self.peer_id, exc)
                self._drop_upgrade(upgrade)
                return
            if upgrade is self._upgrade:
                self._events.link_signal(
                    self,
                    Offer(from_=self.me, to=self.peer_id, sdp=sdp, link=self.link_id, epoch=epoch),
                )

        self._spawn(negotiate())

    async def _answer_upgrade(self, msg: Offer) -> None:
        """(Answerer) A direct transport offered while the relay carries the channel."""
        if self._upgrade is not None and self._upgrade.epoch >= msg.epoch:
            return
        self._drop_upgrade()
        upgrade = self._upgrade = Transport(self._configuration, msg.epoch, self)
        self._upgrade_until = time.monotonic() + UPGRADE_WINDOW_S
        try:
            sdp = await upgrade.answer(msg.sdp)
        except Exception as exc:
            log.info("direct path to %s: no answer (%s)", self.peer_id, exc)
            self._drop_upgrade(upgrade)
            return
        if upgrade is self._upgrade:
            self._events.link_signal(
                self,
                Answer(from_=self.me, to=self.peer_id, sdp=sdp, link=self.link_id, epoch=msg.epoch),
            )

    def _drop_upgrade(self, which: AnyTransport | None = None) -> None:
        upgrade = self._upgrade
        if upgrade is None or (which is not None and which is not upgrade):
            return
        self._upgrade = None
        self._next_upgrade = time.monotonic() + UPGRADE_EVERY_S
        self._dispose(upgrade)

    def _promote(self, upgrade: Transport) -> None:
        """The direct path opened: it carries the channel from now on (the sync on it
        settles what the relay had in flight, as after any change of transport)."""
        self._upgrade = None
        old = self._switch_to(upgrade)
        if old is not None:
            self._retired.append(old)  # closed once the direct one syncs
        log.info("data channel to %s: a direct path opened; off the relay", self.peer_id)

    def _switch_to(self, transport: AnyTransport) -> AnyTransport | None:
        """`transport` carries the channel from now on (nothing synced on it yet, the
        send window starts over; an open channel migrates); returns the one it replaces."""
        old = self.transport
        self.epoch = transport.epoch
        self.transport = transport
        self._offer_sdp = self._answer_sdp = None
        self._synced_out = self._synced_in = False
        self._outbox.new_transport()
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        if self.state == "connected":
            self._migrating_until = time.monotonic() + MIGRATE_S
        return old

    def _replace_transport(self, epoch: int, relay: bool = False) -> None:
        old = self._switch_to(
            RelayTransport(epoch, self, self._relay_out)
            if relay
            else Transport(self._configuration, epoch, self)
        )
        if self.state == "connected":
            log.info("data channel to %s: new transport %d", self.peer_id, epoch)
        if old is None:
            return
        if self.offerer:
            # Closed once the new one syncs: closing now would abort the other side's
            # copy before our offer reached it, if that path still carries anything.
            self._retired.append(old)
        else:
            self._dispose(old)

    # ------------------------------------------------------------ path checks

    def path_changed(self, lost_local: set[str], remote_addresses: set[str] | None) -> None:
        """Addresses went away (ours: `lost_local`; theirs: what they have now):
        if the transport's path used one, get a new transport. Where the path
        cannot be read, a ping decides."""
        if self._closing or self.state == "disconnected":
            return
        transport = self.transport
        if self.state == "connecting" or transport is None or not transport.opened:
            if self.offerer and lost_local:  # our offer named addresses that are gone
                self.offer()
            return
        if self.migrating:
            return
        path = transport.path()
        # A host or peer-reflexive candidate is the peer's own address; through a relay
        # or a NAT its addresses say nothing about the path: ask it instead.
        direct = path is not None and path.remote_type in ("host", "prflx")
        if path is None or (remote_addresses is not None and not direct):
            self._spawn(self._probe(transport))
            return
        dead = path.local in lost_local
        if remote_addresses is not None:
            dead = dead or path.remote not in remote_addresses
        log.debug("data channel to %s: path %s, %s", self.peer_id, path, "gone" if dead else "fine")
        if dead:
            self._path_dead()

    async def _probe(self, transport: AnyTransport, woke: bool = False) -> None:
        try:
            await self.ping(PROBE_S)
        except (TimeoutError, ConnectionError):
            if transport is not self.transport or self.migrating:
                return
            if woke:  # after a suspension: it most likely gave up on us
                self._fail("timeout")
            else:
                self._path_dead()

    def _path_dead(self) -> None:
        log.info("data channel to %s: its network path is gone", self.peer_id)
        if self.offerer:
            self.offer()
        else:  # the offerer hears of it through the room and offers anew
            self._migrating_until = time.monotonic() + MIGRATE_S
            self._outbox.new_transport()

    # ---------------------------------------------------------------- traffic

    def transport_open(self, transport: AnyTransport) -> None:
        if transport is self._upgrade and isinstance(transport, Transport):
            self._promote(transport)
        if transport is not self.transport:
            return
        self.last_heard = time.monotonic()
        self._send_sync(transport)

    def _send_sync(self, transport: AnyTransport) -> None:
        if self._synced_out:
            return
        self._synced_out = True
        self._transmit(transport, SyncEnvelope(received=self._inbox.sync()))

    def transport_closed(self, transport: AnyTransport, reason: TransportEnd) -> None:
        if transport is self._upgrade:
            log.info("direct path to %s did not open (%s); still relayed", self.peer_id, reason)
            self._drop_upgrade(transport)
            return
        if transport is not self.transport:
            return
        if self.migrating and not self.offerer:
            return  # the offerer replaces it; the deadline bounds the wait
        self._fail(reason)

    def transport_message(self, transport: AnyTransport, data: str | bytes) -> None:
        if transport is self._upgrade and isinstance(transport, Transport):
            self._promote(transport)  # the other side's opened first
        if transport is not self.transport:
            return  # a replaced transport: its stragglers are sent again after the sync
        self.last_heard = time.monotonic()
        if not self._synced_out:
            self._send_sync(transport)
        size = _size(data)
        if size > MAX_MESSAGE_BYTES:
            log.warning(
                "%s sent a message of %d bytes (at most %d)", self.peer_id, size, MAX_MESSAGE_BYTES
            )
            self.refused += 1
            self._fail("failed")
            return
        try:
            envelope = decode_envelope(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("dropping a malformed data-channel message from %s: %s", self.peer_id, exc)
            self.refused += 1
            self._count_for_ack(size)  # the sender counted it in its window
            return
        if isinstance(envelope, PingEnvelope):
            pong = PongEnvelope(seq=envelope.seq, sent_at=envelope.sent_at, busy=self._held)
            with contextlib.suppress(ConnectionError):
                transport.send(_encode(pong))
        elif isinstance(envelope, PongEnvelope):
            self._peer_busy = envelope.busy
            pending = self._pings.pop(envelope.seq, None)
            if pending is not None and not pending.future.done():
                pending.future.set_result((time.perf_counter() - pending.sent) * 1000.0)
        elif isinstance(envelope, SyncEnvelope):
            self._on_sync(transport, envelope.received)
        elif not self._synced_in:
            log.warning("%s sent %s before sync", self.peer_id, type(envelope).__name__)
            self._fail("failed")
        elif isinstance(envelope, AckEnvelope):
            try:
                self._outbox.on_ack(envelope.count, time.monotonic())
            except ValueError as exc:
                log.warning("bad ack from %s: %s", self.peer_id, exc)
                self._fail("failed")
                return
            self._drain()
        elif isinstance(envelope, ByeEnvelope):
            self._fail("left")
        else:
            self._events.link_message(self, envelope)
            self._count_for_ack(size)

    def _on_sync(self, transport: AnyTransport, received: int) -> None:
        if self._synced_in:
            self._fail("failed")  # a second sync on one transport
            return
        try:
            again = self._outbox.on_sync(received, time.monotonic())
        except ValueError as exc:
            log.info("%s does not continue this channel (%s)", self.peer_id, exc)
            self._fail("failed")
            return
        self._synced_in = True
        self._migrating_until = None
        self._close_retired()
        for message in again:
            try:
                transport.send(message.text)
            except ConnectionError:
                self._fail("failed")
                return
        if again:
            log.info("data channel to %s: %d message(s) sent again", self.peer_id, len(again))
        if self.state == "connecting":
            self.state = "connected"
            self.opened_at = time.monotonic()
            self._events.link_up(self)
        self._drain()

    def _count_for_ack(self, size: int) -> None:
        due = self._inbox.on_message(datagrams(size))
        if self._inbox.clock.pending > MAX_UNACKED_DATAGRAMS:
            log.warning("%s ignores the send window: the channel ends", self.peer_id)
            self._fail("failed")
        elif due:
            self._send_ack()
        elif self._ack_timer is None:
            loop = asyncio.get_running_loop()
            self._ack_timer = loop.call_later(ACK_DELAY_S, self._send_ack)

    def host_drained(self) -> None:
        """Our host reads again: send the acks held back."""
        if self._held:
            self._send_ack()

    def _send_ack(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        # An ack says "your messages reached my host": not while it is not reading.
        self._held = self._events.host_busy()
        if self._held:
            return
        transport = self.transport
        count = self._inbox.take_ack()
        if count is not None and transport is not None:
            with contextlib.suppress(ConnectionError):
                transport.send(_encode(AckEnvelope(count=count)))

    def _transmit(self, transport: AnyTransport, envelope: Any) -> None:
        try:
            transport.send(_encode(envelope))
        except ConnectionError:
            if transport is self.transport and not self.migrating:
                self._fail("failed")

    def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for transport in retired:
            self._dispose(transport)

    def _dispose(self, transport: AnyTransport) -> None:
        """Close a transport in the background; `close()` waits for it."""
        task = asyncio.ensure_future(transport.close())
        self._disposing.add(task)
        task.add_done_callback(self._disposing.discard)

    def _check_open(self) -> None:
        if self.state != "connected" or self._closing or self._failed:
            raise ConnectionError(f"data channel to {self.peer_id} is not open")

    def send(self, envelope: ControlEnvelope | StateEnvelope) -> asyncio.Future[None] | None:
        """Send a control or state message now (None), or queue it behind the
        send window or a transport being replaced: then the future completes
        once it went, or fails with ConnectionError when the channel closed
        first. Queued messages keep their order. Raises ConnectionError when
        not open."""
        self._check_open()
        message = _sent(envelope)
        if not self._backlog and self._ready(message.cost):
            self._go(message)
            return None
        went: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._backlog.append(_Queued(message, went))
        went.add_done_callback(self._forget_if_cancelled)
        return went

    def send_in_order(self, envelope: StateEnvelope) -> None:
        """Send it now or queued behind what waits; dropped if the channel closes first."""
        went = self.send(envelope)
        if went is not None:
            went.add_done_callback(_quiet)

    def send_now(self, envelope: StateEnvelope) -> bool:
        """Send it if it can go at once (open, nothing queued, room in the
        window); False otherwise, and nothing was sent."""
        if self.state != "connected" or self._closing or self._failed or self._backlog:
            return False
        message = _sent(envelope)
        if not self._ready(message.cost):
            return False
        self._go(message)
        return True

    def _ready(self, cost: int) -> bool:
        t = self.transport
        if t is None or not t.opened or self.migrating or self._failed:
            return False
        return self._outbox.can_send(cost)

    def _go(self, message: Sent) -> None:
        """Counted as sent whatever happens: if the transport fails under it,
        it is sent again after the next sync, or reported unacknowledged."""
        assert self.transport is not None
        self._outbox.on_sent(message, time.monotonic())
        try:
            self.transport.send(message.text)
        except ConnectionError:
            if not self.migrating:
                self._fail("failed")

    def _forget_if_cancelled(self, went: asyncio.Future[None]) -> None:
        # Its request gave up (and told the host): it must not go out later.
        if went.cancelled():
            self._backlog = deque(q for q in self._backlog if q.went is not went)

    def _drain(self) -> None:
        while self._backlog and self._ready(self._backlog[0].message.cost):
            queued = self._backlog.popleft()
            if queued.went.done():
                continue
            self._go(queued.message)  # if the link fails now, it reports the message
            queued.went.set_result(None)
        if not self._backlog and self.state == "connected" and not self._closing:
            self._events.link_idle(self)

    async def ping(self, timeout: float) -> float:
        """Round-trip time in milliseconds over the channel."""
        transport = self.transport
        if transport is None or not self._synced_in:
            raise ConnectionError(f"data channel to {self.peer_id} is not open")
        self._ping_seq += 1
        seq = self._ping_seq
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pings[seq] = _Pending(future, time.perf_counter())
        try:
            transport.send(_encode(PingEnvelope(seq=seq, sent_at=_now_ms())))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pings.pop(seq, None)

    async def _watch(self) -> None:
        """The link's clock: the connect and migration deadlines, pings, and
        the two liveness rules (silence for 3 intervals; an ack stall)."""
        started = time.monotonic()
        next_ping = started + PING_INTERVAL_S
        while self.state != "disconnected":
            due = time.monotonic() + _WATCH_S
            await asyncio.sleep(_WATCH_S)
            now = time.monotonic()
            if slept := overslept(due, now):
                # We were not running: the peer's silence is ours. Ask it once.
                started += slept
                if self._migrating_until is not None:
                    self._migrating_until += slept
                if self.state == "connected" and self.transport is not None:
                    self.last_heard = now
                    self._spawn(self._probe(self.transport, woke=True))
            if self.state == "connecting":
                relaying = self.transport is not None and self.transport.relayed
                if (
                    self.offerer
                    and self.relay_fallback
                    and not relaying
                    and now - started > RELAY_AFTER_S
                ):
                    log.info("data channel to %s: no direct path; through the leader", self.peer_id)
                    self.offer(relay=True)
                elif now - started > CONNECT_TIMEOUT_S:
                    log.info("data channel to %s did not open in time", self.peer_id)
                    self._fail("failed")
                elif self._offer_sdp is not None and now - started > OFFER_RESEND_S:
                    self._resend_due(now)
                continue
            if self._upgrade is not None and now > self._upgrade_until:
                log.info("direct path to %s: not open in time; still relayed", self.peer_id)
                self._drop_upgrade()
            elif (
                self.offerer
                and self.relay_fallback
                and self._upgrade is None
                and now >= self._next_upgrade
                and self._relayed_and_open()
            ):
                self._try_upgrade(now)
            if self._migrating_until is not None:
                if now > self._migrating_until:
                    log.info("data channel to %s: no new transport in time", self.peer_id)
                    self._fail("failed")
                else:
                    self._resend_due(now)
                continue
            if now - self.last_heard > PING_INTERVAL_S * MISSED_PINGS:
                self._fail("timeout")
                return
            if self._outbox.window.stalled_for(now) > ACK_STALL_S and not self._peer_busy:
                log.warning("%s acknowledged nothing for %.0f s", self.peer_id, ACK_STALL_S)
                self._fail("failed")
                return
            if now >= next_ping and self.transport is not None:
                next_ping = now + PING_INTERVAL_S
                self._ping_seq += 1
                with contextlib.suppress(ConnectionError):
                    self.transport.send(
                        _encode(PingEnvelope(seq=self._ping_seq, sent_at=_now_ms()))
                    )

    def _resend_due(self, now: float) -> None:
        if self._offer_sdp is not None and now - self._last_resend >= OFFER_RESEND_S:
            self._last_resend = now
            self._send_offer()

    # ---------------------------------------------------------------- the end

    def _fail(self, reason: DisconnectReason) -> None:
        if self._closing or self._failed:
            return
        self._failed = True
        self._events.link_down(self, reason, self.unacked())

    def unacked(self) -> list[str]:
        """Ids of the control messages sent and never acknowledged (state
        messages have none: the next channel's snapshot carries them)."""
        return [m.message_id for m in self._outbox.unacked() if m.message_id]

    async def close(self, say_bye: bool) -> None:
        """Close for good (idempotent). What waits for the window fails now, and
        nothing goes out after the bye (the other side drops what follows it)."""
        if self._closing:
            return
        self._closing = True
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        while self._backlog:
            went = self._backlog.popleft().went
            if not went.done():
                went.set_exception(ConnectionError(f"data channel to {self.peer_id} closed"))
        transport = self.transport
        if say_bye and self.state == "connected" and transport is not None and self._synced_in:
            with contextlib.suppress(ConnectionError):
                transport.send(_encode(ByeEnvelope()))
                await asyncio.sleep(0.05)  # let SCTP put the bye on the wire
        self.state = "disconnected"
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        for pending in self._pings.values():
            if not pending.future.done():
                pending.future.set_exception(ConnectionError("data channel closed"))
        closing = [t.close() for t in [*self._retired, transport, self._upgrade] if t is not None]
        self._retired = []
        self._upgrade = None
        await asyncio.gather(*closing, *self._disposing, return_exceptions=True)


def _quiet(went: asyncio.Future[None]) -> None:
    # A snapshot that did not go: the channel closed, and the next one sends it.
    with contextlib.suppress(BaseException):
        went.exception()


def _sent(envelope: ControlEnvelope | StateEnvelope) -> Sent:
    text = _encoder.encode(envelope).decode()
    message_id = envelope.id if isinstance(envelope, ControlEnvelope) else ""
    return Sent(message_id, text, datagrams(_size(text)))


def _encode(envelope: Any) -> str:
    return _encoder.encode(envelope).decode()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _size(data: str | bytes) -> int:
    return len(data) if isinstance(data, bytes) or data.isascii() else len(data.encode())
