"""RoomRegistry, the sans-I/O signaling rules, driven with a fake clock (plain floats)."""

from __future__ import annotations

import itertools
import re

import msgspec
import pytest

from sidecar.messages import (
    PROTOCOL_VERSION,
    Answer,
    Candidate,
    Challenge,
    Heartbeat,
    HeartbeatAck,
    Leave,
    Offer,
    PeerList,
    Register,
    Registered,
    SignalError,
    SignalMessage,
    SignalPeer,
)
from sidecar.roomkey import register_proof, registered_proof
from sidecar.signaling.protocol import CloseCode, encode_signal
from sidecar.signaling.registry import Action, Close, Deliver, MembersChanged, RoomRegistry, Send

ROOM = "main"
KEY = "correct horse battery staple"
TERM = 3


def peer(peer_id: str, started_at: int = 10) -> SignalPeer:
    return SignalPeer(
        peer_id=peer_id,
        name=f"Peer {peer_id}",
        peer_type="display",
        display_class="stage",
        started_at=started_at,
        addresses=["10.0.0.9"],
        port=3010,
    )


LEADER = SignalPeer(
    peer_id="L", name="Booth", peer_type="controller", display_class=None, started_at=1
)
A, B, C = peer("A"), peer("B"), peer("C")


def make(key: str | None = None, *, leading: bool = True) -> RoomRegistry:
    counter = itertools.count()
    reg = RoomRegistry(LEADER, ROOM, key, nonce_factory=lambda: f"nonce{next(counter)}")
    if leading:
        assert reg.start_leading(TERM, 0.0) == []
    return reg


def frame(msg: SignalMessage) -> str:
    return encode_signal(msg)


def sent(actions: list[Action], conn: int) -> list[SignalMessage]:
    return [a.msg for a in actions if isinstance(a, Send) and a.conn_id == conn]


def closes(actions: list[Action]) -> dict[int, tuple[int, str]]:
    return {a.conn_id: (a.code, a.reason) for a in actions if isinstance(a, Close)}


def errors(actions: list[Action], conn: int) -> list[str]:
    return [m.code for m in sent(actions, conn) if isinstance(m, SignalError)]


def members_changed(actions: list[Action]) -> list[list[str]]:
    return [[p.peer_id for p in a.members] for a in actions if isinstance(a, MembersChanged)]


def ids(peers: list[SignalPeer]) -> list[str]:
    return [p.peer_id for p in peers]


def nonce_of(actions: list[Action], conn: int) -> str:
    (challenge,) = sent(actions, conn)
    assert isinstance(challenge, Challenge)
    return challenge.nonce


def join(
    reg: RoomRegistry,
    conn: int,
    who: SignalPeer,
    now: float = 0.0,
    *,
    key: str | None = None,
    client_nonce: str | None = None,
    seq: int = 0,
) -> list[Action]:
    """Connect and register; returns the actions of the register frame."""
    nonce = nonce_of(reg.connect(conn, now), conn)
    proof = register_proof(key, nonce, who.peer_id, ROOM) if key else None
    msg = Register(peer=who, room=ROOM, proof=proof, client_nonce=client_nonce, seq=seq)
    return reg.receive(conn, frame(msg), now)


def registered(actions: list[Action], conn: int) -> Registered:
    replies = [m for m in sent(actions, conn) if isinstance(m, Registered)]
    assert len(replies) == 1, actions
    return replies[0]


def acked(reg: RoomRegistry, conn: int, now: float, seq: int = 1) -> bool:
    """The connection is alive and registered: a heartbeat gets its ack."""
    return sent(reg.receive(conn, frame(Heartbeat(seq=seq, term=TERM)), now), conn) == [
        HeartbeatAck(seq=seq, term=reg.term)
    ]


# ---------------------------------------------------------------- registration


