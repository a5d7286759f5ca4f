"""The election rules, driven with a fake clock and a simulated room.

`SimRoom` stands in for mDNS and the signaling server: each step it shows
every peer the records of the peers it can reach, joins followers to their
leader when it is reachable and leading, and reports leader loss when not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.contract import PeerRecord, PeerType, Role, SignalPeer
from sidecar.core.election import (
    MAX_RECORDS,
    MAX_SUCCESSORS,
    TERM_ACCEPT_MAX,
    BecomeLeader,
    Decision,
    Election,
    Follow,
    Retermed,
    Timing,
)
from sidecar.node.membership import SUCCESSOR_WAIT_S

TIMING = Timing()


def make_peer(peer_id: str, peer_type: PeerType = "display", started_at: int = 1000) -> SignalPeer:
    return SignalPeer(
        peer_id=peer_id,
        name=peer_id,
        peer_type=peer_type,
        display_class="audience" if peer_type == "display" else None,
        started_at=started_at,
        addresses=["10.77.0.9"],
        port=3010,
    )


def follow(leader_id: str, term: int, successor: bool = False) -> Follow:
    """The Follow decision for a peer made by make_peer."""
    return Follow(leader_id, ("10.77.0.9",), 3010, term, successor)


def record_of(election: Election, room: str = "default") -> PeerRecord:
    me = election.me
    role: Role
    if election.state == "leader":
        role = "leader"
    elif election.state == "follower" and election.joined:
        role = "follower"
    else:
        role = "candidate"
    return PeerRecord.of(me, role=role, leader_id=election.leader_id, term=election.term, room=room)


def leader_record(peer: SignalPeer, term: int) -> PeerRecord:
    return PeerRecord.of(peer, role="leader", leader_id=peer.peer_id, term=term, room="default")


# ----------------------------------------------------------------- one peer


def test_alone_becomes_leader_after_the_discovery_window() -> None:
    e = Election(make_peer("a"))
    assert e.start(0.0) == []
    assert e.state == "discovering"
    assert e.tick(TIMING.discovery_window_s - 0.01) == []
    assert e.tick(TIMING.discovery_window_s) == [BecomeLeader(1)]
    assert (e.state, e.leader_id, e.term, e.next_deadline()) == ("leader", "a", 1, None)


def test_joins_a_serving_leader_at_once_even_with_higher_priority() -> None:
    me = make_peer("a", started_at=1)  # earlier start: higher priority than the leader
    leader = make_peer("z", started_at=500)
    e = Election(me)
    e.start(0.0)
    decisions = e.record_seen(leader_record(leader, 4), 0.05)
    assert decisions == [follow("z", 4)]
    assert e.state == "follower" and not e.joined
    assert e.joined_leader("z", 4, [leader, me], 0.1) == []
    assert e.joined and e.term == 4


def test_controller_takes_over_from_a_display_leader() -> None:
    e = Election(make_peer("c", "controller", started_at=9_999))
    e.start(0.0)
    assert e.record_seen(leader_record(make_peer("d"), 3), 0.05) == [BecomeLeader(4)]


def test_controller_joins_a_controller_leader() -> None:
    e = Election(make_peer("c2", "controller", started_at=1))
    e.start(0.0)
    decisions = e.record_seen(leader_record(make_peer("c1", "controller", 5), 2), 0.05)
    assert decisions == [follow("c1", 2)]


def test_lower_priority_candidate_waits_for_the_winner_then_follows_it() -> None:
    me, winner = make_peer("b", started_at=2), make_peer("a", started_at=1)
    e = Election(me)
    e.start(0.0)
    as_candidate = leader_record(winner, 0)
    assert e.record_seen(msgspec.structs.replace(as_candidate, role="candidate"), 0.1) == []
    assert e.tick(TIMING.discovery_window_s) == []
    assert e.state == "electing"
    assert e.record_seen(leader_record(winner, 1), 0.7) == [follow("a", 1)]


def test_a_winner_that_never_leads_is_dropped() -> None:
    me, winner = make_peer("b", started_at=2), make_peer("a", started_at=1)
    e = Election(me)
    e.start(0.0)
    e.record_seen(_as(leader_record(winner, 0), role="candidate"), 0.1)
    e.tick(TIMING.discovery_window_s)
    assert e.tick(TIMING.discovery_window_s + TIMING.winner_wait_s - 0.01) == []
    assert e.tick(TIMING.discovery_window_s + TIMING.winner_wait_s) == [BecomeLeader(1)]


def test_lingering_record_of_a_dead_leader_is_ignored_after_a_failed_join() -> None:
    e = Election(make_peer("b"))
    e.start(0.0)
    dead = make_peer("x", started_at=1)
    e.record_seen(leader_record(dead, 2), 0.05)
    assert e.join_failed("x", 0.3) == []  # no peer list: back to discovery
    e.record_seen(leader_record(dead, 2), 0.4)  # the record lingers
    assert e.tick(10.0) == [BecomeLeader(3)]
    # ... but the same peer leading at a higher term is alive again.
    assert e.record_seen(leader_record(dead, 5), 11.0) == [follow("x", 5)]


# ------------------------------------------------------------ leader loss


def joined_follower(
    me: SignalPeer, leader: SignalPeer, members: list[SignalPeer], term: int = 1
) -> Election:
    e = Election(me)
    e.start(0.0)
    e.record_seen(leader_record(leader, term), 0.01)
    e.joined_leader(leader.peer_id, term, members, 0.02)
    assert e.joined
    return e


def test_successor_is_known_without_a_new_discovery_round() -> None:
    leader = make_peer("c", "controller", 1)
    second, third = make_peer("d1", started_at=10), make_peer("d2", started_at=20)
    e = joined_follower(third, leader, [leader, second, third])
    assert e.leader_lost("c", 5.0) == [follow("d1", 2, successor=True)]
    f = joined_follower(second, leader, [leader, second, third])
    assert f.leader_lost("c", 5.0) == [BecomeLeader(2)]


def test_unreachable_successor_passes_to_the_next() -> None:
    leader = make_peer("c", "controller", 1)
    a, b, me = (
        make_peer("d1", started_at=10),
        make_peer("d2", started_at=20),
        make_peer("d3", started_at=30),
    )
    e = joined_follower(me, leader, [leader, a, b, me])
    assert e.leader_lost("c", 5.0)[0] == follow("d1", 2, successor=True)
    assert e.join_failed("d1", 8.0)[0] == follow("d2", 2, successor=True)
    assert e.join_failed("d2", 11.0) == [BecomeLeader(2)]


def test_goodbye_of_the_leader_is_only_a_hint_its_connection_decides() -> None:
    """Anyone can send an mDNS goodbye for the leader's name (no TXT, so no key)."""
    leader, me = make_peer("a", started_at=1), make_peer("b", started_at=2)
    e = joined_follower(me, leader, [leader, me])
    assert e.record_gone("a", 3.0) == []
    assert (e.state, e.leader_id, e.joined) == ("follower", "a", True)
    assert e.leader_lost("a", 4.0) == [BecomeLeader(2)]  # the connection closed: now it is


