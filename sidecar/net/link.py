"""One logical `live-control` channel to one peer: the asyncio shell of
`sidecar.core.link.LinkCore`.

The core holds every rule of the channel (sync, the send window and acks,
pings, the relay and the move back to a direct path, migrations); this shell
carries out its actions with aiortc transports (`sidecar.net.transport`) and
the signaling path, feeds it what the transports report with the loop's
clock, and wakes it at its deadline with one timer. What the owner
(`sidecar.net.channels.Channels`) should hear goes up through `LinkEvents`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal, Protocol

import msgspec

from sidecar.compat.rtc import RTCConfiguration
from sidecar.contract import (
    RELAY_SDP,
    Answer,
    ControlEnvelope,
    DisconnectReason,
    Offer,
    Relay,
    SignalPeer,
    StateEnvelope,
)
from sidecar.core.identity import Identity
from sidecar.core.link import (
    AcceptAnswer,
    Close,
    CreateAnswer,
    CreateOffer,
    Down,
    Dropped,
    Idle,
    LinkCore,
    LinkState,
    Message,
    NoPong,
    OpenRelay,
    Output,
    Path,
    Pong,
    Send,
    Signal,
    Up,
    Went,
)
from sidecar.core.relayseal import RelaySeal
from sidecar.net.transport import AnyTransport, RelayTransport, Transport, TransportEnd

log = logging.getLogger(__name__)

BYE_FLUSH_S = 0.05
"""After a bye, how long its transport stays open for SCTP to put it on the wire."""

_encoder = msgspec.json.Encoder()


class LinkEvents(Protocol):
    def link_up(self, link: Link) -> None: ...
    def link_down(self, link: Link, reason: DisconnectReason, unacked: list[str]) -> None: ...
    def link_message(self, link: Link, envelope: ControlEnvelope | StateEnvelope) -> None: ...
    def link_idle(self, link: Link) -> None:
        """Something held back may go now: the channel has room."""
        ...

    def link_signal(self, link: Link, msg: Offer | Answer) -> bool:
        """Hand an offer or answer to the signaling path; False: no route now."""
        ...

    def link_relay(self, link: Link, epoch: int, seq: int, box: str) -> bool:
        """Carry a sealed message of a relay transport through the leader; False:
        no route."""
        ...

    def host_busy(self) -> bool:
        """Our host is not reading what we give it (the core then holds acks back)."""
        ...


def new_link_id() -> str:
    return secrets.token_hex(8)


class _Queued(asyncio.Future[None]):
    """A message waiting for room in the send window. Cancelling it (its request
    gave up, and told the host) withdraws it from the core at once, so it can
    never go out later."""

    def __init__(self, core: LinkCore, ticket: int, queued: dict[int, _Queued]) -> None:
        super().__init__()
        self._core = core
        self._ticket = ticket
        self._queued = queued

    def cancel(self, msg: Any | None = None) -> bool:
        if not self.done():
            self._core.cancel(self._ticket)
            self._queued.pop(self._ticket, None)
        return super().cancel(msg)


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
        identity: Identity,
    ) -> None:
        self.remote = remote
        self._identity = identity
        self._offered_seal: RelaySeal | None = None  # (answerer) the relay offer's, checked
        self._configuration = configuration
        self._events = events
        self._loop = asyncio.get_running_loop()
        # The loop's clock (the timer is armed on it); asyncio's own loops read
        # time.monotonic(), called directly here since it is read for every message.
        self._clock = (
            time.monotonic if isinstance(self._loop, asyncio.BaseEventLoop) else self._loop.time
        )
        self.core = LinkCore(
            me=me,
            peer_id=remote.peer_id,
            link_id=link_id,
            offerer=offerer,
            web_peer=remote.port == 0,  # a web peer serves nothing
            now=self._now(),
            direct=remote.webrtc,
        )
        self._transports: dict[int, AnyTransport] = {}
        self._queued: dict[int, _Queued] = {}
        self._pings: dict[int, asyncio.Future[float]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._disposing: set[asyncio.Task[None]] = set()
        self._flushing = False
        self._closing = False
        self._to_close: list[AnyTransport] = []
        self._host_busy = events.host_busy
        self._handlers: dict[type, Callable[[Output], None]] = {
            Send: self._send_out,
            Message: self._message,
            Went: self._went,
            Dropped: self._dropped,
            Idle: self._idle,
            Pong: self._pong,
            NoPong: self._no_pong,
            Signal: self._signal,
            CreateOffer: self._create_offer,
            CreateAnswer: self._create_answer,
            AcceptAnswer: self._accept_answer,
            OpenRelay: self._open_relay,
            Close: self._close,
            Up: self._up,
            Down: self._down,
        }

    # ---------------------------------------------------------------- queries

    @property
    def peer_id(self) -> str:
        return self.remote.peer_id

    @property
    def link_id(self) -> str:
        return self.core.link_id

    @property
    def offerer(self) -> bool:
        return self.core.offerer

    @property
    def state(self) -> LinkState:
        return self.core.state

    @property
    def epoch(self) -> int:
        return self.core.epoch

    @property
    def via(self) -> Literal["direct", "relay"]:
        return self.core.via

    @property
    def migrating(self) -> bool:
        return self.core.migrating

    @property
    def refused(self) -> int:
        return self.core.refused

    def path(self) -> Path | None:
        """The candidate pair the current transport uses, when known."""
        transport = self._transports.get(self.core.epoch)
        found = transport.path() if transport is not None else None
        return None if found is None else Path(found.local, found.remote, found.remote_type)

    def relayed_by_turn(self) -> bool:
        """The current transport runs through a TURN relay (either side's)."""
        transport = self._transports.get(self.core.epoch)
        found = transport.path() if transport is not None else None
        return found is not None and "relay" in (found.local_type, found.remote_type)

    def unacked(self) -> list[str]:
        return self.core.unacked()

    # ------------------------------------------------------------ negotiation

    def offer(self, relay: bool = False) -> None:
        self.core.offer(self._now(), relay)
        self._flush()

    def resend_offer(self) -> None:
        """There is a new signaling route: a pending offer goes again now."""
        self.core.route_changed(self._now())
        self._flush()

    def on_offer(self, msg: Offer) -> None:
        if msg.sdp == RELAY_SDP:
            seal = self._seal_offered(msg)
            if seal is None:
                log.warning("relay offer from %s without a valid share: ignored", self.peer_id)
                return
            self._offered_seal = seal
        try:
            self.core.offer_received(msg.epoch, msg.sdp, self._now())
            self._flush()
        finally:
            self._offered_seal = None

    def on_answer(self, msg: Answer) -> None:
        if msg.sdp == RELAY_SDP:
            transport = self._transports.get(msg.epoch)
            if not (
                isinstance(transport, RelayTransport)
                and msg.relay is not None
                and transport.seal.accept(msg.relay)
            ):
                log.warning("relay answer from %s without a valid share: ignored", self.peer_id)
                return
        self.core.answer_received(msg.epoch, msg.sdp, self._now())
        self._flush()

    def on_relay(self, msg: Relay) -> None:
        transport = self._transports.get(msg.epoch)
        if not isinstance(transport, RelayTransport):
            return
        text = transport.open(msg.seq, msg.data)
        if text is None:
            log.debug("relay frame %d from %s does not open: ignored", msg.seq, self.peer_id)
            return
        self._host()
        self.core.relay_received(msg.epoch, text, self._now())
        self._flush()

    def _seal_offered(self, msg: Offer) -> RelaySeal | None:
        """The seal of a relay offer's transport: its own again (a resent offer),
        or a new one whose share checks out."""
        current = self._transports.get(msg.epoch)
        if isinstance(current, RelayTransport):
            return current.seal if msg.relay and current.seal.accept(msg.relay) else None
        seal = RelaySeal(
            self._identity, peer=self.peer_id, link=self.link_id, epoch=msg.epoch, offerer=False
        )
        return seal if msg.relay is not None and seal.accept(msg.relay) else None

    async def on_candidate(self, text: str, sdp_mid: str | None, index: int | None) -> None:
        transport = self._transports.get(self.core.epoch)
        if isinstance(transport, Transport):
            await transport.add_candidate(text, sdp_mid, index)

    def path_changed(self, lost_local: set[str], remote_addresses: set[str] | None) -> None:
        self.core.path_changed(self._now(), lost_local, remote_addresses, self.path())
        self._flush()

    # ----------------------------------------------------- transport events

    def transport_open(self, transport: AnyTransport) -> None:
        if self._transports.get(transport.epoch) is transport:
            self.core.transport_open(transport.epoch, self._now())
            self._flush()

    def transport_message(self, transport: AnyTransport, data: str | bytes) -> None:
        if self._transports.get(transport.epoch) is transport:
            self._host()
            self.core.transport_message(transport.epoch, data, self._now())
            self._flush()

    def transport_closed(self, transport: AnyTransport, reason: TransportEnd) -> None:
        if self._transports.get(transport.epoch) is transport:
            self.core.transport_closed(transport.epoch, reason, self._now())
            self._flush()

    # ---------------------------------------------------------------- sending

    def send(
        self, envelope: ControlEnvelope | StateEnvelope, text: str | None = None
    ) -> asyncio.Future[None] | None:
        """Send now (None), or queued behind the send window or a transport being
        replaced: then the future completes once it went, or fails with
        ConnectionError when the channel closed first (cancelling it withdraws
        the message). Raises ConnectionError when not open. `text`: the
        envelope already encoded (one message to many channels is encoded once)."""
        message_id = envelope.id if isinstance(envelope, ControlEnvelope) else ""
        ticket = self.core.send(text or encode(envelope), message_id, self._now())
        went = None
        if ticket is not None:
            went = self._queued[ticket] = _Queued(self.core, ticket, self._queued)
        self._flush()
        return went

    def send_in_order(self, envelope: StateEnvelope) -> None:
        """Send it now or queued behind what waits; dropped if the channel closes first."""
        went = self.send(envelope)
        if went is not None:
            went.add_done_callback(_quiet)

    def send_now(self, envelope: StateEnvelope) -> bool:
        """Send it if it can go at once; False otherwise, and nothing was sent."""
        sent = self.core.send_now(encode(envelope), self._now())
        self._flush()
        return sent

    async def ping(self, timeout: float) -> float:
        """Round-trip time in milliseconds over the channel; raises ConnectionError
        when not open, TimeoutError without an answer in `timeout` seconds."""
        seq = self.core.ping(self._now(), timeout * 1000.0)
        answer: asyncio.Future[float] = self._loop.create_future()
        self._pings[seq] = answer
        self._flush()
        return await answer

    def host_drained(self) -> None:
        """Our host reads again: the acks held back go."""
        self.core.set_host_busy(False, self._now())
        self._flush()

    # ---------------------------------------------------------------- the end

    async def close(self, say_bye: bool) -> None:
        """Close for good (idempotent): what waits fails, the bye (if any) is
        given time to leave, then every transport closes (bounded)."""
        if self._closing:
            return
        self._closing = True
        bye = say_bye and self.core.is_open
        self.core.close(say_bye, self._now())
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
        if bye:
            await asyncio.sleep(BYE_FLUSH_S)
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        closing = [t.close() for t in [*self._to_close, *self._transports.values()]]
        self._to_close, self._transports = [], {}
        await asyncio.gather(*closing, *self._disposing, return_exceptions=True)

    # --------------------------------------------------------------- internals

    def _now(self) -> float:
        return self._clock() * 1000.0

    def _host(self) -> None:
        busy = self._host_busy()
        if busy != self.core.host_busy:
            self.core.set_host_busy(busy, self._now())

    def _flush(self) -> None:
        """Carry out the core's outputs, in order (outputs made while carrying
        them out, by the events' receivers, join the same loop), then re-arm."""
        if self._flushing:
            return
        self._flushing = True
        try:
            while outputs := self.core.take():
                for output in outputs:
                    try:
                        self._carry_out(output)
                    except Exception:  # a receiver's bug must not cost the rest of the batch
                        log.exception("data channel to %s: %r failed", self.peer_id, output)
        finally:
            self._flushing = False
            self._arm()

    def _carry_out(self, output: Output) -> None:
        self._handlers[type(output)](output)  # (a dict: one message each, on the hot path)

    def _send_out(self, output: Output) -> None:
        assert isinstance(output, Send)
        transport = self._transports.get(output.epoch)
        try:
            if transport is None:
                raise ConnectionError("no such transport")
            transport.send(output.text)
        except ConnectionError:
            if output.must:
                self.core.send_failed(output.epoch, self._now())

    def _message(self, output: Output) -> None:
        assert isinstance(output, Message)
        self._events.link_message(self, output.envelope)

    def _went(self, output: Output) -> None:
        assert isinstance(output, Went)
        went = self._queued.pop(output.ticket, None)
        if went is not None and not went.done():
            went.set_result(None)

    def _dropped(self, output: Output) -> None:
        assert isinstance(output, Dropped)
        went = self._queued.pop(output.ticket, None)
        if went is not None and not went.done():
            went.set_exception(ConnectionError(f"data channel to {self.peer_id} closed"))

    def _idle(self, output: Output) -> None:
        self._events.link_idle(self)

    def _pong(self, output: Output) -> None:
        assert isinstance(output, Pong)
        answer = self._pings.pop(output.seq, None)
        if answer is not None and not answer.done():
            answer.set_result(output.rtt_ms)

    def _no_pong(self, output: Output) -> None:
        assert isinstance(output, NoPong)
        answer = self._pings.pop(output.seq, None)
        if answer is not None and not answer.done():
            answer.set_exception(TimeoutError() if self.core.is_open else ConnectionError("closed"))

    def _signal(self, output: Output) -> None:
        assert isinstance(output, Signal)
        cls = Offer if output.kind == "offer" else Answer
        transport = self._transports.get(output.epoch)
        relay = transport.seal.mine() if isinstance(transport, RelayTransport) else None
        msg = cls(
            from_=self.core.me,
            to=self.peer_id,
            sdp=output.sdp,
            link=self.link_id,
            epoch=output.epoch,
            relay=relay if output.sdp == RELAY_SDP else None,
        )
        if not self._events.link_signal(self, msg):
            log.debug("%s to %s: no signaling route now", output.kind, self.peer_id)

    def _create_offer(self, output: Output) -> None:
        assert isinstance(output, CreateOffer)
        transport = self._direct(output.epoch)
        self._spawn(self._negotiate(output.epoch, transport.offer()))

    def _create_answer(self, output: Output) -> None:
        assert isinstance(output, CreateAnswer)
        transport = self._direct(output.epoch)
        self._spawn(self._negotiate(output.epoch, transport.answer(output.sdp)))

    def _accept_answer(self, output: Output) -> None:
        assert isinstance(output, AcceptAnswer)
        accepting = self._transports.get(output.epoch)
        if isinstance(accepting, Transport):
            self._spawn(self._negotiate(output.epoch, accepting.accept_answer(output.sdp)))

    def _open_relay(self, output: Output) -> None:
        assert isinstance(output, OpenRelay)
        offered = self._offered_seal
        if offered is not None and offered.epoch == output.epoch:
            seal = offered  # answering: the offer's share is checked and agreed
        else:
            seal = RelaySeal(
                self._identity,
                peer=self.peer_id,
                link=self.link_id,
                epoch=output.epoch,
                offerer=self.offerer,
            )
        self._transports[output.epoch] = RelayTransport(output.epoch, seal, self._relay_out)

    def _close(self, output: Output) -> None:
        assert isinstance(output, Close)
        closed = self._transports.pop(output.epoch, None)
        if closed is not None:
            self._dispose(closed)

    def _up(self, output: Output) -> None:
        log.info("data channel to %s open (%s)", self.peer_id, self.via)
        self._events.link_up(self)

    def _down(self, output: Output) -> None:
        assert isinstance(output, Down)
        self._events.link_down(self, output.reason, output.unacked)

    def _direct(self, epoch: int) -> Transport:
        transport = Transport(self._configuration, epoch, self)
        self._transports[epoch] = transport
        return transport

    async def _negotiate(self, epoch: int, step: Coroutine[Any, Any, str | None]) -> None:
        try:
            sdp = await step
        except Exception as exc:
            log.info(
                "data channel to %s: negotiating transport %d failed: %s", self.peer_id, epoch, exc
            )
            self.core.negotiation_failed(epoch, self._now())
        else:
            if sdp is not None:
                self.core.local_description(epoch, sdp, self._now())
        self._flush()

    def _relay_out(self, epoch: int, seq: int, box: str) -> bool:
        return self._events.link_relay(self, epoch, seq, box)

    def _arm(self) -> None:
        deadline = self.core.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and not self._closing:
            self._timer = self._loop.call_at(deadline / 1000.0, self._tick)

    def _tick(self) -> None:
        self._timer = self._timer_at = None
        self._host()
        self.core.tick(self._now())
        self._flush()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _dispose(self, transport: AnyTransport) -> None:
        """Close a transport in the background (`close()` waits for it); while
        closing, after the bye has had its time."""
        if self._closing:
            self._to_close.append(transport)
            return
        task = asyncio.ensure_future(transport.close())
        self._disposing.add(task)
        task.add_done_callback(self._disposing.discard)


def _quiet(went: asyncio.Future[None]) -> None:
    # A snapshot that did not go: the channel closed, and the next one sends it.
    if not went.cancelled():
        went.exception()


def encode(envelope: object) -> str:
    """An envelope's text on the channel."""
    return _encoder.encode(envelope).decode()
