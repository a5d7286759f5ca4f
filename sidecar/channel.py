"""WebRTC data channels (design.md, "Data channels"): one `live-control`
channel per connected pair, over aiortc.

`Channels` owns one `Link` per remote peer. Which pairs connect (`wants`),
who offers (`is_offerer`) and the retry delays (`backoff_s`) are plain
functions, unit-tested alone. Signaling messages travel through the leader;
once a channel is open the leader is not needed any more, so a change of
leader never touches a healthy channel. Liveness is our own ping over the
channel (every 2 s, 3 missed: `timeout`): ICE consent checks would take ~30 s.

This module imports aiortc (and with it PyAV): import it lazily, only when a
peer starts, so the first JSON-RPC answer does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aioice.ice
import msgspec
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from sidecar.flow import ACK_DELAY_S, ACK_STALL_S, AckClock, SendWindow, datagrams
from sidecar.messages import (
    AckEnvelope,
    Answer,
    ByeEnvelope,
    Candidate,
    ControlEnvelope,
    DisconnectReason,
    IceServer,
    MeshPolicy,
    Offer,
    PingEnvelope,
    PongEnvelope,
    SignalPeer,
    decode_envelope,
)

log = logging.getLogger(__name__)

LABEL = "live-control"
CHANNEL_ID = 0
"""The channel is negotiated out of band (same label and id on both sides), so
neither side waits for an in-band DATA_CHANNEL_OPEN round trip."""

PING_INTERVAL_S = 2.0
MISSED_PINGS = 3
CONNECT_TIMEOUT_S = 10.0
"""A link that has not opened by then is failed (and retried while wanted)."""

PeerSignal = Offer | Answer | Candidate
LinkState = Literal["connecting", "connected", "disconnected"]
SendSignal = Callable[[PeerSignal], bool]
"""Hands a message to the signaling path; False when there is none right now."""

_encoder = msgspec.json.Encoder()


# ------------------------------------------------------------- pure decisions


def wants(mesh: MeshPolicy, a: SignalPeer, b: SignalPeer) -> bool:
    """Whether the pair (a, b) keeps a data channel under `mesh` (api.md)."""
    if mesh == "full":
        return True
    return "controller" in (a.peer_type, b.peer_type)


def is_offerer(my_id: str, their_id: str) -> bool:
    """The lower peer id of a pair makes the offer: no glare."""
    return my_id < their_id


def backoff_s(attempt: int) -> float:
    """Delay before renegotiation attempt `attempt` (1-based): 0.25 s doubling, 5 s cap."""
    return float(min(0.25 * 2 ** max(attempt - 1, 0), 5.0))


def restrict_ice_gathering(interfaces: Sequence[str]) -> None:
    """Make aioice gather host candidates only on `interfaces`.

    aioice enumerates every interface of the machine (VPNs and bridges too);
    it offers no parameter for this, so its module-level lookup is wrapped.
    One process runs one peer, so a process-wide setting is right.
    """
    allowed = set(interfaces)
    original = getattr(aioice.ice, "_mw_original_get_host_addresses", None)
    if original is None:
        original = aioice.ice.get_host_addresses
        aioice.ice._mw_original_get_host_addresses = original  # type: ignore[attr-defined]

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in original(use_ipv4, use_ipv6) if a in allowed]

    aioice.ice.get_host_addresses = host_addresses


def rtc_configuration(ice_servers: Sequence[IceServer]) -> RTCConfiguration:
    """Always an explicit list: aiortc's default is a public Google STUN server."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
            for s in ice_servers
        ]
    )


# --------------------------------------------------------------------- links


@dataclass
class _Pending:
    future: asyncio.Future[float]
    sent: float


@dataclass
class _Queued:
    """A control message waiting for room in the send window."""

    text: str
    cost: int
    went: asyncio.Future[None]