def test_terms_no_room_could_reach_are_not_believed() -> None:
    e = Election(make_peer("b", started_at=2))
    e.start(0.0)
    forged = leader_record(make_peer("x", "controller", 1), TERM_ACCEPT_MAX + 1)
    assert e.record_seen(forged, 0.1) == []
    assert e.record(forged.peer_id) is None
    leader = make_peer("a", started_at=1)
    f = joined_follower(make_peer("c", started_at=3), leader, [leader], term=3)
    assert f.peer_list("a", 10**16, [leader], 1.0) == []
    assert f.term == 3


def test_a_flood_of_records_keeps_at_most_max_records_and_the_leader() -> None:
    leader, me = make_peer("a", started_at=1), make_peer("b", started_at=2)
    e = joined_follower(me, leader, [leader, me])
    for n in range(MAX_RECORDS * 3):
        e.record_seen(
            _as(leader_record(make_peer(f"f{n:04d}", started_at=500), 0), role="candidate"), 1.0
        )
    assert len(e._records) == MAX_RECORDS
    assert e.record("a") is not None and e.record(f"f{MAX_RECORDS * 3 - 1:04d}") is not None


def test_a_chain_of_silent_successors_ends_in_a_fresh_discovery() -> None:
    leader = make_peer("c", "controller", 1)
    others = [make_peer(f"d{n}", started_at=10 + n) for n in range(6)]
    me = make_peer("z", started_at=99)
    e = joined_follower(me, leader, [leader, *others, me])
    decisions = e.leader_lost("c", 5.0)
    for n in range(1, MAX_SUCCESSORS):
        assert decisions == [follow(f"d{n - 1}", 2, successor=True)]
        decisions = e.join_failed(f"d{n - 1}", 5.0 + n)
    assert decisions == [follow(f"d{MAX_SUCCESSORS - 1}", 2, successor=True)]
    assert e.join_failed(f"d{MAX_SUCCESSORS - 1}", 20.0) == []
    assert e.state == "discovering" and e.next_deadline() is not None