def test_connect_sends_a_random_hex_challenge_first() -> None:
    reg = RoomRegistry(LEADER, ROOM)
    first, second = reg.connect(1, 0.0), reg.connect(2, 0.0)
    nonces = [nonce_of(first, 1), nonce_of(second, 2)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nonces)
    assert nonces[0] != nonces[1]


def test_first_registration_gets_registered_with_the_leader_first() -> None:
    reg = make()
    actions = join(reg, 1, A, 0.5)
    reply = registered(actions, 1)
    assert reply == Registered(leader_id="L", term=TERM, peers=[LEADER, A], proof=None)
    assert members_changed(actions) == [["L", "A"]]
    assert ids(reg.members()) == ["L", "A"]


def test_a_new_member_is_announced_to_everyone_else() -> None:
    reg = make()
    join(reg, 1, A)
    actions = join(reg, 2, B)
    assert ids(registered(actions, 2).peers) == ["L", "A", "B"]
    assert sent(actions, 1) == [PeerList(leader_id="L", term=TERM, peers=[LEADER, A, B])]
    assert members_changed(actions) == [["L", "A", "B"]]
    assert not closes(actions)


def test_keyed_room_accepts_the_right_proof_and_proves_the_key_back() -> None:
    reg = make(KEY)
    actions = join(reg, 1, A, key=KEY, client_nonce="c0ffee")
    reply = registered(actions, 1)
    assert reply.proof == registered_proof(KEY, "c0ffee", "L", ROOM)
    # Without a client nonce there is nothing to prove.
    assert registered(join(reg, 2, B, key=KEY), 2).proof is None


def test_unkeyed_room_ignores_a_proof_and_proves_nothing() -> None:
    reg = make()
    reply = registered(join(reg, 1, A, key="whatever", client_nonce="c0ffee"), 1)
    assert reply.proof is None


@pytest.mark.parametrize("proof", [None, "", "00" * 32, "é" * 64, "wrong-key"])
def test_keyed_room_refuses_a_bad_proof_with_4003(proof: str | None) -> None:
    reg = make(KEY)
    join(reg, 1, A, key=KEY)
    nonce = nonce_of(reg.connect(2, 0.0), 2)
    if proof == "wrong-key":
        proof = register_proof("not the key", nonce, "B", ROOM)
    actions = reg.receive(2, frame(Register(peer=B, room=ROOM, proof=proof)), 0.0)
    assert errors(actions, 2) == ["forbidden"]
    assert closes(actions) == {2: (CloseCode.FORBIDDEN, "forbidden")}
    assert not sent(actions, 1) and not members_changed(actions)
    assert ids(reg.members()) == ["L", "A"]
    assert all(KEY not in frame(a.msg) for a in actions if isinstance(a, Send))


def test_the_proof_is_bound_to_this_connections_nonce() -> None:
    reg = make(KEY)
    nonce1 = nonce_of(reg.connect(1, 0.0), 1)
    reg.connect(2, 0.0)
    # A proof for connection 1's nonce replayed on connection 2.
    replayed = Register(peer=A, room=ROOM, proof=register_proof(KEY, nonce1, "A", ROOM))
    assert closes(reg.receive(2, frame(replayed), 0.0)) == {2: (4003, "forbidden")}


@pytest.mark.parametrize(
    ("register", "code"),
    [
        (Register(peer=A, room="other"), "wrong_room"),
        (Register(peer=A, room=ROOM, v=PROTOCOL_VERSION + 1), "wrong_version"),
        (Register(peer=LEADER, room=ROOM), "id_conflict"),
    ],
)
def test_wrong_room_version_or_the_leaders_own_id_is_refused_with_4010(
    register: Register, code: str
) -> None:
    reg = make()
    reg.connect(1, 0.0)
    actions = reg.receive(1, frame(register), 0.0)
    assert errors(actions, 1) == [code]
    assert closes(actions) == {1: (CloseCode.REJECTED, closes(actions)[1][1])}
    assert ids(reg.members()) == ["L"]


