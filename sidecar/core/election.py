"""Leader election as a sans-I/O state machine (docs/protocol.md, "Election").

`Election` is fed what the adapters observe (mDNS records seen and gone, the
outcome of joining a leader, the leader's peer lists, the loss of the leader,
and clock ticks) and answers with decisions for the peer to carry out. It
never touches a socket or a clock of its own, so every rule is unit-tested
with a fake clock.

The rules, in short:
 * On start, listen for a short window: join a serving leader as soon as one
   is seen (a Controller takes over from a Display leader instead).
 * Otherwise the highest priority among the candidates becomes leader; the
   others wait for it to lead, and drop it if it never does.
 * Duplicate leaders: the lower priority steps down to the higher one; the
   winner lifts its term above the loser's so the loser's followers accept it.
 * Leader lost: the highest surviving priority of the leader's last peer list
   succeeds at once, term + 1, without a new discovery round.
 * Records are hints: a peer that failed to answer is dead until it shows a
   higher term. Leader records with a term below ours are stale and ignored.
 * Offline (no usable network address): nothing is decided. A leader stays
   leader, a follower keeps its leader while its connection lasts; a peer
   that loses its leader meanwhile does not blame it (we are the one cut
   off) and, like a candidate, starts a fresh discovery window when the
   network is back. The term is kept throughout.
 * Moved: when our own addresses change, a follower registers again at its
   leader (`Follow(rejoin=True)`); when the leader's record shows it serving
   at other addresses or another port, the follower goes there too.
 * Hints stay hints: an mDNS goodbye of the leader we follow changes nothing
   (its connection decides); terms beyond TERM_ACCEPT_MAX are not believed;
   at most MAX_RECORDS records and MAX_DEAD failures are kept (the oldest
   go), and a chain of successors that do not answer ends after
   MAX_SUCCESSORS with a fresh discovery round.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sidecar.contract import LeaderState, PeerRecord, SignalPeer
from sidecar.core.priority import Priority, priority_of

TERM_ACCEPT_MAX = 2**50
"""A term above this is not believed: a room needs a change of leader per term,
and 2**50 of them is not a room; believing one would push every term past
what JavaScript holds exactly (2**53)."""
MAX_RECORDS = 128
"""Records kept (a room is a handful of devices; a flood of forged ones must
not grow memory)."""
MAX_DEAD = 256
MAX_SUCCESSORS = 3
"""Successors tried one after another after a loss before a fresh election."""


@dataclass(frozen=True, slots=True)
class Timing:
    discovery_window_s: float = 0.6
    """Listening time at start before standing as a candidate; mDNS answers
    and announcements (sent without probing) arrive within ~0.1 s."""
    winner_wait_s: float = 2.0
    """How long the losers of an election wait for the winner to lead."""


@dataclass(frozen=True, slots=True)
class BecomeLeader:
    term: int


@dataclass(frozen=True, slots=True)
class Follow:
    """Join `leader_id` at its signaling server. `successor` is set when it
    was chosen from the old leader's peer list and may not be leading yet.
    `rejoin`: we already follow it and register again, at a new address of
    its or from a new one of ours; until that succeeds the old connection,
    if it still works, stays the one that counts."""

    leader_id: str
    addresses: tuple[str, ...]
    port: int
    term: int
    successor: bool = False
    rejoin: bool = False


@dataclass(frozen=True, slots=True)
class Retermed:
    """We stay leader with a higher term (announce it, tell the followers)."""

    term: int


Decision = BecomeLeader | Follow | Retermed


class Election:
    def __init__(self, me: SignalPeer, timing: Timing | None = None) -> None:
        self.me = me
        self.timing = timing or Timing()
        self._mine = priority_of(me)
        self.state: LeaderState = "idle"
        self.term = 0
        self.leader_id: str | None = None
        self.joined = False
        """True once registered at the leader we follow (always True as leader)."""
        self._records: dict[str, PeerRecord] = {}  # insertion order = last seen order
        self._members: dict[str, SignalPeer] = {}
        self._dead: dict[str, int] = {}  # peer id -> the term at which it failed us
        self._deadline: float | None = None
        self._awaiting: str | None = None  # election winner we wait for
        self._discovery_ends = 0.0
        self._succession_term: int | None = None  # term the successor will lead
        self._successors_tried = 0
        self._target: tuple[frozenset[str], int] | None = None  # where we joined the leader
        self.offline = False
        """No usable network address: the rules are paused (see the module)."""

    # ------------------------------------------------------------------ queries

    def next_deadline(self) -> float | None:
        """When `tick` must be called next (None: only events matter)."""
        return self._deadline

    @property
    def is_leader(self) -> bool:
        return self.state == "leader"

    def members(self) -> list[SignalPeer]:
        """The leader's last peer list (followers only)."""
        return list(self._members.values())

    def record(self, peer_id: str) -> PeerRecord | None:
        return self._records.get(peer_id)

    # ------------------------------------------------------------------- inputs

    def start(self, now: float, offline: bool = False) -> list[Decision]:
        """Begin; `offline`: no usable address yet (see `network_up`)."""
        self.offline = offline
        self._discover(now)
        return [] if offline else self._evaluate(now)

    def _discover(self, now: float) -> None:
        self.state = "discovering"
        self.leader_id = None
        self.joined = False
        self._awaiting = None
        self._target = None
        self._discovery_ends = now + self.timing.discovery_window_s
        self._deadline = None if self.offline else self._discovery_ends

    def network_down(self, now: float) -> list[Decision]:
        """No usable address left: pause."""
        del now
        self.offline = True
        if self.state in ("discovering", "electing"):
            self._deadline = None
        return []

    def network_up(self, now: float) -> list[Decision]:
        """Usable addresses again. An unled peer starts a fresh discovery window
        (a serving leader is joined as soon as it is seen); a leader or a
        follower carries on."""
        if not self.offline:
            return []
        self.offline = False
        if self.state in ("discovering", "electing"):
            self._records.clear()  # what mDNS said before the outage is stale
            self._discover(now)
            return self._evaluate(now)
        return []

    def rejoin(self, now: float) -> list[Decision]:
        """Our addresses changed: a follower registers again at its leader."""
        del now
        if self.offline or self.state != "follower" or self.leader_id is None:
            return []
        known = self._records.get(self.leader_id) or self._members.get(self.leader_id)
        if known is None:
            return []
        return [self._target_of(known, rejoin=True)]

    def dropped(self, leader_id: str, now: float) -> list[Decision]:
        """Our leader closed our connection for missed heartbeats: it is alive
        (we slept, or our network was down), so register with it again rather
        than look for a successor. If that fails, `join_failed` follows."""
        if leader_id != self.leader_id or self.state != "follower":
            return []
        if self.offline:
            return self.leader_lost(leader_id, now)
        known = self._records.get(leader_id) or self._members.get(leader_id)
        if known is None:
            return self.leader_lost(leader_id, now)
        self.joined = False
        return [self._target_of(known, rejoin=False)]

    def tick(self, now: float) -> list[Decision]:
        if self.offline or self._deadline is None or now < self._deadline:
            return []
        return self._evaluate(now)

    def record_seen(self, record: PeerRecord, now: float) -> list[Decision]:
        if record.peer_id == self.me.peer_id or self.state == "idle":
            return []
        if record.term > TERM_ACCEPT_MAX:
            return []
        self._records.pop(record.peer_id, None)  # re-inserted last: the newest
        self._records[record.peer_id] = record
        while len(self._records) > MAX_RECORDS:
            oldest = next(p for p in self._records if p != self.leader_id)
            del self._records[oldest]
        if self.offline:
            return []
        if (
            self.state == "follower"
            and self.joined
            and record.peer_id == self.leader_id
            and record.role == "leader"
            and record.term >= self.term
            and self._target is not None
            and self._target != (frozenset(record.addresses), record.port)
            and record.addresses
        ):
            return [self._target_of(record, rejoin=True)]
        return self._evaluate(now)

    def _target_of(self, leader: PeerRecord | SignalPeer, rejoin: bool) -> Follow:
        self._target = (frozenset(leader.addresses), leader.port)
        return Follow(
            leader.peer_id, tuple(leader.addresses), leader.port, self.term, rejoin=rejoin
        )

    def record_gone(self, peer_id: str, now: float) -> list[Decision]:
        """A goodbye: the peer says it left. A hint: the leader we follow is lost
        only when its connection says so (anyone can send a goodbye)."""
        gone = self._records.pop(peer_id, None)
        if peer_id == self.leader_id:
            return []
        if gone is not None and peer_id == self._awaiting:
            self._mark_dead(peer_id)
            return self._evaluate(now)
        return []

    def joined_leader(
        self, leader_id: str, term: int, members: Iterable[SignalPeer], now: float
    ) -> list[Decision]:
        """Registered at `leader_id`'s signaling server."""
        if leader_id != self.leader_id or self.state != "follower" or term > TERM_ACCEPT_MAX:
            return []
        self.joined = True
        self.term = max(self.term, term)
        self._deadline = None
        self._succession_term = None
        self._successors_tried = 0
        self._set_members(members)
        return self._evaluate(now)

    def peer_list(
        self, leader_id: str, term: int, members: Iterable[SignalPeer], now: float
    ) -> list[Decision]:
        """A peer list from the leader we follow. One naming another leader is a
        redirect: our leader stepped down in its favour."""
        if self.state != "follower" or term < self.term or term > TERM_ACCEPT_MAX:
            return []
        listed = list(members)
        if leader_id != self.leader_id:
            target = next((m for m in listed if m.peer_id == leader_id), None)
            if target is None or leader_id == self.me.peer_id:
                return []
            self._set_members(listed)
            return self._follow(leader_id, tuple(target.addresses), target.port, term)
        self.term = term
        self._set_members(listed)
        return []

    def join_failed(self, leader_id: str, now: float) -> list[Decision]:
        """Could not register at `leader_id` (refused, timed out, not leading)."""
        return self.leader_lost(leader_id, now)

    def leader_lost(self, leader_id: str, now: float) -> list[Decision]:
        """The connection to our leader closed or 3 heartbeats went unanswered."""
        if leader_id != self.leader_id or self.state != "follower":
            return []
        if self.offline:  # we are the one cut off: the leader may well be fine
            self._discover(now)
            return []
        self._mark_dead(leader_id)
        return self._succeed(now)

    def stop(self) -> None:
        self.state = "idle"
        self.leader_id = None
        self.joined = False
        self.offline = False
        self._deadline = None
        self._awaiting = None
        self._target = None
        self._records.clear()
        self._members.clear()

    # ---------------------------------------------------------------- the rules

    def _set_members(self, members: Iterable[SignalPeer]) -> None:
        # A leader's list proves its members alive: they heartbeat to it.
        self._members = {m.peer_id: m for m in members}
        for peer_id in self._members:
            self._dead.pop(peer_id, None)

    def _alive(self, peer_id: str, term: int) -> bool:
        failed_at = self._dead.get(peer_id)
        return failed_at is None or term > failed_at

    def _mark_dead(self, peer_id: str) -> None:
        record = self._records.get(peer_id)
        seen_term = record.term if record else 0
        self._dead[peer_id] = max(self.term, seen_term, self._dead.pop(peer_id, 0))
        while len(self._dead) > MAX_DEAD:
            del self._dead[next(iter(self._dead))]
        self._members.pop(peer_id, None)
        if self._awaiting == peer_id:
            self._awaiting = None

    def _leaders(self) -> list[PeerRecord]:
        """Live, non-stale leader records of other peers."""
        return [
            r
            for r in self._records.values()
            if r.role == "leader" and r.term >= self.term and self._alive(r.peer_id, r.term)
        ]

    def _takes_over_from(self, leader: PeerRecord | SignalPeer) -> bool:
        # The booth controller leads whenever present (docs/protocol.md, "Election").
        return self.me.peer_type == "controller" and leader.peer_type == "display"

    def _known_term(self) -> int:
        return max([self.term, *(r.term for r in self._records.values())])

    def _become_leader(self, term: int) -> list[Decision]:
        self.state = "leader"
        self.leader_id = self.me.peer_id
        self.term = term
        self.joined = True
        self._deadline = None
        self._awaiting = None
        self._target = None
        self._succession_term = None
        self._members.clear()
        return [BecomeLeader(term)]

    def _follow(
        self,
        leader_id: str,
        addresses: tuple[str, ...],
        port: int,
        term: int,
        successor: bool = False,
    ) -> list[Decision]:
        if self.state == "follower" and self.leader_id == leader_id:
            return []
        self.state = "follower"
        self.leader_id = leader_id
        self.term = max(self.term, term)
        self.joined = False
        self._deadline = None
        self._awaiting = None
        self._target = (frozenset(addresses), port)
        return [Follow(leader_id, addresses, port, self.term, successor)]

    def _join_best_leader(self, leaders: list[PeerRecord]) -> list[Decision]:
        # Prefer the newest term (lingering records of dead leaders carry old
        # ones), then priority.
        best = max(leaders, key=lambda r: (r.term, priority_of(r)))
        if self._takes_over_from(best) and not any(r.peer_type == "controller" for r in leaders):
            return self._become_leader(self._known_term() + 1)
        return self._follow(best.peer_id, best.addresses, best.port, best.term)

    def _evaluate(self, now: float) -> list[Decision]:
        if self.state in ("discovering", "electing"):
            return self._evaluate_unled(now)
        if self.state == "leader":
            return self._evaluate_leader()
        if self.state == "follower":
            return self._evaluate_follower()
        return []

    def _evaluate_unled(self, now: float) -> list[Decision]:
        leaders = self._leaders()
        if leaders:
            return self._join_best_leader(leaders)
        if self.state == "discovering":
            if self._deadline is not None and now < self._deadline:
                return []
            self.state = "electing"
            self._deadline = None
        candidates: list[tuple[Priority, PeerRecord | None]] = [(self._mine, None)]
        candidates += [
            (priority_of(r), r)
            for r in self._records.values()
            if r.role == "candidate" and self._alive(r.peer_id, r.term)
        ]
        _, winner = max(candidates, key=lambda c: c[0])
        if winner is None:
            return self._become_leader(self._known_term() + 1)
        if self._awaiting != winner.peer_id:
            self._awaiting = winner.peer_id
            self._deadline = now + self.timing.winner_wait_s
        elif self._deadline is not None and now >= self._deadline:
            self._mark_dead(winner.peer_id)
            return self._evaluate_unled(now)
        return []

    def _evaluate_leader(self) -> list[Decision]:
        rivals = [r for r in self._leaders() if r.peer_id != self.me.peer_id]
        if not rivals:
            return []
        best = max(rivals, key=priority_of)
        if priority_of(best) > self._mine:
            return self._follow(best.peer_id, best.addresses, best.port, best.term)
        # We outrank every rival: lift our term above theirs, so that their
        # followers (who ignore stale terms) accept us.
        top = max(r.term for r in rivals)
        if top >= self.term:
            self.term = top + 1
            return [Retermed(self.term)]
        return []

    def _leader_priority(self) -> Priority | None:
        if self.leader_id is None:
            return None
        known = self._records.get(self.leader_id) or self._members.get(self.leader_id)
        return priority_of(known) if known is not None else None

    def _evaluate_follower(self) -> list[Decision]:
        current = self._leader_priority()
        rivals = [r for r in self._leaders() if r.peer_id != self.leader_id]
        better = [r for r in rivals if current is None or priority_of(r) > current]
        if better:
            return self._join_best_leader(better)
        ours = self._records.get(self.leader_id or "")
        if ours is not None and ours.role == "leader" and self._takes_over_from(ours):
            return self._become_leader(self._known_term() + 1)
        # Our leader announced that it now follows another: go there too.
        if ours is not None and ours.role == "follower" and ours.term >= self.term:
            target = self._records.get(ours.leader_id or "")
            if target is not None and target.role == "leader" and target.peer_id != self.me.peer_id:
                return self._follow(target.peer_id, target.addresses, target.port, target.term)
        return []

    def _succeed(self, now: float) -> list[Decision]:
        """After losing the leader: a live leader we know of, else the successor."""
        self.leader_id = None
        self.joined = False
        leaders = self._leaders()
        if leaders:
            self.state = "electing"
            return self._join_best_leader(leaders)
        survivors: list[SignalPeer] = [
            m
            for m in self._members.values()
            if m.peer_id != self.me.peer_id
            and m.peer_id not in self._dead
            and m.port > 0  # a member without a server (a browser) cannot lead
            and m.addresses
        ]
        if not survivors and not self._members:
            # Never got a peer list: back to discovery (what is left of its
            # window), then a fresh election.
            self.state = "discovering"
            self._deadline = max(now, self._discovery_ends)
            return self._evaluate_unled(now)
        # A chain of unreachable successors keeps the term of the first loss.
        if self._succession_term is None:
            self._succession_term = self.term + 1
        term = self._succession_term
        best = max(survivors, key=priority_of, default=None)
        if best is None or self._mine > priority_of(best):
            return self._become_leader(term)
        self._successors_tried += 1
        if self._successors_tried > MAX_SUCCESSORS:
            # Those left do not answer either (or the list was not the room's):
            # ask the network instead, with a fresh discovery window.
            self._successors_tried = 0
            self._members.clear()
            self._discover(now)
            return self._evaluate(now)
        self.state = "electing"
        return self._follow(best.peer_id, tuple(best.addresses), best.port, term, successor=True)