def test_a_live_leader_record_beats_the_successor_rule() -> None:
    leader, me = make_peer("a", started_at=1), make_peer("b", started_at=2)
    e = joined_follower(me, leader, [leader, me])
    other = make_peer("c", "display", 50)  # leads elsewhere, ranks below our leader
    assert e.record_seen(leader_record(other, 1), 2.0) == []
    assert e.leader_lost("a", 3.0) == [follow("c", 1)]


def test_stale_leader_events_are_ignored() -> None:
    leader, me = make_peer("a", started_at=1), make_peer("b", started_at=2)
    e = joined_follower(me, leader, [leader, me])
    assert e.leader_lost("someone-else", 3.0) == []
    assert e.join_failed("someone-else", 3.0) == []
    assert e.peer_list("a", 0, [leader], 3.0) == []  # older term
    assert e.state == "follower" and e.leader_id == "a"


def test_peer_list_naming_another_leader_redirects() -> None:
    leader, me, new = (
        make_peer("d", started_at=5),
        make_peer("e", started_at=9),
        make_peer("c", "controller", 99),
    )
    e = joined_follower(me, leader, [leader, me])
    assert e.peer_list("c", 2, [new, leader, me], 4.0) == [follow("c", 2)]


# ------------------------------------------------------- duplicate leaders


def test_lower_priority_leader_steps_down_and_winner_lifts_its_term() -> None:
    high, low = make_peer("a", "controller", 1), make_peer("b", "display", 1)
    winner, loser = Election(high), Election(low)
    winner.start(0.0)
    loser.start(0.0)
    assert winner.tick(1.0) == [BecomeLeader(1)]
    assert loser.tick(1.0) == [BecomeLeader(1)]
    loser.term = 2  # it had lived through more changes
    assert winner.record_seen(record_of(loser), 2.0) == [Retermed(3)]
    assert loser.record_seen(record_of(winner), 2.1) == [follow("a", 3)]


def test_leader_ignores_a_stale_higher_priority_leader_until_it_reterms() -> None:
    high, low = make_peer("a", "controller", 1), make_peer("b", "display", 1)
    e = Election(low)
    e.start(0.0)
    e.tick(1.0)
    e.term = 5
    assert e.record_seen(leader_record(high, 4), 2.0) == []
    assert e.record_seen(leader_record(high, 6), 3.0) == [follow("a", 6)]