def test_a_peer_that_does_not_lead_refuses_with_4009_naming_the_leader() -> None:
    reg = make(leading=False)
    reg.connect(1, 0.0)
    actions = reg.receive(1, frame(Register(peer=A, room=ROOM)), 0.0)
    assert errors(actions, 1) == ["not_leader"]
    assert closes(actions) == {1: (CloseCode.NOT_LEADER, "not leader")}

    reg.set_leader_hint("X")
    reg.connect(2, 0.0)
    (error,) = sent(reg.receive(2, frame(Register(peer=A, room=ROOM)), 0.0), 2)[:1]
    assert isinstance(error, SignalError) and "X" in error.message


def test_re_registration_replaces_the_old_connection_with_4002() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    actions = join(reg, 3, A, 1.0, seq=1)
    assert closes(actions) == {1: (CloseCode.REPLACED, "replaced by a newer connection")}
    assert ids(registered(actions, 3).peers) == ["L", "B", "A"]
    assert members_changed(actions) == [["L", "B", "A"]]
    # The old connection is forgotten: its late frames and its disconnect change nothing.
    assert reg.receive(1, frame(Leave(peer_id="A")), 1.1) == []
    assert reg.disconnect(1, 1.2) == []
    assert ids(reg.members()) == ["L", "B", "A"]
    assert acked(reg, 3, 1.3)


def test_a_registration_the_peer_already_superseded_is_refused_not_the_newer_one() -> None:
    """Two attempts of one peer (it moved twice quickly): the later one stays,
    whichever order they arrive in."""
    reg = make()
    join(reg, 1, A, seq=1)
    join(reg, 2, A, 0.5, seq=3)
    late = join(reg, 3, A, 0.6, seq=2)
    assert errors(late, 3) == ["id_conflict"]
    assert closes(late) == {3: (CloseCode.REJECTED, "peer id conflict")}
    assert acked(reg, 2, 0.7)


def test_register_twice_on_one_connection_is_an_error_only() -> None:
    reg = make()
    join(reg, 1, A)
    actions = reg.receive(1, frame(Register(peer=A, room=ROOM)), 0.0)
    assert errors(actions, 1) == ["already_registered"]
    assert not closes(actions)
    assert acked(reg, 1, 0.1)


@pytest.mark.parametrize(
    "msg",
    [
        Heartbeat(seq=1, term=TERM),
        Offer(from_="A", to="L", sdp="v=0", link="l1", epoch=1),
        Leave(peer_id="A"),
        PeerList(leader_id="L", term=1, peers=[]),
        Challenge(nonce="x"),
    ],
)
def test_anything_but_register_first_is_closed_with_4001(msg: SignalMessage) -> None:
    reg = make()
    join(reg, 1, A)
    reg.connect(2, 0.0)
    actions = reg.receive(2, frame(msg), 0.0)
    assert errors(actions, 2) == ["not_registered"]
    assert closes(actions) == {2: (CloseCode.NOT_REGISTERED, "not registered")}
    assert (
        not sent(actions, 1)
        and not members_changed(actions)
        and not any(isinstance(a, Deliver) for a in actions)
    )


def test_a_connection_that_never_registers_is_closed_after_the_timeout() -> None:
    reg = make()
    reg.connect(1, 10.0)
    assert reg.next_deadline() == 15.0
    assert reg.tick(14.99) == []
    actions = reg.tick(15.0)
    assert actions == [Close(1, CloseCode.NOT_REGISTERED, "registration timeout")]
    assert reg.next_deadline() is None


# ---------------------------------------------------------------- forwarding


