"""One logical `live-control` channel to one peer, sans I/O: every rule of
docs/protocol.md's "Data channels" in one place.

`LinkCore` is driven like aioquic's `QuicConnection`: each input says what
happened and when (`now`, in milliseconds of a monotonic clock), each call
may queue outputs (`take()`), and `next_deadline()` says when `tick(now)`
is due. It opens no socket, starts no task and reads no clock. Outputs are
actions for the shell that owns the transports (`CreateOffer`, `Send`,
`Signal`, `Close`, ...) and events for the owner of the link (`Up`, `Down`,
`Message`, `Went`, ...). The shells (sidecar/net/link.py over aiortc,
frontend-hook/src/web/link.ts in a browser) carry them out; the TypeScript
core (frontend-hook/src/web/core/link.ts) is the same rules, and both are run
against the traces in tests/vectors/link/.

A channel runs over one transport at a time, numbered by `epoch`: a WebRTC
data channel (negotiated by the shell, the SDP passing through the leader),
or a relay through the leader's signaling. When a transport's path dies,
the offerer negotiates the next epoch and the channel carries on: on each
new transport both sides send `sync` first and the sender sends again what
the other side has not taken (sidecar.core.delivery), in a send window of
datagrams (sidecar.core.flow). Liveness is our own ping, every 2 s (three
missed: `timeout`); ICE consent checks would take ~30 s.

A channel to a web peer (a page, which serves nothing) whose direct path has
not opened in RELAY_AFTER_MS goes through the leader; while relayed, its
offerer tries a direct transport beside the relay every UPGRADE_EVERY_MS,
and the first side whose direct transport opens moves the channel onto it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import msgspec

from sidecar.contract import (
    MAX_PAYLOAD_BYTES,
    RELAY_SDP,
    AckEnvelope,
    ByeEnvelope,
    ControlEnvelope,
    DisconnectReason,
    PingEnvelope,
    PongEnvelope,
    StateEnvelope,
    SyncEnvelope,
    decode_envelope,
)
from sidecar.core.clock import SUSPEND_MS
from sidecar.core.delivery import Inbox, Outbox, Sent
from sidecar.core.flow import ACK_DELAY_MS, ACK_STALL_MS, WINDOW_DATAGRAMS, datagrams

PING_INTERVAL_MS = 2000
MISSED_PINGS = 3
SILENCE_MS = PING_INTERVAL_MS * MISSED_PINGS
"""Nothing heard for this long (three pings): the channel is dead."""
CONNECT_TIMEOUT_MS = 10_000
"""A new channel that has not opened by then is failed (and retried while wanted)."""
MIGRATE_MS = 5000
"""A channel whose path died must have a new transport by then, or it is down."""
OFFER_RESEND_MS = 1000
"""An offer not answered is sent again this often: the leader may have changed,
or the other side may have registered anew, while it was on its way."""
PROBE_MS = 1000
"""A path whose state cannot be read is pinged after a network change; no answer
within this time counts as a dead path."""
RELAY_AFTER_MS = 3000
"""A channel to a web peer that has not opened by then goes through the leader."""
UPGRADE_EVERY_MS = 10_000
"""While a channel goes through the leader, the offerer tries a direct path
this often (make before break: the relay carries on until the direct one opens)."""
UPGRADE_WINDOW_MS = 6000
"""A direct path that has not opened in this long is given up until the next try."""
MAX_MESSAGE_BYTES = MAX_PAYLOAD_BYTES + 2048
"""Largest data-channel message taken: a 64 KiB payload and its envelope. WebRTC
stacks do not all enforce the size they advertise; a larger message is a broken
or hostile peer, and ends the channel."""
MAX_UNACKED_DATAGRAMS = WINDOW_DATAGRAMS + datagrams(MAX_MESSAGE_BYTES)
"""What a sender may have unacknowledged: its window, plus one large message
that went alone. More means it ignores the window: the channel ends."""

LinkState = Literal["connecting", "connected", "disconnected"]
TransportEnd = Literal["closed", "failed"]
SignalKind = Literal["offer", "answer"]

_encoder = msgspec.json.Encoder()


# ------------------------------------------------------------------ outputs
# Plain values (slots, not frozen: one is made for every message, and a frozen
# dataclass pays object.__setattr__ per field). Actions: what the shell does with
# its transports and the signaling path.


@dataclass(slots=True)
class CreateOffer:
    """Create a direct transport `epoch` and make its offer (then `local_description`)."""

    epoch: int


@dataclass(slots=True)
class CreateAnswer:
    """Create a direct transport `epoch` for this offer and answer it."""

    epoch: int
    sdp: str


@dataclass(slots=True)
class AcceptAnswer:
    """Apply the other side's answer to transport `epoch` (failing: `negotiation_failed`)."""

    epoch: int
    sdp: str


