"""One WebRTC transport of a data channel: an aiortc RTCPeerConnection and its
negotiated `live-control` channel.

A `Transport` knows nothing of envelopes, windows or peers: it negotiates,
carries text, and reports upward through the `TransportEvents` its owner
gives it (opened, a message, closed or failed), once each and never after it
was closed. `sidecar.net.link` puts a logical channel on top of one transport at a
time (the rules are `sidecar.core.link`'s).

This module imports aiortc (without its media side, see sidecar.compat.media):
import it lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from sidecar.compat.rtc import (
    Path,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
    candidate_from_sdp,
    remote_sdp_for_aioice,
    selected_path,
)
from sidecar.contract import ICE_URL, IceServer, IceTransportPolicy
from sidecar.core.relayseal import RelaySeal

LABEL = "live-control"
CHANNEL_ID = 0
"""The channel is negotiated out of band (same label and id on both sides), so
neither side waits for an in-band DATA_CHANNEL_OPEN round trip."""

CLOSE_S = 1.0

TransportEnd = Literal["closed", "failed"]


class TransportEvents(Protocol):
    def transport_open(self, transport: AnyTransport) -> None: ...
    def transport_message(self, transport: AnyTransport, data: str | bytes) -> None: ...
    def transport_closed(self, transport: AnyTransport, reason: TransportEnd) -> None: ...


def rtc_configuration(
    ice_servers: Sequence[IceServer], policy: IceTransportPolicy = "all"
) -> RTCConfiguration:
    """Always an explicit list: aiortc's default is a public Google STUN server.
    aiortc uses the first STUN and the first TURN URL of the list, no more."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
            for s in ice_servers
        ],
        iceTransportPolicy=(
            RTCIceTransportPolicy.RELAY if policy == "relay" else RTCIceTransportPolicy.ALL
        ),
    )


def ice_server_addresses(ice_servers: Sequence[IceServer]) -> set[str]:
    """The IPv4 addresses the host named in `ice_servers` (a TURN server's
    relayed candidates are at its address): ICE may send to these."""
    found: set[str] = set()
    for server in ice_servers:
        for url in [server.urls] if isinstance(server.urls, str) else server.urls:
            m = ICE_URL.match(url)
            if m is not None:
                with contextlib.suppress(ValueError):
                    found.add(str(ipaddress.IPv4Address(m["host"])))
    return found


class Transport:
    """An RTCPeerConnection with one ordered, reliable, negotiated channel."""

    relayed = False

    def __init__(
        self, configuration: RTCConfiguration, epoch: int, events: TransportEvents
    ) -> None:
        self.epoch = epoch
        """Which transport of its logical channel this is (1, 2, ...)."""
        self._events = events
        self.pc = RTCPeerConnection(configuration)
        self.channel: RTCDataChannel = self.pc.createDataChannel(
            LABEL, negotiated=True, id=CHANNEL_ID, ordered=True
        )
        self.opened = False
        self.closed = False
        self.channel.on("open", self._on_open)
        self.channel.on("close", lambda: self._end("closed"))
        self.channel.on("message", self._on_message)
        self.pc.on("connectionstatechange", self._on_pc_state)

    # ------------------------------------------------------------ negotiation

    async def offer(self) -> str:
        """Create the offer (gathering our candidates) and return its SDP."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> str:
        sdp = remote_sdp_for_aioice(sdp, "offer")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        if self.pc.signalingState == "have-local-offer":
            sdp = remote_sdp_for_aioice(sdp, "answer")
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def add_candidate(self, text: str, sdp_mid: str | None, index: int | None) -> None:
        # aiortc puts every candidate in the SDP (no trickle); this serves
        # peers that do trickle.
        candidate = candidate_from_sdp(text.removeprefix("candidate:"))
        candidate.sdpMid = sdp_mid
        candidate.sdpMLineIndex = index
        await self.pc.addIceCandidate(candidate)

    # ---------------------------------------------------------------- traffic

    def send(self, text: str) -> None:
        """Raises ConnectionError when the channel cannot take it."""
        if not self.opened or self.closed or self.channel.readyState != "open":
            raise ConnectionError("transport not open")
        try:
            self.channel.send(text)
        except Exception as exc:  # aiortc raises several kinds
            raise ConnectionError(str(exc)) from exc

    def path(self) -> Path | None:
        """The candidate pair in use, when known."""
        return selected_path(self.pc)

    async def close(self) -> None:
        """Close without reporting (the owner decided it); bounded, idempotent."""
        self.closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), CLOSE_S)

    # --------------------------------------------------------------- internals

    def _on_open(self) -> None:
        if not self.closed:
            self.opened = True
            self._events.transport_open(self)

    def _on_message(self, data: str | bytes) -> None:
        if not self.closed:
            self._events.transport_message(self, data)

    def _on_pc_state(self) -> None:
        if self.pc.connectionState == "failed":
            self._end("failed")

    def _end(self, reason: TransportEnd) -> None:
        if not self.closed:
            self.closed = True
            self._events.transport_closed(self, reason)


class RelayTransport:
    """The channel carried through the leader's signaling (`relay` frames), for
    a web peer whose direct path did not open: the same envelopes and the same
    rules as a data channel (when it counts as open is the link core's), one
    hop longer. What it sends is sealed end to end under `seal`
    (sidecar/core/relayseal.py), handed to the leader as (seq, box); what
    arrives comes to the link as `relay` frames, opened with `open`."""

    relayed = True

    def __init__(
        self, epoch: int, seal: RelaySeal, forward: Callable[[int, int, str], bool]
    ) -> None:
        self.epoch = epoch
        self.seal = seal
        self._forward = forward
        self.closed = False

    def send(self, text: str) -> None:
        if self.closed or not self.seal.ready:
            raise ConnectionError("no relay to the peer now")
        seq, box = self.seal.seal(text)
        if not self._forward(self.epoch, seq, box):
            raise ConnectionError("no route through the leader now")

    def open(self, seq: int, box: str) -> str | None:
        """A relay frame's message, when the peer sealed it for this transport."""
        return None if self.closed else self.seal.open(seq, box)

    def path(self) -> Path | None:
        return None

    async def close(self) -> None:
        self.closed = True


AnyTransport = Transport | RelayTransport