class Link:
    """One RTCPeerConnection and its `live-control` channel to one peer."""

    def __init__(self, owner: Channels, remote: SignalPeer, attempt: int) -> None:
        self.owner = owner
        self.remote = remote
        self.attempt = attempt
        self.state: LinkState = "connecting"
        self.pc = RTCPeerConnection(owner.configuration)
        self.channel: RTCDataChannel = self.pc.createDataChannel(
            LABEL, negotiated=True, id=CHANNEL_ID, ordered=True
        )
        self.closing_reason: DisconnectReason | None = None
        self.last_heard = time.monotonic()
        self.opened_at: float | None = None
        self._ping_seq = 0
        self._pings: dict[int, _Pending] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._window = SendWindow()
        self._backlog: deque[_Queued] = deque()
        self._acks = AckClock()
        self._ack_timer: asyncio.TimerHandle | None = None
        self._closing = False
        """Set first thing in close(): nothing more goes out but the bye."""
        self.channel.on("open", self._on_open)
        self.channel.on("close", lambda: self.owner._link_down(self, "closed"))
        self.channel.on("message", self._on_message)
        self.pc.on("connectionstatechange", self._on_pc_state)
        self._spawn(self._watch_connect())

    @property
    def peer_id(self) -> str:
        return self.remote.peer_id

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ negotiation

    async def offer(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._signal_sdp(Offer)

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._signal_sdp(Answer)

    async def accept_answer(self, sdp: str) -> None:
        if self.pc.signalingState == "have-local-offer":
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def add_candidate(self, msg: Candidate) -> None:
        # aiortc puts every candidate in the SDP (no trickle); this serves
        # peers that do trickle.
        if msg.candidate:
            text = msg.candidate.removeprefix("candidate:")
            candidate = candidate_from_sdp(text)
            candidate.sdpMid = msg.sdp_mid
            candidate.sdpMLineIndex = msg.sdp_mline_index
            await self.pc.addIceCandidate(candidate)

    def _signal_sdp(self, kind: type[Offer] | type[Answer]) -> None:
        description = self.pc.localDescription
        message = kind(from_=self.owner.me.peer_id, to=self.peer_id, sdp=description.sdp)
        if not self.owner.send_signal(message):
            self.owner._link_down(self, "failed")

    async def _watch_connect(self) -> None:
        await asyncio.sleep(CONNECT_TIMEOUT_S)
        if self.state == "connecting":
            log.info("data channel to %s did not open in time", self.peer_id)
            self.owner._link_down(self, "failed")

    def _on_pc_state(self) -> None:
        if self.pc.connectionState == "failed":
            self.owner._link_down(self, "failed")

    # ---------------------------------------------------------------- traffic

    def _on_open(self) -> None:
        self.state = "connected"
        self.opened_at = self.last_heard = time.monotonic()
        self._spawn(self._pinger())
        self.owner._link_up(self)

    def _on_message(self, data: str | bytes) -> None:
        self.last_heard = time.monotonic()
        try:
            envelope = decode_envelope(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("dropping a malformed data-channel message from %s: %s", self.peer_id, exc)
            self._count_for_ack(data)  # the sender counted it in its window
            return
        if isinstance(envelope, PingEnvelope):
            with contextlib.suppress(ConnectionError):  # closing: no pong
                self.send_envelope(PongEnvelope(seq=envelope.seq, sent_at=envelope.sent_at))
        elif isinstance(envelope, PongEnvelope):
            pending = self._pings.pop(envelope.seq, None)
            if pending is not None and not pending.future.done():
                pending.future.set_result((time.perf_counter() - pending.sent) * 1000.0)
        elif isinstance(envelope, AckEnvelope):
            try:
                self._window.on_ack(envelope.count, time.monotonic())
            except ValueError as exc:
                log.warning("bad ack from %s: %s", self.peer_id, exc)
                self.owner._link_down(self, "failed")
                return
            self._drain_backlog()
        elif isinstance(envelope, ByeEnvelope):
            self.owner._link_down(self, "left")
        else:
            self.owner._received(self, envelope)
            self._count_for_ack(data)

    def _count_for_ack(self, data: str | bytes) -> None:
        size = len(data) if isinstance(data, bytes) or data.isascii() else len(data.encode())
        if self._acks.on_message(datagrams(size)):
            self._send_ack()
        elif self._ack_timer is None:
            loop = asyncio.get_running_loop()
            self._ack_timer = loop.call_later(ACK_DELAY_S, self._send_ack)

    def _send_ack(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        count = self._acks.take()
        if count is not None:
            with contextlib.suppress(ConnectionError):
                self.send_envelope(AckEnvelope(count=count))

    def _check_open(self) -> None:
        if self.state != "connected" or self._closing or self.channel.readyState != "open":
            raise ConnectionError(f"data channel to {self.peer_id} is not open")

    def _send_text(self, text: str) -> None:
        """channel.send, its failures (aiortc raises several kinds) as ConnectionError."""
        try:
            self.channel.send(text)
        except Exception as exc:
            raise ConnectionError(f"data channel to {self.peer_id}: {exc}") from exc

    def send_envelope(
        self, envelope: PingEnvelope | PongEnvelope | AckEnvelope | ByeEnvelope
    ) -> None:
        """Send one message outside the send window (pings, pongs, acks, bye);
        raises ConnectionError when the channel is not open."""
        self._check_open()
        self._send_text(_encoder.encode(envelope).decode())

    def send_control(self, envelope: ControlEnvelope) -> asyncio.Future[None] | None:
        """Send a control message now (None), or queue it behind the send window:
        then the future completes once it went, or fails with ConnectionError
        when the channel closed first. Queued messages keep their order."""
        self._check_open()
        data = _encoder.encode(envelope)
        cost = datagrams(len(data))
        if not self._backlog and self._window.has_room(cost):
            self._send_text(data.decode())
            self._window.on_sent(cost, time.monotonic())
            return None
        went: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._backlog.append(_Queued(data.decode(), cost, went))
        went.add_done_callback(self._forget_if_cancelled)
        return went

    def _forget_if_cancelled(self, went: asyncio.Future[None]) -> None:
        # Its request gave up (and told the host): it must not go out later.
        if went.cancelled():
            self._backlog = deque(q for q in self._backlog if q.went is not went)

    def _drain_backlog(self) -> None:
        while self._backlog and self._window.has_room(self._backlog[0].cost):
            queued = self._backlog.popleft()
            if queued.went.done():
                continue
            try:
                self._check_open()
                self._send_text(queued.text)
            except ConnectionError as exc:
                queued.went.set_exception(exc)
                continue
            self._window.on_sent(queued.cost, time.monotonic())
            queued.went.set_result(None)

    async def ping(self, timeout: float) -> float:
        """Round-trip time in milliseconds over the channel."""
        self._ping_seq += 1
        seq = self._ping_seq
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pings[seq] = _Pending(future, time.perf_counter())
        try:
            self.send_envelope(PingEnvelope(seq=seq, sent_at=_now_ms()))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pings.pop(seq, None)

    async def _pinger(self) -> None:
        """Keeps the channel honest: silence for 3 intervals is a timeout, and a
        peer that answers pings but acknowledges nothing has failed."""
        while self.state == "connected":
            await asyncio.sleep(PING_INTERVAL_S)
            now = time.monotonic()
            if now - self.last_heard > PING_INTERVAL_S * MISSED_PINGS:
                self.owner._link_down(self, "timeout")
                return
            if self._window.stalled_for(now) > ACK_STALL_S:
                log.warning("%s acknowledged nothing for %.0f s", self.peer_id, ACK_STALL_S)
                self.owner._link_down(self, "failed")
                return
            with contextlib.suppress(ConnectionError, Exception):
                self._ping_seq += 1
                self.send_envelope(PingEnvelope(seq=self._ping_seq, sent_at=_now_ms()))

    async def close(self, say_bye: bool) -> None:
        # First: what waits for the window fails now, and nothing else goes out
        # after the bye (the other side drops what follows it).
        self._closing = True
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        while self._backlog:
            went = self._backlog.popleft().went
            if not went.done():
                went.set_exception(ConnectionError(f"data channel to {self.peer_id} closed"))
        if say_bye and self.state == "connected" and self.channel.readyState == "open":
            with contextlib.suppress(Exception):
                self.channel.send(_encoder.encode(ByeEnvelope()).decode())
                # Let SCTP put the bye on the wire before the teardown.
                await asyncio.sleep(0.05)
        self.state = "disconnected"
        for task in list(self._tasks):
            task.cancel()
        for pending in self._pings.values():
            if not pending.future.done():
                pending.future.set_exception(ConnectionError("data channel closed"))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 1.0)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------------ manager


class Channels:
    """Every data channel of this peer, kept as `mesh` asks while peers are there.

    Callbacks: `on_connected(peer)`, `on_disconnected(peer_id, reason)`,
    `on_message(peer_id, envelope)`; `send_signal` hands offers and answers
    to the signaling path.
    """

    def __init__(
        self,
        *,
        me: SignalPeer,
        mesh: MeshPolicy,
        ice_servers: Sequence[IceServer],
        interfaces: Sequence[str],
        send_signal: SendSignal,
        on_connected: Callable[[SignalPeer], None],
        on_disconnected: Callable[[str, DisconnectReason], None],
        on_message: Callable[[str, ControlEnvelope], None],
        lookup: Callable[[str], SignalPeer | None] = lambda _: None,
    ) -> None:
        restrict_ice_gathering(interfaces)
        # Finds a peer not (yet) in our copy of the room: an offer can overtake
        # the peer list that introduces its sender.
        self._lookup = lookup
        self.me = me
        self.mesh = mesh
        self.configuration = rtc_configuration(ice_servers)
        self.send_signal = send_signal
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_message = on_message
        self._links: dict[str, Link] = {}
        self._room: dict[str, SignalPeer] = {}
        self._attempts: dict[str, int] = {}
        self._left: set[str] = set()
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[Any]] = set()
        self._closed = False

    # ---------------------------------------------------------------- queries

    def state_of(self, peer_id: str) -> LinkState | Literal["new"]:
        link = self._links.get(peer_id)
        return link.state if link is not None else "new"

    def connected(self) -> list[SignalPeer]:
        return [link.remote for link in self._links.values() if link.state == "connected"]

    def link(self, peer_id: str) -> Link | None:
        link = self._links.get(peer_id)
        return link if link is not None and link.state == "connected" else None

    # ----------------------------------------------------------------- events

    def update_room(self, members: Sequence[SignalPeer]) -> None:
        """The room as the leader lists it. Opens what is missing; never closes a
        healthy channel (a peer list during a change of leader may be partial)."""
        if self._closed:
            return
        self._room = {m.peer_id: m for m in members if m.peer_id != self.me.peer_id}
        for peer in self._room.values():
            self._left.discard(peer.peer_id)
            if peer.peer_id not in self._links and peer.peer_id not in self._retries:
                self._maybe_offer(peer)

    def peer_left(self, peer_id: str) -> None:
        """The peer said goodbye: close without renegotiating."""
        self._left.add(peer_id)
        self._room.pop(peer_id, None)
        self._cancel_retry(peer_id)
        link = self._links.get(peer_id)
        if link is not None:
            self._link_down(link, "left")

    async def handle_signal(self, msg: PeerSignal) -> None:
        if self._closed or msg.to != self.me.peer_id:
            return
        peer_id = msg.from_
        if isinstance(msg, Offer):
            remote = self._room.get(peer_id) or self._known_remote(peer_id) or self._lookup(peer_id)
            if remote is None:
                log.info("offer from %s, not in the room yet: ignored", peer_id)
                return
            old = self._links.pop(peer_id, None)
            if old is not None:  # the offerer renegotiates: it decides
                self._retire(old, say_bye=False)
            self._cancel_retry(peer_id)
            answering = Link(self, remote, self._attempts.get(peer_id, 0) + 1)
            self._links[peer_id] = answering
            try:
                await answering.answer(msg.sdp)
            except Exception as exc:
                log.warning("answering %s failed: %s", peer_id, exc)
                self._link_down(answering, "failed")
            return
        link = self._links.get(peer_id)
        if link is None:
            return
        try:
            if isinstance(msg, Answer):
                await link.accept_answer(msg.sdp)
            else:
                await link.add_candidate(msg)
        except Exception as exc:
            log.warning("signal from %s failed: %s", peer_id, exc)
            self._link_down(link, "failed")

    async def close(self) -> None:
        """Say bye on every open channel and close them all (bounded)."""
        self._closed = True
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        links, self._links = list(self._links.values()), {}
        closing = [link.close(say_bye=True) for link in links] + list(self._closing)
        if closing:
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), timeout=1.2)

    # -------------------------------------------------------------- internals

    def _known_remote(self, peer_id: str) -> SignalPeer | None:
        link = self._links.get(peer_id)
        return link.remote if link is not None else None

    def _maybe_offer(self, peer: SignalPeer) -> None:
        if not wants(self.mesh, self.me, peer) or not is_offerer(self.me.peer_id, peer.peer_id):
            return
        link = Link(self, peer, self._attempts.get(peer.peer_id, 0) + 1)
        self._links[peer.peer_id] = link

        async def negotiate() -> None:
            try:
                await link.offer()
            except Exception as exc:
                log.warning("offer to %s failed: %s", peer.peer_id, exc)
                self._link_down(link, "failed")

        task = asyncio.ensure_future(negotiate())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _link_up(self, link: Link) -> None:
        if self._links.get(link.peer_id) is not link:
            return
        self._attempts.pop(link.peer_id, None)
        log.info("data channel open to %s", link.peer_id)
        self._on_connected(link.remote)

    def _link_down(self, link: Link, reason: DisconnectReason) -> None:
        """A link failed, closed, timed out or its peer left: report it once,
        and renegotiate with backoff while the peer is still in the room."""
        if self._links.get(link.peer_id) is not link or link.state == "disconnected":
            return
        was_connected = link.state == "connected"
        del self._links[link.peer_id]
        if link.peer_id in self._left:
            reason = "left"
        self._retire(link, say_bye=False)
        log.info("data channel to %s down: %s", link.peer_id, reason)
        if was_connected:
            self._on_disconnected(link.peer_id, reason)
        if reason == "left" or self._closed:
            return
        attempt = self._attempts.get(link.peer_id, 0) + 1
        self._attempts[link.peer_id] = attempt
        delay = backoff_s(attempt)
        loop = asyncio.get_running_loop()
        self._retries[link.peer_id] = loop.call_later(delay, self._retry, link.peer_id)

    def _retry(self, peer_id: str) -> None:
        self._retries.pop(peer_id, None)
        peer = self._room.get(peer_id)
        if peer is not None and peer_id not in self._links and not self._closed:
            self._maybe_offer(peer)

    def _cancel_retry(self, peer_id: str) -> None:
        handle = self._retries.pop(peer_id, None)
        if handle is not None:
            handle.cancel()

    def _retire(self, link: Link, say_bye: bool) -> None:
        task = asyncio.ensure_future(link.close(say_bye))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _received(self, link: Link, envelope: ControlEnvelope) -> None:
        if self._links.get(link.peer_id) is link:
            self._on_message(link.peer_id, envelope)