def test_followers_move_to_a_better_leader() -> None:
    leader, me = make_peer("d1", started_at=1), make_peer("d2", started_at=2)
    e = joined_follower(me, leader, [leader, me], term=1)
    controller = make_peer("c", "controller", 77)
    assert e.record_seen(leader_record(controller, 2), 3.0) == [follow("c", 2)]


# -------------------------------------------------------- the simulated room


def _as(record: PeerRecord, **changes: object) -> PeerRecord:
    return msgspec.structs.replace(record, **changes)


@dataclass
class SimRoom:
    peers: dict[str, Election] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)
    cut: dict[str, int] = field(default_factory=dict)  # peer -> partition number (default 0)
    offline: set[str] = field(default_factory=set)  # peers without a usable address
    now: float = 0.0
    log: list[tuple[str, Decision]] = field(default_factory=list)
    following_since: dict[str, float] = field(default_factory=dict)  # peer -> its last Follow

    def add(self, peer: SignalPeer) -> Election:
        e = Election(peer)
        self.peers[peer.peer_id] = e
        return e

    def start(self, peer_id: str) -> None:
        self.started.add(peer_id)
        self._apply(peer_id, self.peers[peer_id].start(self.now))

    def reaches(self, a: str, b: str) -> bool:
        if a in self.offline or b in self.offline:
            return False
        return self.cut.get(a, 0) == self.cut.get(b, 0)

    def go_offline(self, peer_id: str) -> None:
        self.offline.add(peer_id)
        self._apply(peer_id, self.peers[peer_id].network_down(self.now))

    def come_online(self, peer_id: str) -> None:
        self.offline.discard(peer_id)
        self._apply(peer_id, self.peers[peer_id].network_up(self.now))

    def _apply(self, peer_id: str, decisions: list[Decision]) -> None:
        for d in decisions:
            # Offline, a peer decides nothing (it cannot reach anyone to decide with).
            assert peer_id not in self.offline, (peer_id, d)
            self.log.append((peer_id, d))
            if isinstance(d, Follow):
                self.following_since[peer_id] = self.now

    def _connect_followers(self) -> None:
        for pid in sorted(self.started):
            e = self.peers[pid]
            if e.state != "follower":
                continue
            leader = self.peers.get(e.leader_id or "")
            reachable = (
                leader is not None
                and e.leader_id in self.started
                and self.reaches(pid, leader.me.peer_id)
            )
            if pid in self.offline:
                continue  # its connection may outlive a short outage: nothing happens
            if e.joined:
                if not reachable or leader is None or leader.state != "leader":
                    self._apply(pid, e.leader_lost(e.leader_id or "", self.now))
                else:  # the leader's peer list broadcast (carries its current term)
                    self._apply(
                        pid, e.peer_list(leader.me.peer_id, leader.term, e.members(), self.now)
                    )
                continue
            if reachable and leader is not None and leader.state == "leader":
                members = [leader.me] + [
                    self.peers[q].me
                    for q in sorted(self.started)
                    if self.peers[q].leader_id == leader.me.peer_id
                    and q != leader.me.peer_id
                    and self.reaches(q, leader.me.peer_id)
                ]
                if e.me not in members:
                    members.append(e.me)
                self._apply(pid, e.joined_leader(leader.me.peer_id, leader.term, members, self.now))
            elif not reachable:
                self._apply(pid, e.join_failed(e.leader_id or "", self.now))
            elif self.now - self.following_since.get(pid, self.now) >= SUCCESSOR_WAIT_S:
                # Reachable but not leading: the membership's join gets `not_leader`
                # and retries until its deadline, then reports the failure.
                self._apply(pid, e.join_failed(e.leader_id or "", self.now))

    def step(self, dt: float = 0.1) -> None:
        self.now += dt
        for pid in sorted(self.started):
            self._apply(pid, self.peers[pid].tick(self.now))
        for pid in sorted(self.started):
            for other in sorted(self.started):
                if other != pid and self.reaches(pid, other):
                    self._apply(
                        pid, self.peers[pid].record_seen(record_of(self.peers[other]), self.now)
                    )
        self._connect_followers()

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.1)):
            self.step()

    def leaders(self, partition: int | None = None) -> list[str]:
        return sorted(
            pid
            for pid in self.started
            if self.peers[pid].state == "leader"
            and (partition is None or self.cut.get(pid, 0) == partition)
        )

    def settled_on(self, leader: str) -> bool:
        return all(
            self.peers[p].leader_id == leader and (self.peers[p].joined or p == leader)
            for p in self.started
            if self.reaches(p, leader)
        )


