"""WebRTC data channels (docs/architecture.md, "Data channels"): one
`live-control` channel per connected pair.

`Channels` keeps one `Link` (sidecar.net.link) per remote peer as the mesh policy
asks while the peer is in the room. Which pairs connect, who offers and the
retry delays are the rules of `sidecar.core.mesh`. Signaling travels through
the leader; once a channel is open the leader is not needed any more, so a
change of leader never touches a healthy channel.

The network moves under the channels: when an address of ours goes away
(`network_changed`) or a peer's entry in the room lists other addresses
(`update_room`), each link whose path used a lost address gets a new
transport, without the host seeing a disconnection (sidecar.net.link).

What is taken from the network, and how much: an offer only from a peer the
mesh pairs us with and that is the offerer of the pair, at most
OFFER_BURST new transports per peer at once and one per OFFER_REFILL_MS
after that; at most MAX_LINKS channels; in a keyed room only offers and
answers whose SDP MAC (sidecar/core/roomkey.py) holds.

This module imports aiortc (without its media side): import it lazily, only when a
peer starts, so the first JSON-RPC answer does not wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec

from sidecar.compat.rtc import restrict_ice_gathering, restrict_remote_candidates
from sidecar.contract import (
    Answer,
    Candidate,
    ControlEnvelope,
    DisconnectReason,
    IceServer,
    IceTransportPolicy,
    MeshPolicy,
    Offer,
    PeerSignal,
    Relay,
    SignalPeer,
    StateEnvelope,
)
from sidecar.core.identity import Identity
from sidecar.core.link import LinkState
from sidecar.core.mesh import (
    MAX_LINKS,
    OfferBudget,
    backoff_s,
    is_offerer,
    make_room_for,
    unwanted,
    wants,
)
from sidecar.core.roomkey import matches, sdp_auth
from sidecar.net.link import Link, new_link_id
from sidecar.net.transport import ice_server_addresses, rtc_configuration

log = logging.getLogger(__name__)


SendSignal = Callable[[PeerSignal], bool]
"""Hands a message to the signaling path; False when there is none right now."""


MAX_REVOKED_KEPT = 256
"""Peers shut out of the room whose signals are still refused (oldest forgotten)."""

# ------------------------------------------------------------------ manager


class Channels:
    """Every data channel of this peer, kept as `mesh` asks while peers are there.

    Callbacks: `on_connected(peer)`, `on_disconnected(peer_id, reason,
    unacked)`, `on_message(peer_id, envelope)`, `on_idle(peer_id)` (its
    channel has nothing queued any more); `send_signal` hands offers and
    answers to the signaling path.
    """

    def __init__(
        self,
        *,
        me: SignalPeer,
        mesh: MeshPolicy,
        ice_servers: Sequence[IceServer],
        ice_transport_policy: IceTransportPolicy = "all",
        may_contact: Callable[[str], bool] = lambda _: True,
        interfaces: Sequence[str],
        send_signal: SendSignal,
        on_connected: Callable[[SignalPeer], None],
        on_disconnected: Callable[[str, DisconnectReason, list[str]], None],
        on_message: Callable[[str, ControlEnvelope | StateEnvelope], None],
        on_idle: Callable[[str], None] = lambda _: None,
        lookup: Callable[[str], SignalPeer | None] = lambda _: None,
        room_key: str | None = None,
        host_busy: Callable[[], bool] = lambda: False,
        identity: Identity,
    ) -> None:
        restrict_ice_gathering(interfaces)
        servers = ice_server_addresses(ice_servers)
        restrict_remote_candidates(lambda address: address in servers or may_contact(address))
        # Finds a peer not (yet) in our copy of the room: an offer can overtake
        # the peer list that introduces its sender.
        self._lookup = lookup
        self.me = me
        self.mesh = mesh
        self.configuration = rtc_configuration(ice_servers, ice_transport_policy)
        self.send_signal = send_signal
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_message = on_message
        self._on_idle = on_idle
        self._links: dict[str, Link] = {}
        self._room: dict[str, SignalPeer] = {}
        self._leader_id: str | None = None
        self._attempts: dict[str, int] = {}
        self._left: set[str] = set()
        self._revoked: dict[str, None] = {}  # shut out of the room (oldest first)
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.room_key = room_key
        self._host_busy = host_busy
        self._identity = identity
        self._offers = OfferBudget()

    # ---------------------------------------------------------------- queries

    def state_of(self, peer_id: str) -> LinkState | Literal["new"]:
        link = self._links.get(peer_id)
        return link.state if link is not None else "new"

    def connected(self) -> list[SignalPeer]:
        return [link.remote for link in self._links.values() if link.state == "connected"]

    def relayed(self, peer_id: str) -> bool:
        """The channel to `peer_id` runs through a TURN relay (either side's)."""
        link = self.link(peer_id)
        return link is not None and link.relayed_by_turn()

    def open_links(self) -> list[Link]:
        return [link for link in self._links.values() if link.state == "connected"]

    def link(self, peer_id: str) -> Link | None:
        link = self._links.get(peer_id)
        return link if link is not None and link.state == "connected" else None

    # ----------------------------------------------------------------- events

    def update_room(self, members: Sequence[SignalPeer], leader_id: str | None = None) -> None:
        """The room as the leader lists it. Opens what is missing; never closes a
        healthy channel because a peer is missing from a list (a peer list during
        a change of leader may be partial), but closes those the mesh keeps no
        more under a confirmed leader (two displays paired while one of them led,
        once a controller leads again).
        A peer back in the room is offered at once, whatever its backoff; a
        peer listed at other addresses gets its links' paths checked."""
        if self._closed:
            return
        self._leader_id = leader_id
        room = {
            m.peer_id: m
            for m in members
            if m.peer_id != self.me.peer_id and m.peer_id not in self._revoked
        }
        for peer in room.values():
            before = self._room.get(peer.peer_id)
            self._left.discard(peer.peer_id)
            link = self._links.get(peer.peer_id)
            if link is not None:
                link.remote = peer
                if before is not None and set(before.addresses) != set(peer.addresses):
                    link.path_changed(set(), set(peer.addresses))
            elif before is None:  # (back) in the room: no reason to wait
                self._attempts.pop(peer.peer_id, None)
                self._cancel_retry(peer.peer_id)
            if peer.peer_id not in self._links and peer.peer_id not in self._retries:
                self._maybe_offer(peer)
        self._room = room
        linked = [room[peer_id] for peer_id in self._links if peer_id in room]
        for peer_id in unwanted(self.mesh, self.me, linked, leader_id):
            log.info("channel to %s closed: not kept with this leader", peer_id)
            link = self._links[peer_id]
            self.link_down(link, "closed", link.unacked(), retry=False)

    def route_changed(self) -> None:
        """We have a (new) signaling route: send pending offers again, and retry
        every missing channel now rather than after its backoff."""
        if self._closed:
            return
        for link in self._links.values():
            link.resend_offer()
        for peer_id in list(self._retries):
            self._cancel_retry(peer_id)
            self._attempts.pop(peer_id, None)
            self._retry(peer_id)

    def set_interfaces(self, addresses: Sequence[str], lost: Sequence[str]) -> None:
        """Our addresses changed: new transports gather on `addresses`, and
        links whose path used one of `lost` get a new transport."""
        restrict_ice_gathering(addresses)
        if lost:
            for link in list(self._links.values()):
                link.path_changed(set(lost), None)

    def peer_left(self, peer_id: str) -> None:
        """The peer said goodbye: close without renegotiating."""
        self._left.add(peer_id)
        self._room.pop(peer_id, None)
        self._cancel_retry(peer_id)
        link = self._links.get(peer_id)
        if link is not None:
            self.link_down(link, "left", link.unacked())

    def revoke(self, peer_ids: Sequence[str]) -> None:
        """These peers were shut out of the room: their channels close now, and
        nothing of theirs is taken again (an offer, a peer list naming them)."""
        for peer_id in peer_ids:
            self._revoked[peer_id] = None
            self._room.pop(peer_id, None)
            self._cancel_retry(peer_id)
            link = self._links.get(peer_id)
            if link is not None:
                self.link_down(link, "revoked", link.unacked(), retry=False)
        while len(self._revoked) > MAX_REVOKED_KEPT:
            del self._revoked[next(iter(self._revoked))]

    async def handle_signal(self, msg: PeerSignal) -> None:
        if self._closed or msg.to != self.me.peer_id or msg.from_ in self._revoked:
            return
        if not self._authentic(msg):
            log.warning("%s from %s without a valid MAC: ignored", type(msg).__name__, msg.from_)
            return
        peer_id = msg.from_
        link = self._links.get(peer_id)
        if isinstance(msg, Offer):
            if (link is None or msg.epoch > link.epoch) and not self._may_offer(peer_id):
                log.warning("offers from %s come too fast: ignored", peer_id)
                return
            if link is None or link.link_id != msg.link:
                link = self._answering(peer_id, msg)
                if link is None:
                    return
            link.on_offer(msg)
        elif link is None or (msg.link is not None and msg.link != link.link_id):
            return
        elif isinstance(msg, Relay):
            link.on_relay(msg)
        elif isinstance(msg, Answer):
            link.on_answer(msg)
        elif msg.candidate and (msg.epoch is None or msg.epoch == link.epoch):
            try:
                await link.on_candidate(msg.candidate, msg.sdp_mid, msg.sdp_mline_index)
            except Exception as exc:
                log.warning("candidate from %s failed: %s", peer_id, exc)

    def _answering(self, peer_id: str, msg: Offer) -> Link | None:
        """A link for an offer of a channel we do not have (the old one, if any, ends)."""
        remote = self._room.get(peer_id) or self._known_remote(peer_id) or self._lookup(peer_id)
        if remote is None:
            log.info("offer from %s, not in the room yet: ignored", peer_id)
            return None
        keeps = wants(self.mesh, self.me, remote, self._leader_id)
        if not keeps or not is_offerer(peer_id, self.me.peer_id):
            log.warning(
                "offer from %s, which is not the offerer of a pair we keep: ignored", peer_id
            )
            return None
        if peer_id not in self._links and not self._room_for(remote):
            log.warning("offer from %s: already %d channels; ignored", peer_id, MAX_LINKS)
            return None
        old = self._links.get(peer_id)
        if old is not None:  # the offerer started the channel anew: it decides
            self.link_down(old, "closed", old.unacked(), retry=False)
        self._cancel_retry(peer_id)
        link = self._new_link(remote, msg.link, offerer=False)
        return link

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

    # ------------------------------------------------------- what links report

    def link_up(self, link: Link) -> None:
        if self._links.get(link.peer_id) is not link:
            return
        self._attempts.pop(link.peer_id, None)
        log.info("data channel open to %s", link.peer_id)
        self._on_connected(link.remote)

    def link_down(
        self, link: Link, reason: DisconnectReason, unacked: list[str], retry: bool = True
    ) -> None:
        """A link failed, closed, timed out or its peer left: report it once,
        and renegotiate with backoff while the peer is still in the room."""
        if self._links.get(link.peer_id) is not link:
            return
        was_connected = link.state == "connected"
        del self._links[link.peer_id]
        if link.peer_id in self._left:
            reason = "left"
        self._retire(link)
        log.info("data channel to %s down: %s", link.peer_id, reason)
        if was_connected:
            self._on_disconnected(link.peer_id, reason, unacked)
        if reason == "left" or self._closed or not retry:
            return
        attempt = self._attempts.get(link.peer_id, 0) + 1
        self._attempts[link.peer_id] = attempt
        delay = backoff_s(attempt)
        loop = asyncio.get_running_loop()
        self._retries[link.peer_id] = loop.call_later(delay, self._retry, link.peer_id)

    def link_message(self, link: Link, envelope: ControlEnvelope | StateEnvelope) -> None:
        if self._links.get(link.peer_id) is link:
            self._on_message(link.peer_id, envelope)

    def link_idle(self, link: Link) -> None:
        if self._links.get(link.peer_id) is link:
            self._on_idle(link.peer_id)

    def link_signal(self, link: Link, msg: Offer | Answer) -> bool:
        if self._links.get(link.peer_id) is not link:
            return False
        if self.room_key is not None:
            kind = type(msg).__name__.lower()
            auth = sdp_auth(self.room_key, kind, msg.from_, msg.to, msg.link, msg.epoch, msg.sdp)
            msg = msgspec.structs.replace(msg, auth=auth)
        return self.send_signal(msg)

    def link_relay(self, link: Link, epoch: int, seq: int, box: str) -> bool:
        if self._links.get(link.peer_id) is not link:
            return False
        relay = Relay(
            from_=self.me.peer_id,
            to=link.peer_id,
            link=link.link_id,
            epoch=epoch,
            seq=seq,
            data=box,
        )
        return self.send_signal(relay)

    def via(self, peer_id: str) -> Literal["direct", "relay"]:
        link = self.link(peer_id)
        return link.via if link is not None else "direct"

    def host_drained(self) -> None:
        """The host reads again: the acks held back go out."""
        for link in list(self._links.values()):
            link.host_drained()

    def host_busy(self) -> bool:
        return self._host_busy()

    # -------------------------------------------------------------- internals

    def _authentic(self, msg: PeerSignal) -> bool:
        """In a keyed room, an offer, answer or candidate carries the MAC of what it
        says, made with the room key by its sender: the leader relays it and
        cannot change it."""
        if self.room_key is None or isinstance(msg, Relay):
            return True  # a relayed message is sealed end to end (its link opens it)
        kind, text = (
            ("candidate", msg.candidate or "")
            if isinstance(msg, Candidate)
            else (
                type(msg).__name__.lower(),
                msg.sdp,
            )
        )
        link, epoch = msg.link or "", msg.epoch or 0
        expected = sdp_auth(self.room_key, kind, msg.from_, msg.to, link, epoch, text)
        return matches(expected, msg.auth)

    def _may_offer(self, peer_id: str) -> bool:
        return self._offers.take(peer_id, asyncio.get_running_loop().time() * 1000.0)

    def _known_remote(self, peer_id: str) -> SignalPeer | None:
        link = self._links.get(peer_id)
        return link.remote if link is not None else None

    def _new_link(self, remote: SignalPeer, link_id: str, offerer: bool) -> Link:
        link = Link(
            me=self.me.peer_id,
            remote=remote,
            link_id=link_id,
            offerer=offerer,
            configuration=self.configuration,
            events=self,
            identity=self._identity,
        )
        self._links[remote.peer_id] = link
        return link

    def _maybe_offer(self, peer: SignalPeer) -> None:
        keeps = wants(self.mesh, self.me, peer, self._leader_id)
        if not keeps or not is_offerer(self.me.peer_id, peer.peer_id):
            return
        if not self._room_for(peer):
            log.warning("not opening a channel to %s: already %d", peer.peer_id, MAX_LINKS)
            return
        self._new_link(peer, new_link_id(), offerer=True).offer()

    def _room_for(self, peer: SignalPeer) -> bool:
        """Whether a new channel to `peer` fits under MAX_LINKS; a controller's
        takes the place of one between two displays (core/mesh.py, make_room_for)."""
        if len(self._links) < MAX_LINKS:
            return True
        victim = make_room_for(self.me, peer, [link.remote for link in self._links.values()])
        link = self._links.get(victim) if victim is not None else None
        if link is None:
            return False
        log.info(
            "channel to %s closed: room for the controller %s", link.remote.peer_id, peer.peer_id
        )
        self.link_down(link, "closed", link.unacked(), retry=False)
        return True

    def _retry(self, peer_id: str) -> None:
        self._retries.pop(peer_id, None)
        peer = self._room.get(peer_id)
        if peer is not None and peer_id not in self._links and not self._closed:
            self._maybe_offer(peer)

    def _cancel_retry(self, peer_id: str) -> None:
        handle = self._retries.pop(peer_id, None)
        if handle is not None:
            handle.cancel()

    def _retire(self, link: Link) -> None:
        task = asyncio.ensure_future(link.close(say_bye=False))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