@dataclass(slots=True)
class OpenRelay:
    """Transport `epoch` goes through the leader: `Send` on it is a `relay` frame."""

    epoch: int


@dataclass(slots=True)
class Send:
    """Put `text` on transport `epoch`. If it cannot go and `must`, tell the core
    (`send_failed`); a ping, pong or ack that cannot go is simply lost."""

    epoch: int
    text: str
    must: bool


@dataclass(slots=True)
class Signal:
    """An offer or answer for transport `epoch`, through the leader."""

    kind: SignalKind
    epoch: int
    sdp: str


@dataclass(slots=True)
class Close:
    """Transport `epoch` is done with: close it (no report follows)."""

    epoch: int


# Events: what the owner of the link hears.


@dataclass(slots=True)
class Up:
    """The channel opened (its first sync exchange is done)."""


@dataclass(slots=True)
class Down:
    """The channel ended; `unacked`: ids of control messages never acknowledged.
    The core takes no input after this but `close`."""

    reason: DisconnectReason
    unacked: list[str]


@dataclass(slots=True)
class Message:
    envelope: ControlEnvelope | StateEnvelope


@dataclass(slots=True)
class Went:
    """A queued message (the ticket `send` returned) went on the channel."""

    ticket: int


@dataclass(slots=True)
class Dropped:
    """A queued message will never go: the channel closed first."""

    ticket: int


@dataclass(slots=True)
class Idle:
    """Something was held back (queued, or refused by `send_now`): there is room now."""


@dataclass(slots=True)
class Pong:
    """The answer to `ping(seq)`, after `rtt_ms`."""

    seq: int
    rtt_ms: float


@dataclass(slots=True)
class NoPong:
    """No answer to `ping(seq)` in time, or the channel closed first."""

    seq: int


Action = CreateOffer | CreateAnswer | AcceptAnswer | OpenRelay | Send | Signal | Close
Event = Up | Down | Message | Went | Dropped | Idle | Pong | NoPong
Output = Action | Event


@dataclass(frozen=True, slots=True)
class Path:
    """The candidate pair a direct transport uses (the shell reads it)."""

    local: str
    remote: str
    remote_type: str


# --------------------------------------------------------------- internals


@dataclass(slots=True)
class _Transport:
    epoch: int
    relay: bool
    offering: bool
    """We made its offer (else we answered one)."""
    opened: bool = False
    answered: bool = False


@dataclass(slots=True)
class _Ping:
    sent: float
    deadline: float
    probe: Literal["", "path", "woke"]
    """Why it was sent: "" the host asked; a probe of the path ("path", after a
    network change; "woke", after we were suspended) fails the channel unanswered."""
    epoch: int