def three_peers() -> SimRoom:
    room = SimRoom()
    room.add(make_peer("ctrl", "controller", 3_000))
    room.add(make_peer("disp1", "display", 1_000))
    room.add(make_peer("disp2", "display", 2_000))
    return room


def test_three_peers_started_together_elect_the_controller() -> None:
    room = three_peers()
    for pid in ("disp1", "ctrl", "disp2"):
        room.start(pid)
    room.run(3.0)
    assert room.leaders() == ["ctrl"]
    assert room.settled_on("ctrl")


def test_two_peers_within_10_ms_agree() -> None:
    room = SimRoom()
    room.add(make_peer("a", "display", 1_000))
    room.add(make_peer("b", "display", 1_010))
    room.start("b")
    room.now += 0.01
    room.start("a")
    room.run(3.0)
    assert room.leaders() == ["a"] and room.settled_on("a")


def test_controller_arriving_after_two_displays_takes_over() -> None:
    room = three_peers()
    room.start("disp1")
    room.start("disp2")
    room.run(2.0)
    assert room.leaders() == ["disp1"] and room.settled_on("disp1")
    term_before = room.peers["disp1"].term
    room.start("ctrl")
    room.run(2.0)
    assert room.leaders() == ["ctrl"] and room.settled_on("ctrl")
    assert room.peers["ctrl"].term == term_before + 1


def test_partition_elects_in_both_halves_and_heals_to_one_leader() -> None:
    room = three_peers()
    room.add(make_peer("disp3", "display", 4_000))
    for pid in ("ctrl", "disp1", "disp2", "disp3"):
        room.start(pid)
    room.run(3.0)
    assert room.leaders() == ["ctrl"]
    room.cut = {"disp2": 1, "disp3": 1}
    room.run(3.0)
    assert room.leaders(0) == ["ctrl"] and room.leaders(1) == ["disp2"]
    room.cut = {}
    room.run(3.0)
    assert room.leaders() == ["ctrl"]
    assert room.settled_on("ctrl")
    terms = {room.peers[p].term for p in room.started}
    assert len(terms) == 1  # everyone agrees on the term too


def test_leader_killed_survivors_agree_on_the_successor() -> None:
    room = three_peers()
    for pid in ("ctrl", "disp1", "disp2"):
        room.start(pid)
    room.run(3.0)
    room.started.discard("ctrl")
    room.step()
    assert room.leaders() == ["disp1"]
    room.run(1.0)
    assert room.settled_on("disp1")
    assert room.peers["disp1"].term == room.peers["disp2"].term == 2


@settings(max_examples=150, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["controller", "display"]), min_size=2, max_size=5),
    starts=st.lists(st.integers(min_value=0, max_value=30), min_size=5, max_size=5),
    split=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_any_room_converges_to_one_leader_after_a_partition_heals(
    kinds: list[PeerType], starts: list[int], split: list[bool]
) -> None:
    room = SimRoom()
    ids = [f"p{i}" for i in range(len(kinds))]
    for i, (pid, kind) in enumerate(zip(ids, kinds, strict=False)):
        room.add(make_peer(pid, kind, 1_000 + starts[i] * 10))
    order = sorted(range(len(ids)), key=lambda i: starts[i])
    for i in order:
        room.start(ids[i])
        room.step(0.1 * (starts[i] % 3))
    room.run(4.0)
    assert len(room.leaders()) == 1
    room.cut = {pid: 1 for pid, s in zip(ids, split, strict=False) if s}
    room.run(8.0)
    room.cut = {}
    room.run(6.0)
    (leader,) = room.leaders()
    assert room.settled_on(leader)
    if "controller" in kinds:  # the booth controller leads whenever present
        assert room.peers[leader].me.peer_type == "controller"