def test_signals_are_forwarded_as_is_between_members() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    for msg in (
        Offer(from_="A", to="B", sdp="v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n", link="l1", epoch=1),
        Answer(from_="A", to="B", sdp="v=0", link="l1", epoch=1),
        Candidate(from_="A", to="B", candidate="candidate:1 1 udp 1 10.0.0.1 9 typ host"),
        Candidate(from_="A", to="B", candidate=None, sdp_mid="0", sdp_mline_index=0),
    ):
        assert reg.receive(1, frame(msg), 0.0) == [Send(2, msg)]


def test_signals_to_the_leader_are_delivered_locally() -> None:
    reg = make()
    join(reg, 1, A)
    msg = Answer(from_="A", to="L", sdp="v=0", link="l1", epoch=1)
    assert reg.receive(1, frame(msg), 0.0) == [Deliver(msg)]


def test_a_member_can_only_send_as_itself() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    for spoof in (
        Offer(from_="B", to="B", sdp="x", link="l1", epoch=1),
        Offer(from_="L", to="L", sdp="x", link="l1", epoch=1),
    ):
        actions = reg.receive(1, frame(spoof), 0.0)
        assert errors(actions, 1) == ["spoofed"]
        assert len(actions) == 1  # nothing forwarded, nothing closed
    assert reg.receive(1, frame(Offer(from_="A", to="B", sdp="x", link="l1", epoch=1)), 0.0) == [
        Send(2, Offer(from_="A", to="B", sdp="x", link="l1", epoch=1))
    ]


def test_only_registered_peers_are_reachable() -> None:
    reg = make()
    join(reg, 1, A)
    reg.connect(2, 0.0)  # connected, never registered as B
    for to in ("B", "nobody"):
        actions = reg.receive(1, frame(Offer(from_="A", to=to, sdp="x", link="l1", epoch=1)), 0.0)
        assert errors(actions, 1) == ["unknown_peer"]
        assert len(actions) == 1


def test_send_local_reaches_a_member_and_raises_for_strangers() -> None:
    reg = make()
    join(reg, 1, A)
    msg = Offer(from_="L", to="A", sdp="v=0", link="l1", epoch=1)
    assert reg.send_local(msg) == [Send(1, msg)]
    with pytest.raises(KeyError):
        reg.send_local(Offer(from_="L", to="B", sdp="v=0", link="l1", epoch=1))
    with pytest.raises(ValueError, match="send as"):
        reg.send_local(Offer(from_="A", to="A", sdp="v=0", link="l1", epoch=1))
    reg.stop_leading(1.0)
    with pytest.raises(KeyError):
        reg.send_local(msg)


# ---------------------------------------------------------------- heartbeats


def test_heartbeat_is_acked_with_the_current_term() -> None:
    reg = make()
    join(reg, 1, A)
    actions = reg.receive(1, frame(Heartbeat(seq=7, term=0)), 1.0)
    assert actions == [Send(1, HeartbeatAck(seq=7, term=TERM))]


def test_a_new_term_is_broadcast_and_acked() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    actions = reg.set_term(TERM + 1)
    expected = PeerList(leader_id="L", term=TERM + 1, peers=[LEADER, A, B])
    assert actions == [Send(1, expected), Send(2, expected)]
    assert reg.set_term(TERM + 1) == []
    assert sent(reg.receive(1, frame(Heartbeat(seq=1, term=TERM)), 0.0), 1) == [
        HeartbeatAck(seq=1, term=TERM + 1)
    ]