class LinkCore:
    def __init__(
        self,
        *,
        me: str,
        peer_id: str,
        link_id: str,
        offerer: bool,
        web_peer: bool,
        now: float,
        direct: bool = True,
    ) -> None:
        self.me = me
        self.peer_id = peer_id
        self.link_id = link_id
        self.offerer = offerer
        """The lower peer id of the pair: it makes every offer of the channel."""
        self.web_peer = web_peer
        """The other side is a web peer: without a direct path in RELAY_AFTER_MS, relay."""
        self.direct = direct
        """A direct path can exist: false when one side has no WebRTC (a browser
        without RTCPeerConnection says so when it registers). Every transport of
        the channel is then the leader's relay, from the first offer on, and no
        direct path is tried."""
        self.state: LinkState = "connecting"
        self.epoch = 0
        self.opened_at: float | None = None
        self.refused = 0
        """Messages refused: malformed (dropped) or oversize (the channel ended)."""
        self.host_busy = False
        """Our host does not read what we give it (see `set_host_busy`)."""
        self._out: list[Output] = []
        self._current: _Transport | None = None
        self._upgrade: _Transport | None = None
        self._upgrade_until = 0.0
        self._next_upgrade = now + UPGRADE_EVERY_MS
        self._tried_epoch = 0  # the epochs of direct paths tried never repeat
        self._retired: list[int] = []  # replaced transports, closed once the new one syncs
        self._synced_out = False  # our sync went on the current transport
        self._synced_in = False  # theirs came
        self._offer_sdp: str | None = None  # the current transport's offer, until answered
        self._answer_sdp: str | None = None  # our answer, sent again for a repeated offer
        self._migrating_until: float | None = None
        self._started = now
        self._awake = now  # when the core last ran (an input or a tick)
        self._last_resend = now
        self._next_ping = now + PING_INTERVAL_MS
        self._last_heard = now
        self._outbox = Outbox()
        self._inbox = Inbox()
        self._backlog: deque[tuple[int, Sent]] = deque()
        self._tickets = 0
        self._want_idle = False
        self._ping_seq = 0
        self._pings: dict[int, _Ping] = {}
        self._ack_due: float | None = None
        self._held = False  # acks held back while our host does not read
        self._peer_busy = False  # its last pong said its host does not read
        self._failed = False
        self._closing = False

    # ---------------------------------------------------------------- queries

    def take(self) -> list[Output]:
        """The outputs queued since the last call, in order."""
        out = self._out
        if not out:
            return out  # (nothing new: no list made)
        self._out = []
        return out

    @property
    def via(self) -> Literal["direct", "relay"]:
        return "relay" if self._current is not None and self._current.relay else "direct"

    @property
    def migrating(self) -> bool:
        return self._migrating_until is not None

    @property
    def is_open(self) -> bool:
        """Open for sending: connected, and neither failed nor closing."""
        return self.state == "connected" and not self._failed and not self._closing

    def unacked(self) -> list[str]:
        """Ids of the control messages sent and never acknowledged (state
        messages have none: the next channel's snapshot carries them)."""
        return [m.message_id for m in self._outbox.unacked() if m.message_id]

    def next_deadline(self) -> float | None:
        """When `tick` is due next (None: nothing will happen without an input)."""
        if self.state == "disconnected" or self._failed or self._closing:
            return None
        # (computed on every input, so without building a list)
        if self.state == "connecting":
            due = self._started + CONNECT_TIMEOUT_MS
            if self._relay_fallback_pending():
                due = min(due, self._started + RELAY_AFTER_MS)
            if self._offer_sdp is not None:
                due = min(due, max(self._started, self._last_resend) + OFFER_RESEND_MS)
        elif self._migrating_until is not None:
            due = self._migrating_until
            if self._offer_sdp is not None:
                due = min(due, self._last_resend + OFFER_RESEND_MS)
        else:
            due = min(self._last_heard + SILENCE_MS, self._next_ping)
            stalled = self._outbox.window.stalled_since()
            if stalled is not None and not self._peer_busy:
                due = min(due, stalled + ACK_STALL_MS)
        if self.web_peer and self.state == "connected":
            if self._upgrade is not None:
                due = min(due, self._upgrade_until)
            elif self._may_upgrade():
                due = min(due, self._next_upgrade)
        if self._ack_due is not None and self._ack_due < due:
            due = self._ack_due
        for pending in self._pings.values():
            if pending.deadline < due:
                due = pending.deadline
        return due

    # ------------------------------------------------------------ negotiation

    def offer(self, now: float, relay: bool = False) -> None:
        """(Offerer) A new transport: the first, one that replaces a transport
        whose path died, or (`relay`) one through the leader."""
        self._advance(now)
        if self._closing or self._failed:
            return
        relay = relay or not self.direct
        epoch = self._tried_epoch = max(self.epoch, self._tried_epoch) + 1
        transport = self._replace(epoch, relay=relay, offering=True, now=now)
        if relay:
            self._offer_sdp = RELAY_SDP
            self._last_resend = now
            self._signal("offer", transport.epoch, RELAY_SDP)
        else:
            self._out.append(CreateOffer(transport.epoch))

    def local_description(self, epoch: int, sdp: str, now: float) -> None:
        """The shell made the offer or answer of transport `epoch`."""
        self._advance(now)
        upgrade = self._upgrade
        if upgrade is not None and upgrade.epoch == epoch:
            self._signal("offer" if upgrade.offering else "answer", epoch, sdp)
            return
        t = self._current
        if t is None or t.epoch != epoch or t.relay or self._failed or self._closing:
            return
        if t.offering:
            self._offer_sdp = sdp
            self._last_resend = now
            self._signal("offer", epoch, sdp)
        else:
            self._answer_sdp = sdp
            self._signal("answer", epoch, sdp)

    def route_changed(self, now: float) -> None:
        """There is a new signaling route: a pending offer goes again now."""
        self._advance(now)
        if self._offer_sdp is not None and self._current is not None and not self._failed:
            self._last_resend = now
            self._signal("offer", self._current.epoch, self._offer_sdp)

    def negotiation_failed(self, epoch: int, now: float) -> None:
        """Making an offer or answer, or applying an answer, failed for `epoch`."""
        self._advance(now)
        if self._upgrade is not None and self._upgrade.epoch == epoch:
            self._drop_upgrade(now)
        elif (
            self._current is not None
            and self._current.epoch == epoch
            and not self._relay_instead(now)
        ):
            self._fail("failed")

    def offer_received(self, epoch: int, sdp: str, now: float) -> None:
        """(Answerer) An offer for this channel: a new transport, or the same again.
        The offerer of a pair takes none (the other side only answers)."""
        self._advance(now)
        if self.offerer or epoch < self.epoch or self._closing or self._failed:
            return
        if epoch == self.epoch:
            if self._answer_sdp is not None:  # our answer was lost: send it again
                self._signal("answer", epoch, self._answer_sdp)
            return
        if sdp != RELAY_SDP and not self.direct:
            return  # a direct path we cannot open: the offerer falls back to the relay
        if self._relayed_and_open() and sdp != RELAY_SDP:
            self._answer_upgrade(epoch, sdp, now)
            return
        relay = sdp == RELAY_SDP
        self._replace(epoch, relay=relay, offering=False, now=now)
        if relay:  # the answerer's relay transport is open at once
            self._answer_sdp = RELAY_SDP
            self._signal("answer", epoch, RELAY_SDP)
            self.transport_open(epoch, now)
        else:
            self._out.append(CreateAnswer(epoch, sdp))

    def answer_received(self, epoch: int, sdp: str, now: float) -> None:
        self._advance(now)
        upgrade = self._upgrade
        if upgrade is not None and upgrade.epoch == epoch and upgrade.offering:
            if not upgrade.answered:
                upgrade.answered = True
                self._out.append(AcceptAnswer(epoch, sdp))
            return
        t = self._current
        if t is None or t.epoch != epoch or not t.offering or t.answered or self._failed:
            return
        t.answered = True
        self._offer_sdp = None
        if t.relay:  # the offerer's relay transport opens with the answer
            self.transport_open(epoch, now)
        else:
            self._out.append(AcceptAnswer(epoch, sdp))

    def relay_received(self, epoch: int, data: str, now: float) -> None:
        """A message of a relay transport, through the leader."""
        self._advance(now)
        t = self._current
        if t is None or not t.relay or t.epoch != epoch:
            return
        if not t.opened:  # the offerer's opens with the first message too
            self.transport_open(epoch, now)
        self.transport_message(epoch, data, now)

    # ---------------------------------------------------------- the transports

    def transport_open(self, epoch: int, now: float) -> None:
        self._advance(now)
        if self._upgrade is not None and self._upgrade.epoch == epoch:
            self._promote(now)
        t = self._current
        if t is None or t.epoch != epoch or self._failed or self._closing:
            return
        t.opened = True
        self._last_heard = now
        self._send_sync(t)

    def transport_closed(self, epoch: int, reason: TransportEnd, now: float) -> None:
        self._advance(now)
        if self._upgrade is not None and self._upgrade.epoch == epoch:
            self._drop_upgrade(now)  # the direct path did not open; still relayed
            return
        if self._current is None or self._current.epoch != epoch:
            return
        if self.migrating and not self.offerer:
            return  # the offerer replaces it; the deadline bounds the wait
        if self._relay_instead(now):
            return
        self._fail(reason)

    def send_failed(self, epoch: int, now: float) -> None:
        """A `Send` with `must` could not go on transport `epoch`."""
        self._advance(now)
        if self._current is not None and self._current.epoch == epoch and not self.migrating:
            self._fail("failed")

    def transport_message(self, epoch: int, data: str | bytes, now: float) -> None:
        self._advance(now)
        if self._upgrade is not None and self._upgrade.epoch == epoch:
            self._promote(now)  # the other side's opened first
        t = self._current
        if t is None or t.epoch != epoch or self._failed or self._closing:
            return  # a replaced transport: its stragglers are sent again after the sync
        t.opened = True
        self._last_heard = now
        if not self._synced_out:
            self._send_sync(t)
        size = _size(data)
        if size > MAX_MESSAGE_BYTES:
            self.refused += 1
            self._fail("failed")
            return
        try:
            if isinstance(data, bytes):  # the channel carries text
                raise msgspec.DecodeError("a binary message")
            envelope = decode_envelope(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.refused += 1
            self._count_for_ack(size, now)  # the sender counted it in its window
            return
        if isinstance(envelope, PingEnvelope):
            pong = PongEnvelope(seq=envelope.seq, sent_at=envelope.sent_at, busy=self._held)
            self._send(t.epoch, _encode(pong), must=False)
        elif isinstance(envelope, PongEnvelope):
            self._peer_busy = envelope.busy
            pending = self._pings.pop(envelope.seq, None)
            if pending is not None and not pending.probe:
                self._out.append(Pong(envelope.seq, now - pending.sent))
        elif isinstance(envelope, SyncEnvelope):
            self._on_sync(t, envelope.received, now)
        elif not self._synced_in:
            self._fail("failed")  # anything else before the other side's sync
        elif isinstance(envelope, AckEnvelope):
            try:
                self._outbox.on_ack(envelope.count, now)
            except ValueError:
                self._fail("failed")
                return
            self._drain(now)
        elif isinstance(envelope, ByeEnvelope):
            self._fail("left")
        else:
            self._out.append(Message(envelope))
            self._count_for_ack(size, now)

    def path_changed(
        self,
        now: float,
        lost_local: set[str],
        remote_addresses: set[str] | None,
        path: Path | None,
    ) -> None:
        """Addresses went away (ours: `lost_local`; theirs: the ones they have
        now); `path` is what the current transport uses, if it can be read. If
        the path used a lost address, get a new transport; if it cannot be told,
        a ping decides."""
        self._advance(now)
        if self._closing or self._failed or self.state == "disconnected":
            return
        t = self._current
        if self.state == "connecting" or t is None or not t.opened:
            if self.offerer and lost_local:  # our offer named addresses that are gone
                self.offer(now)
            return
        if self.migrating:
            return
        # A host or peer-reflexive candidate is the peer's own address; through a relay
        # or a NAT its addresses say nothing about the path: ask it instead.
        direct = path is not None and path.remote_type in ("host", "prflx")
        if path is None or (remote_addresses is not None and not direct):
            self._probe(now, "path")
            return
        dead = path.local in lost_local
        if remote_addresses is not None:
            dead = dead or path.remote not in remote_addresses
        if dead:
            self._path_dead(now)

    # ---------------------------------------------------------------- sending

    def send(self, text: str, message_id: str, now: float) -> int | None:
        """Send a control or state message now (None), or queue it behind the
        send window or a transport being replaced: then a ticket, and `Went` or
        `Dropped` with it later. Queued messages keep their order. Raises
        ConnectionError when the channel is not open."""
        self._advance(now)
        if not self.is_open:
            raise ConnectionError(f"data channel to {self.peer_id} is not open")
        message = Sent(message_id, text, datagrams(_size(text)))
        if not self._backlog and self._ready(message.cost):
            self._go(message, now)
            return None
        self._tickets += 1
        self._backlog.append((self._tickets, message))
        self._want_idle = True
        return self._tickets

    def send_now(self, text: str, now: float) -> bool:
        """Send it if it can go at once (open, nothing queued, room in the
        window); False otherwise, and nothing was sent (`Idle` follows later)."""
        self._advance(now)
        if not self.is_open:
            return False
        message = Sent("", text, datagrams(_size(text)))
        if self._backlog or not self._ready(message.cost):
            self._want_idle = True
            return False
        self._go(message, now)
        return True

    def cancel(self, ticket: int) -> None:
        """A queued message's sender gave up: it must not go out later."""
        self._backlog = deque(q for q in self._backlog if q[0] != ticket)

    def ping(self, now: float, timeout_ms: float) -> int:
        """Ping the other side: `Pong(seq)` or `NoPong(seq)` follows. Raises
        ConnectionError when the channel is not open."""
        self._advance(now)
        t = self._current
        if t is None or not self._synced_in or self._failed or self._closing:
            raise ConnectionError(f"data channel to {self.peer_id} is not open")
        return self._ping(t, now, timeout_ms, "")

    def set_host_busy(self, busy: bool, now: float) -> None:
        """Whether our host reads what we give it. An ack says "your messages
        reached my host": while it does not read, acks are held back (the sender
        then waits, rather than our memory grow)."""
        self._advance(now)
        self.host_busy = busy
        if not busy and self._held:
            self._send_ack(now)

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> None:
        """Carry out what is due at `now` (see `next_deadline`)."""
        if self.next_deadline() is None:
            return
        self._advance(now)
        if self._ack_due is not None and now >= self._ack_due:
            self._send_ack(now)
        for seq, pending in list(self._pings.items()):
            if now >= pending.deadline and self._pings.pop(seq, None) is not None:
                self._ping_lost(seq, pending, now)
        if self._failed:
            return
        if self.state == "connecting":
            if self._relay_fallback_pending() and now >= self._started + RELAY_AFTER_MS:
                self.offer(now, relay=True)
            elif now >= self._started + CONNECT_TIMEOUT_MS:
                self._fail("failed")
            elif self._offer_sdp is not None and now >= self._started + OFFER_RESEND_MS:
                self._resend_offer(now)
            return
        if self._upgrade is not None and now >= self._upgrade_until:
            self._drop_upgrade(now)  # not open in time; still relayed
        elif self._may_upgrade() and now >= self._next_upgrade:
            self._try_upgrade(now)
        if self._migrating_until is not None:
            if now >= self._migrating_until:
                self._fail("failed")  # no new transport in time
            else:
                self._resend_offer(now)
            return
        if now >= self._last_heard + SILENCE_MS:
            self._fail("timeout")
            return
        if self._outbox.window.stalled_for(now) >= ACK_STALL_MS and not self._peer_busy:
            self._fail("failed")  # pings answered, data never acknowledged
            return
        t = self._current
        if now >= self._next_ping and t is not None:
            self._next_ping = now + PING_INTERVAL_MS
            self._ping_seq += 1
            self._send(t.epoch, _encode(PingEnvelope(seq=self._ping_seq, sent_at=int(now))), False)

    def _advance(self, now: float) -> None:
        """The clock moves to `now`. A deadline passed by more than SUSPEND_MS means
        we were not running (a laptop lid, SIGSTOP): the whole time since we last
        ran was our sleep, and counts against nobody."""
        if now - self._awake > SUSPEND_MS:  # cheap first: it ran recently
            due = self.next_deadline()
            if due is not None and now - due > SUSPEND_MS:
                self._suspended(now, now - self._awake)
        self._awake = max(self._awake, now)

    def _suspended(self, now: float, slept: float) -> None:
        """We were not running: the peer's silence is ours. Ask it once."""
        self._started += slept
        if self._migrating_until is not None:
            self._migrating_until += slept
        self._outbox.window.suspended(slept)
        if self.state == "connected" and self._current is not None:
            self._last_heard = now
            self._next_ping = now + PING_INTERVAL_MS
            self._probe(now, "woke")

    # ---------------------------------------------------------------- the end

    def close(self, say_bye: bool, now: float) -> None:
        """Close for good (idempotent). What waits fails now (`Dropped`), and
        nothing goes out after the bye (the other side drops what follows it)."""
        del now
        if self._closing:
            return
        self._closing = True
        self._ack_due = None
        for ticket, _ in self._backlog:
            self._out.append(Dropped(ticket))
        self._backlog.clear()
        t = self._current
        if say_bye and self.state == "connected" and t is not None and self._synced_in:
            self._send(t.epoch, _encode(ByeEnvelope()), must=False)
        self.state = "disconnected"
        for seq in self._pings:
            self._out.append(NoPong(seq))
        self._pings.clear()
        epochs = [*self._retired]
        self._retired = []
        for extra in (t, self._upgrade):
            if extra is not None:
                epochs.append(extra.epoch)
        self._upgrade = None
        self._out.extend(Close(e) for e in epochs)

    # --------------------------------------------------------------- internals

    def _fail(self, reason: DisconnectReason) -> None:
        if self._closing or self._failed:
            return
        self._failed = True
        self._out.append(Down(reason, self.unacked()))

    def _signal(self, kind: SignalKind, epoch: int, sdp: str) -> None:
        self._out.append(Signal(kind, epoch, sdp))

    def _send(self, epoch: int, text: str, must: bool) -> None:
        self._out.append(Send(epoch, text, must))

    def _resend_offer(self, now: float) -> None:
        if self._offer_sdp is not None and now >= self._last_resend + OFFER_RESEND_MS:
            self._last_resend = now
            assert self._current is not None
            self._signal("offer", self._current.epoch, self._offer_sdp)

    def _replace(self, epoch: int, *, relay: bool, offering: bool, now: float) -> _Transport:
        """A new transport `epoch` carries the channel from now on."""
        self._drop_upgrade(now)
        transport = _Transport(epoch, relay, offering)
        old = self._switch_to(transport, now)
        if relay:
            self._out.append(OpenRelay(epoch))
        if old is not None:
            if self.offerer:
                # Closed once the new one syncs: closing now would abort the other side's
                # copy before our offer reached it, if that path still carries anything.
                self._retired.append(old.epoch)
            else:
                self._out.append(Close(old.epoch))
        return transport

    def _switch_to(self, transport: _Transport, now: float) -> _Transport | None:
        """`transport` carries the channel from now on (nothing synced on it yet, the
        send window starts over; an open channel migrates); returns the one it replaces."""
        old = self._current
        self.epoch = transport.epoch
        self._current = transport
        self._offer_sdp = self._answer_sdp = None
        self._synced_out = self._synced_in = False
        self._outbox.new_transport()
        self._ack_due = None
        if self.state == "connected":
            self._migrating_until = now + MIGRATE_MS
        return old

    def _send_sync(self, t: _Transport) -> None:
        if self._synced_out:
            return
        self._synced_out = True
        self._send(t.epoch, _encode(SyncEnvelope(received=self._inbox.sync())), must=True)

    def _on_sync(self, t: _Transport, received: int, now: float) -> None:
        if self._synced_in:
            self._fail("failed")  # a second sync on one transport
            return
        try:
            again = self._outbox.on_sync(received, now)
        except ValueError:  # the other side does not continue this channel
            self._fail("failed")
            return
        self._synced_in = True
        self._migrating_until = None
        self._out.extend(Close(e) for e in self._retired)
        self._retired = []
        for message in again:
            self._send(t.epoch, message.text, must=True)
        if self.state == "connecting":
            self.state = "connected"
            self.opened_at = now
            self._next_ping = now + PING_INTERVAL_MS
            self._out.append(Up())
        self._drain(now)

    def _count_for_ack(self, size: int, now: float) -> None:
        due = self._inbox.on_message(datagrams(size))
        if self._inbox.clock.pending > MAX_UNACKED_DATAGRAMS:
            self._fail("failed")  # the other side ignores the send window
        elif due:
            self._send_ack(now)
        elif self._ack_due is None:
            self._ack_due = now + ACK_DELAY_MS

    def _send_ack(self, now: float) -> None:
        del now
        self._ack_due = None
        self._held = self.host_busy
        if self._held:
            return
        t = self._current
        count = self._inbox.take_ack()
        if count is not None and t is not None:
            self._send(t.epoch, _encode(AckEnvelope(count=count)), must=False)

    def _ready(self, cost: int) -> bool:
        t = self._current
        if t is None or not t.opened or self.migrating or self._failed:
            return False
        return self._outbox.can_send(cost)

    def _go(self, message: Sent, now: float) -> None:
        """Counted as sent whatever happens: if the transport fails under it,
        it is sent again after the next sync, or reported unacknowledged."""
        assert self._current is not None
        self._outbox.on_sent(message, now)
        self._send(self._current.epoch, message.text, must=True)

    def _drain(self, now: float) -> None:
        while self._backlog and self._ready(self._backlog[0][1].cost):
            ticket, message = self._backlog.popleft()
            self._go(message, now)
            self._out.append(Went(ticket))
        if self._want_idle and not self._backlog and self.is_open:
            self._want_idle = False
            self._out.append(Idle())

    def _ping(self, t: _Transport, now: float, timeout_ms: float, probe: _Probe) -> int:
        self._ping_seq += 1
        seq = self._ping_seq
        self._pings[seq] = _Ping(now, now + timeout_ms, probe, t.epoch)
        self._send(t.epoch, _encode(PingEnvelope(seq=seq, sent_at=int(now))), must=False)
        return seq

    def _probe(self, now: float, why: _Probe) -> None:
        t = self._current
        if t is not None and self._synced_in:
            self._ping(t, now, PROBE_MS, why)
        elif t is not None:
            self._probe_failed(t.epoch, why, now)

    def _ping_lost(self, seq: int, pending: _Ping, now: float) -> None:
        if not pending.probe:
            self._out.append(NoPong(seq))
        else:
            self._probe_failed(pending.epoch, pending.probe, now)

    def _probe_failed(self, epoch: int, why: _Probe, now: float) -> None:
        if self._current is None or self._current.epoch != epoch or self.migrating:
            return
        if why == "woke":  # after a suspension: it most likely gave up on us
            self._fail("timeout")
        else:
            self._path_dead(now)

    def _path_dead(self, now: float) -> None:
        if self.offerer:
            self.offer(now)
        else:  # the offerer hears of it through the room and offers anew
            self._migrating_until = now + MIGRATE_MS
            self._outbox.new_transport()

    # ------------------------------------------------- from the relay to a direct path

    def _relay_fallback_pending(self) -> bool:
        if not self.web_peer or not self.offerer:
            return False
        return self._current is None or not self._current.relay

    def _relay_instead(self, now: float) -> bool:
        """(Offerer, with a web peer) The direct transport failed before the channel
        ever opened (a browser with no usable address fails in milliseconds): the
        relay now, not a retry of what just failed."""
        if self.state != "connecting" or not self._relay_fallback_pending():
            return False
        self.offer(now, relay=True)
        return True

    def _relayed_and_open(self) -> bool:
        t = self._current
        return (
            self.state == "connected"
            and not self.migrating
            and t is not None
            and t.relay
            and self._synced_in
        )

    def _may_upgrade(self) -> bool:
        return self.web_peer and self.offerer and self.direct and self._relayed_and_open()

    def _try_upgrade(self, now: float) -> None:
        """(Offerer) Offer a direct transport beside the relay that carries the channel."""
        self._next_upgrade = now + UPGRADE_EVERY_MS
        epoch = self._tried_epoch = max(self.epoch, self._tried_epoch) + 1
        self._upgrade = _Transport(epoch, relay=False, offering=True)
        self._upgrade_until = now + UPGRADE_WINDOW_MS
        self._out.append(CreateOffer(epoch))

    def _answer_upgrade(self, epoch: int, sdp: str, now: float) -> None:
        """(Answerer) A direct transport offered while the relay carries the channel."""
        if self._upgrade is not None and self._upgrade.epoch >= epoch:
            return
        self._drop_upgrade(now)
        self._upgrade = _Transport(epoch, relay=False, offering=False)
        self._upgrade_until = now + UPGRADE_WINDOW_MS
        self._out.append(CreateAnswer(epoch, sdp))

    def _drop_upgrade(self, now: float) -> None:
        upgrade = self._upgrade
        if upgrade is None:
            return
        self._upgrade = None
        self._next_upgrade = now + UPGRADE_EVERY_MS
        self._out.append(Close(upgrade.epoch))

    def _promote(self, now: float) -> None:
        """The direct path opened: it carries the channel from now on (the sync on it
        settles what the relay had in flight, as after any change of transport)."""
        upgrade = self._upgrade
        assert upgrade is not None
        self._upgrade = None
        upgrade.opened = True
        old = self._switch_to(upgrade, now)
        if old is not None:
            self._retired.append(old.epoch)  # closed once the direct one syncs


_Probe = Literal["", "path", "woke"]


def _encode(envelope: object) -> str:
    return _encoder.encode(envelope).decode()


def _size(data: str | bytes) -> int:
    """Bytes of a message as the wire carries it (UTF-8)."""
    return len(data) if isinstance(data, bytes) or data.isascii() else len(data.encode())