# ------------------------------------------------------- the network comes and goes


def test_started_offline_decides_nothing_until_the_network_is_up() -> None:
    e = Election(make_peer("a"))
    assert e.start(0.0, offline=True) == []
    assert (e.state, e.next_deadline()) == ("discovering", None)
    assert e.tick(100.0) == []
    assert e.network_up(100.0) == []
    assert e.tick(100.0 + TIMING.discovery_window_s) == [BecomeLeader(1)]


def test_started_offline_joins_the_serving_leader_once_online() -> None:
    e = Election(make_peer("a", started_at=1))
    e.start(0.0, offline=True)
    e.network_up(5.0)
    assert e.record_seen(leader_record(make_peer("z", started_at=9), 3), 5.1) == [follow("z", 3)]


def test_a_candidate_that_goes_offline_never_elects_itself() -> None:
    e = Election(make_peer("a"))
    e.start(0.0)
    assert e.network_down(0.3) == []
    assert e.tick(50.0) == []
    assert e.state == "discovering" and e.term == 0
    assert e.network_up(50.0) == []  # a fresh window, not the one that ran out offline
    assert e.tick(50.0 + TIMING.discovery_window_s - 0.01) == []
    assert e.tick(50.0 + TIMING.discovery_window_s) == [BecomeLeader(1)]


def test_a_leader_that_goes_offline_stays_leader_with_its_term() -> None:
    e = Election(make_peer("a"))
    e.start(0.0)
    e.tick(1.0)
    e.term = 4
    assert e.network_down(2.0) == []
    assert (e.state, e.term) == ("leader", 4)
    assert e.network_up(12.0) == []
    assert (e.state, e.term) == ("leader", 4)
    # Meanwhile the room elected a successor at a higher term: the usual rule.
    successor = make_peer("b", started_at=2_000)
    assert e.record_seen(leader_record(successor, 5), 12.1) == [Retermed(6)]


def test_losing_the_leader_while_offline_does_not_blame_it() -> None:
    leader, me = make_peer("a", started_at=1), make_peer("b", started_at=2)
    e = joined_follower(me, leader, [leader, me], term=3)
    e.network_down(4.0)
    assert e.leader_lost("a", 10.0) == []  # no succession: we are the one cut off
    assert (e.state, e.leader_id, e.term) == ("discovering", None, 3)
    assert e.network_up(14.0) == []
    assert e.record_seen(leader_record(leader, 3), 14.05) == [follow("a", 3)]


def test_a_follower_whose_connection_outlives_the_outage_carries_on() -> None:
    leader, me = make_peer("a", started_at=1), make_peer("b", started_at=2)
    e = joined_follower(me, leader, [leader, me], term=3)
    e.network_down(4.0)
    assert e.network_up(5.0) == []
    assert (e.state, e.leader_id, e.joined) == ("follower", "a", True)


def test_our_address_changed_a_follower_registers_again() -> None:
    leader, me = make_peer("a", started_at=1), make_peer("b", started_at=2)
    e = joined_follower(me, leader, [leader, me], term=3)
    assert e.rejoin(5.0) == [Follow("a", ("10.77.0.9",), 3010, 3, successor=False, rejoin=True)]
    assert e.joined  # still a member until the new registration says otherwise
    assert e.joined_leader("a", 3, [leader, me], 5.1) == []
    leading = Election(leader)
    leading.start(0.0)
    leading.tick(1.0)
    assert leading.rejoin(5.0) == []