def test_a_leader_that_was_suspended_does_not_count_its_sleep_against_followers() -> None:
    reg = make()
    join(reg, 1, A, 0.0)
    assert acked(reg, 1, 2.0)
    reg.resumed(20.0)  # the process did not run from about 2.0 to 22.0
    assert reg.tick(22.5) == []
    assert reg.next_deadline() == 28.5  # a fresh interval from where its clock stopped
    assert closes(reg.tick(28.5)) == {1: (CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")}


def test_heartbeat_timeout_drops_after_three_missed_and_not_before() -> None:
    reg = make()
    join(reg, 1, A, 0.0)
    join(reg, 2, B, 0.0)
    assert reg.heartbeat_timeout == 6.5
    for t in (2.0, 4.0, 6.0, 8.0):  # B keeps beating the whole time
        assert acked(reg, 2, t)
    assert acked(reg, 1, 2.0)  # A's last heartbeat
    # A heard last at 2.0: 3 intervals and the grace later it is due; B at 8.0 + 6.5.
    assert reg.next_deadline() == 8.5
    assert reg.tick(8.49) == []
    actions = reg.tick(8.5)
    assert closes(actions) == {1: (CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")}
    assert sent(actions, 2) == [PeerList(leader_id="L", term=TERM, peers=[LEADER, B])]
    assert members_changed(actions) == [["L", "B"]]
    assert reg.next_deadline() == 14.5
    # A frame that raced the drop is ignored.
    assert reg.receive(1, frame(Heartbeat(seq=2, term=TERM)), 8.6) == []


def test_the_timing_is_configurable() -> None:
    reg = RoomRegistry(LEADER, ROOM, heartbeat_interval=0.1, missed_limit=3, grace=0.05)
    reg.start_leading(1, 0.0)
    join(reg, 1, A, 0.0)
    deadline = reg.next_deadline()
    assert deadline is not None and deadline == pytest.approx(0.35)
    assert reg.tick(0.34) == []
    assert closes(reg.tick(deadline)) == {1: (4008, "heartbeat timeout")}


# ---------------------------------------------------------------- leaving


def test_leave_removes_closes_1000_and_tells_the_others() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    actions = reg.receive(1, frame(Leave(peer_id="A")), 1.0)
    assert closes(actions) == {1: (CloseCode.NORMAL, "left")}
    assert sent(actions, 2) == [PeerList(leader_id="L", term=TERM, peers=[LEADER, B])]
    assert members_changed(actions) == [["L", "B"]]
    assert reg.disconnect(1, 1.1) == []


def test_leave_for_someone_else_is_spoofed() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    actions = reg.receive(1, frame(Leave(peer_id="B")), 1.0)
    assert errors(actions, 1) == ["spoofed"]
    assert len(actions) == 1
    assert ids(reg.members()) == ["L", "A", "B"]


def test_disconnect_of_a_member_is_broadcast_and_of_a_stranger_is_silent() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    reg.connect(3, 0.0)
    assert reg.disconnect(3, 1.0) == []
    actions = reg.disconnect(1, 1.0)
    assert sent(actions, 2) == [PeerList(leader_id="L", term=TERM, peers=[LEADER, B])]
    assert members_changed(actions) == [["L", "B"]]
    assert reg.disconnect(99, 1.0) == []


def test_stop_leading_closes_everyone_with_4000_and_forgets_them() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    reg.connect(3, 0.0)
    actions = reg.stop_leading(1.0)
    assert closes(actions) == {
        c: (CloseCode.STEPPED_DOWN, "leader stepped down") for c in (1, 2, 3)
    }
    assert members_changed(actions) == [["L"]]
    assert ids(reg.members()) == ["L"]
    assert reg.next_deadline() is None
    assert not reg.leading
    reg.connect(4, 2.0)
    assert errors(reg.receive(4, frame(Register(peer=C, room=ROOM)), 2.0), 4) == ["not_leader"]


def test_stop_leading_with_a_redirect_points_the_followers_at_the_successor() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    successor = peer("S", started_at=0)
    actions = reg.stop_leading(1.0, redirect=successor, term=TERM + 1)
    turn = PeerList(leader_id="S", term=TERM + 1, peers=[successor, LEADER, A, B])
    # Each follower hears of the successor before its close.
    for conn in (1, 2):
        mine = [a for a in actions if getattr(a, "conn_id", None) == conn]
        assert mine == [Send(conn, turn), Close(conn, 4000, "leader stepped down")]
    reg.connect(3, 2.0)
    (error, _) = reg.receive(3, frame(Register(peer=C, room=ROOM)), 2.0)
    assert isinstance(error, Send) and isinstance(error.msg, SignalError)
    assert "S" in error.msg.message


def test_start_leading_again_only_changes_the_term() -> None:
    reg = make()
    join(reg, 1, A)
    assert reg.start_leading(TERM + 2, 1.0) == [
        Send(1, PeerList(leader_id="L", term=TERM + 2, peers=[LEADER, A]))
    ]
    assert ids(reg.members()) == ["L", "A"]


def test_update_me_is_broadcast() -> None:
    reg = make()
    join(reg, 1, A)
    moved = msgspec.structs.replace(LEADER, port=4444)
    actions = reg.update_me(moved)
    assert sent(actions, 1) == [PeerList(leader_id="L", term=TERM, peers=[moved, A])]
    assert members_changed(actions) == [["L", "A"]]
    with pytest.raises(ValueError):
        reg.update_me(A)


# ---------------------------------------------------------------- bad frames

BAD_FRAMES: list[tuple[str | bytes, str]] = [
    ("{not json", "malformed"),
    ("", "malformed"),
    (b'{"type": "heartbeat", "seq": 1, "term": 1}', "binary"),
    ('{"type": "bogus", "x": 1}', "unknown_type"),
    ('{"seq": 1}', "invalid"),
    ('{"type": "heartbeat", "seq": "one", "term": 1}', "invalid"),
    ('{"type": "offer", "from": "A", "to": "B"}', "invalid"),
    ('{"type": "heartbeat", "seq": 1, "term": 1, "extra": true}', "invalid"),
    ("[1, 2, 3]", "invalid"),
]


@pytest.mark.parametrize(("data", "code"), BAD_FRAMES)
@pytest.mark.parametrize("registered_first", [True, False])
def test_bad_frames_get_an_error_and_disturb_nobody(
    data: str | bytes, code: str, registered_first: bool
) -> None:
    reg = make()
    join(reg, 1, A)
    if registered_first:
        join(reg, 2, B)
    else:
        reg.connect(2, 0.0)
    actions = reg.receive(2, data, 0.5)
    assert errors(actions, 2) == [code]
    assert len(actions) == 1  # no close, nothing for anyone else
    assert ids(reg.members()) == (["L", "A", "B"] if registered_first else ["L", "A"])
    if registered_first:
        assert acked(reg, 2, 0.6)


def test_an_invalid_frame_names_the_field() -> None:
    reg = make()
    join(reg, 1, A)
    bad = '{"type": "heartbeat", "seq": "one", "term": 1}'
    (error,) = sent(reg.receive(1, bad, 0.0), 1)
    assert isinstance(error, SignalError) and "$.seq" in error.message
    (error,) = sent(reg.receive(1, '{"type": "offer", "from": "A", "to": "B"}', 0.0), 1)
    assert isinstance(error, SignalError) and "sdp" in error.message


@pytest.mark.parametrize(
    "msg",
    [
        Challenge(nonce="x"),
        Registered(leader_id="A", term=1, peers=[]),
        PeerList(leader_id="A", term=1, peers=[]),
        HeartbeatAck(seq=1, term=1),
        SignalError(code="x", message="y"),
    ],
)
def test_leader_only_types_from_a_member_are_unexpected(msg: SignalMessage) -> None:
    reg = make()
    join(reg, 1, A)
    actions = reg.receive(1, frame(msg), 0.0)
    assert errors(actions, 1) == ["unexpected"]
    assert len(actions) == 1
    assert acked(reg, 1, 0.1)


def test_unknown_connections_and_double_connects() -> None:
    reg = make()
    assert reg.receive(42, frame(Heartbeat(seq=1, term=1)), 0.0) == []
    reg.connect(1, 0.0)
    with pytest.raises(ValueError):
        reg.connect(1, 0.0)