def test_the_leader_serving_at_a_new_address_is_followed_there() -> None:
    leader, me = make_peer("a", started_at=1), make_peer("b", started_at=2)
    e = joined_follower(me, leader, [leader, me], term=3)
    assert e.record_seen(leader_record(leader, 3), 5.0) == []  # the same: nothing
    moved = msgspec.structs.replace(leader, addresses=["10.77.0.99"], port=4000)
    expected = Follow("a", ("10.77.0.99",), 4000, 3, successor=False, rejoin=True)
    assert e.record_seen(leader_record(moved, 3), 5.1) == [expected]
    assert e.record_seen(leader_record(moved, 3), 6.1) == []  # once


def test_sim_room_display_offline_longer_than_the_heartbeat_rejoins() -> None:
    room = three_peers()
    for pid in ("ctrl", "disp1", "disp2"):
        room.start(pid)
    room.run(3.0)
    room.go_offline("disp2")
    room.run(10.0)
    assert room.peers["disp2"].state == "follower"  # offline, its connection not yet lost
    room.come_online("disp2")
    room.run(2.0)
    assert room.leaders() == ["ctrl"] and room.settled_on("ctrl")


def test_sim_room_leader_offline_comes_back_and_leads_again() -> None:
    room = three_peers()
    for pid in ("ctrl", "disp1", "disp2"):
        room.start(pid)
    room.run(3.0)
    room.go_offline("ctrl")
    room.run(10.0)
    assert room.leaders() == ["ctrl", "disp1"]  # ctrl does not know yet
    room.come_online("ctrl")
    room.run(2.0)
    assert room.leaders() == ["ctrl"] and room.settled_on("ctrl")
    assert len({room.peers[p].term for p in room.started}) == 1


@settings(max_examples=150, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["controller", "display"]), min_size=2, max_size=5),
    outages=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=4),  # which peer
            st.floats(min_value=0.0, max_value=8.0),  # when, after the room settled
            st.floats(min_value=0.1, max_value=12.0),  # for how long
        ),
        max_size=4,
    ),
)
def test_any_room_converges_after_peers_drop_off_the_network_and_return(
    kinds: list[PeerType], outages: list[tuple[int, float, float]]
) -> None:
    room = SimRoom()
    ids = [f"p{i}" for i in range(len(kinds))]
    for i, kind in enumerate(kinds):
        room.add(make_peer(ids[i], kind, 1_000 + i * 10))
        room.start(ids[i])
    room.run(3.0)
    events = sorted(
        [(start, "down", ids[i % len(ids)]) for i, start, _ in outages]
        + [(start + length, "up", ids[i % len(ids)]) for i, start, length in outages]
    )
    began = room.now
    for at, what, pid in events:
        while room.now - began < at:
            room.step()
        if what == "down" and pid not in room.offline:
            room.go_offline(pid)
        elif what == "up" and pid in room.offline:
            room.come_online(pid)
    for pid in sorted(room.offline):
        room.come_online(pid)
    room.run(6.0)
    (leader,) = room.leaders()
    assert room.settled_on(leader)
    if "controller" in kinds:
        assert room.peers[leader].me.peer_type == "controller"


def test_dropped_by_a_live_leader_registers_with_it_again() -> None:
    """It closed our connection for missed heartbeats (we slept): it is alive."""
    leader, other, me = (make_peer(i, started_at=n) for i, n in (("a", 1), ("b", 2), ("c", 3)))
    e = joined_follower(me, leader, [leader, other, me], term=3)
    assert e.dropped("a", 30.0) == [follow("a", 3)]
    assert (e.state, e.leader_id, e.joined) == ("follower", "a", False)
    assert e.joined_leader("a", 3, [leader, other, me], 30.1) == []
    # If it does not take us back after all, the usual succession follows.
    f = joined_follower(me, leader, [leader, other, me], term=3)
    f.dropped("a", 30.0)
    assert f.join_failed("a", 31.0) == [follow("b", 4, successor=True)]
