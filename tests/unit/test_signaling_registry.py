"""RoomRegistry, the sans-I/O signaling rules, driven with a fake clock (plain floats)."""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from sidecar.contract import (
    PROTOCOL_VERSION,
    Answer,
    Candidate,
    Challenge,
    Heartbeat,
    HeartbeatAck,
    Leave,
    Offer,
    PairConfirm,
    PairHello,
    PairKey,
    PairReply,
    PeerList,
    PeerRecord,
    Query,
    Register,
    Registered,
    Rekey,
    Rekeyed,
    Relay,
    RoomInfo,
    Sealed,
    SignalError,
    SignalMessage,
    SignalPeer,
    decode_signal,
)
from sidecar.core.identity import Identity, registration_statement
from sidecar.core.pairing import Initiator, Window
from sidecar.core.registry import (
    FRAME_BURST,
    FRAME_RATE,
    MAX_MEMBERS_PER_ADDRESS,
    RELAY_BYTES_PER_FRAME,
    RELAY_COST,
    Action,
    Close,
    Deliver,
    KeyRotated,
    MembersChanged,
    PairingUpdate,
    RoomRegistry,
    Send,
)
from sidecar.core.roomkey import (
    Box,
    Ephemeral,
    b64,
    open_session,
    session_binding,
    session_keys,
    unb64,
)
from sidecar.core.signaling import CloseCode, encode_signal

ROOM = "main"
KEY = "correct horse battery staple"
TERM = 3

IDS = {name: Identity() for name in "ABCLSXZ"}
"""One key pair per test peer: a peer id is its key's hash, so ids cannot be made up."""
NAMES = {identity.peer_id: name for name, identity in IDS.items()}


def pid(name: str) -> str:
    """The peer id of the test peer called `name`."""
    return IDS[name].peer_id


def names(peers: list[SignalPeer]) -> list[str]:
    """The test names of these peers, e.g. ["L", "A"]."""
    return [NAMES.get(p.peer_id, p.peer_id) for p in peers]


def peer(name: str, started_at: int = 10, addresses: list[str] | None = None) -> SignalPeer:
    return SignalPeer(
        peer_id=pid(name),
        name=f"Peer {name}",
        peer_type="display",
        display_class="stage",
        started_at=started_at,
        addresses=["10.0.0.9"] if addresses is None else addresses,
        port=3010,
    )


LEADER = SignalPeer(
    peer_id=pid("L"),
    name="Booth",
    peer_type="controller",
    display_class=None,
    started_at=1,
    addresses=["10.0.0.1"],
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
    return [names(a.members) for a in actions if isinstance(a, MembersChanged)]


SHARES: dict[str, str] = {}
"""The server's share of each challenge seen, by its nonce (the nonces are unique)."""


def nonce_of(actions: list[Action], conn: int) -> str:
    (challenge,) = sent(actions, conn)
    assert isinstance(challenge, Challenge)
    SHARES[challenge.nonce] = challenge.share
    return challenge.nonce


def hello(reg: RoomRegistry, conn: int, now: float = 0.0) -> str:
    """Connect; returns the connection's challenge nonce."""
    return nonce_of(reg.connect(conn, now), conn)


def register(
    who: SignalPeer,
    nonce: str,
    *,
    seq: int = 0,
    room: str = ROOM,
    v: int = PROTOCOL_VERSION,
    identity: Identity | None = None,
    session: str = "",
) -> Register:
    """`who`'s registration answering `nonce` (in the keyed `session`), signed
    with its own key."""
    identity = identity or IDS[NAMES[who.peer_id]]
    signature = identity.sign(registration_statement(nonce, who.peer_id, room, seq, session))
    return Register(
        peer=who, room=room, identity=identity.public_key, signature=signature, v=v, seq=seq
    )


def join(
    reg: RoomRegistry, conn: int, who: SignalPeer, now: float = 0.0, *, seq: int = 0
) -> list[Action]:
    """Connect and register (open room); returns the actions of the register frame."""
    nonce = hello(reg, conn, now)
    return reg.receive(conn, frame(register(who, nonce, seq=seq)), now)


class Session:
    """A member's end of a keyed room's session, as SignalingClient keeps it.
    `server_share`: the share the client believes is the server's (a relay in
    the middle may hand it its own)."""

    def __init__(
        self,
        server_nonce: str,
        key: str = KEY,
        nonce: str = "c0ffee",
        server_share: str | None = None,
    ) -> None:
        self.nonce = nonce
        self.mine = Ephemeral()
        self.server_share = server_share or SHARES.get(server_nonce) or Ephemeral().share
        self.binding = session_binding(nonce, self.server_share, self.mine.share)
        self.box = open_session(
            key,
            ROOM,
            side="client",
            mine=self.mine,
            server_nonce=server_nonce,
            client_nonce=nonce,
            server_share=self.server_share,
            client_share=self.mine.share,
        )
        self._first = True

    def seal_register(self, who: SignalPeer, server_nonce: str, *, seq: int = 0) -> Sealed:
        """`who`'s registration, signed in this session and sealed in it."""
        return self.seal(register(who, server_nonce, seq=seq, session=self.binding))

    def seal(self, msg: SignalMessage) -> Sealed:
        """The next frame to send; the first one carries the client nonce and share."""
        return self.seal_text(frame(msg))

    def seal_text(self, body: str) -> Sealed:
        seq, box = self.box.seal(body)
        first, self._first = self._first, False
        return Sealed(
            seq=seq,
            box=box,
            nonce=self.nonce if first else None,
            share=self.mine.share if first else None,
        )

    def open(self, msg: SignalMessage) -> SignalMessage:
        """A frame from the leader: it must be sealed, intact and the next one."""
        assert isinstance(msg, Sealed), msg
        text = self.box.open(msg.seq, msg.box)
        assert text is not None, msg
        return decode_signal(text)


def flipped(box: str) -> str:
    """`box` with one bit of its ciphertext changed."""
    raw = bytearray(unb64(box))
    raw[0] ^= 1
    return b64(bytes(raw))


def join_keyed(
    reg: RoomRegistry,
    conn: int,
    who: SignalPeer,
    now: float = 0.0,
    *,
    seq: int = 0,
    nonce: str = "c0ffee",
) -> tuple[Session, list[Action]]:
    """Connect and register in a keyed room: the session (in step: the reply is
    opened already) and the register's actions."""
    server_nonce = hello(reg, conn, now)
    session = Session(server_nonce, nonce=nonce)
    sealed = session.seal_register(who, server_nonce, seq=seq)
    actions = reg.receive(conn, frame(sealed), now)
    (reply,) = sent(actions, conn)
    assert isinstance(session.open(reply), Registered)
    return session, actions


def registered(actions: list[Action], conn: int) -> Registered:
    replies = [m for m in sent(actions, conn) if isinstance(m, Registered)]
    assert len(replies) == 1, actions
    return replies[0]


def acked(reg: RoomRegistry, conn: int, now: float, seq: int = 1) -> bool:
    """The connection is alive and registered: a heartbeat gets its ack."""
    return sent(reg.receive(conn, frame(Heartbeat(seq=seq, term=TERM)), now), conn) == [
        HeartbeatAck(seq=seq, term=reg.term)
    ]


def refusal(actions: list[Action], conn: int) -> tuple[str, int]:
    """The error code and the close code that refused `conn`; the error is plain."""
    (error,) = sent(actions, conn)
    assert isinstance(error, SignalError), error  # never sealed: there may be no session
    return error.code, closes(actions)[conn][0]


def one_byte_changed(text: str, old: str = "Peer", new: str = "Beer") -> str:
    """`text` with one byte altered, still valid JSON."""
    assert old in text and len(old) == len(new)
    return text.replace(old, new, 1)


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
    assert reply == Registered(leader_id=pid("L"), term=TERM, peers=[LEADER, A])
    assert members_changed(actions) == [["L", "A"]]
    assert names(reg.members()) == ["L", "A"]


def test_a_new_member_is_announced_to_everyone_else() -> None:
    reg = make()
    join(reg, 1, A)
    actions = join(reg, 2, B)
    assert names(registered(actions, 2).peers) == ["L", "A", "B"]
    assert sent(actions, 1) == [PeerList(leader_id=pid("L"), term=TERM, peers=[LEADER, A, B])]
    assert members_changed(actions) == [["L", "A", "B"]]
    assert not closes(actions)


@pytest.mark.parametrize(
    ("who", "changes", "code"),
    [
        (A, {"room": "other"}, "wrong_room"),
        (A, {"v": PROTOCOL_VERSION + 1}, "wrong_version"),
        (LEADER, {}, "id_conflict"),
    ],
    ids=["room", "version", "leaders-id"],
)
def test_wrong_room_version_or_the_leaders_own_id_is_refused_with_4010(
    who: SignalPeer, changes: dict[str, Any], code: str
) -> None:
    reg = make()
    nonce = hello(reg, 1)
    actions = reg.receive(1, frame(register(who, nonce, **changes)), 0.0)
    assert errors(actions, 1) == [code]
    assert closes(actions) == {1: (CloseCode.REJECTED, closes(actions)[1][1])}
    assert names(reg.members()) == ["L"]


def test_a_peer_that_does_not_lead_refuses_with_4009_naming_the_leader() -> None:
    reg = make(leading=False)
    nonce = hello(reg, 1)
    actions = reg.receive(1, frame(register(A, nonce)), 0.0)
    assert errors(actions, 1) == ["not_leader"]
    assert closes(actions) == {1: (CloseCode.NOT_LEADER, "not leader")}

    reg.set_leader_hint(pid("X"))
    nonce = hello(reg, 2)
    (error,) = sent(reg.receive(2, frame(register(A, nonce)), 0.0), 2)[:1]
    assert isinstance(error, SignalError) and pid("X") in error.message


def test_re_registration_replaces_the_old_connection_with_4002() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    actions = join(reg, 3, A, 1.0, seq=1)
    assert closes(actions) == {1: (CloseCode.REPLACED, "replaced by a newer connection")}
    assert names(registered(actions, 3).peers) == ["L", "B", "A"]
    assert members_changed(actions) == [["L", "B", "A"]]
    # The old connection is forgotten: its late frames and its disconnect change nothing.
    assert reg.receive(1, frame(Leave(peer_id=pid("A"))), 1.1) == []
    assert reg.disconnect(1, 1.2) == []
    assert names(reg.members()) == ["L", "B", "A"]
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


@pytest.mark.parametrize("seq", [2, 1, 0])
def test_a_newcomer_with_the_same_id_and_no_newer_seq_is_refused_and_the_member_stays(
    seq: int,
) -> None:
    reg = make()
    join(reg, 1, A, seq=2)
    join(reg, 2, B)
    actions = join(reg, 3, A, 1.0, seq=seq)
    assert errors(actions, 3) == ["id_conflict"]
    assert closes(actions) == {3: (CloseCode.REJECTED, "peer id conflict")}
    assert not sent(actions, 1) and not sent(actions, 2) and not members_changed(actions)
    assert names(reg.members()) == ["L", "A", "B"]
    assert acked(reg, 1, 1.1)


def test_register_twice_on_one_connection_is_an_error_only() -> None:
    reg = make()
    nonce = hello(reg, 1)
    reg.receive(1, frame(register(A, nonce)), 0.0)
    actions = reg.receive(1, frame(register(A, nonce)), 0.0)
    assert errors(actions, 1) == ["already_registered"]
    assert not closes(actions)
    assert acked(reg, 1, 0.1)


@pytest.mark.parametrize(
    "msg",
    [
        Heartbeat(seq=1, term=TERM),
        Offer(from_=pid("A"), to=pid("L"), sdp="v=0", link="l1", epoch=1),
        Leave(peer_id=pid("A")),
        PeerList(leader_id=pid("L"), term=1, peers=[]),
        Challenge(nonce="x", share="x"),
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


# ---------------------------------------------------------------- identity

Forgery = Callable[[str], Register]
"""A registration that claims to be A (at seq 5, newer than A's), given the nonce."""


def _as_a(*, key: str, signer: str, nonce: str, peer_id: str, room: str, seq: int) -> Register:
    """A registration claiming A's entry at seq 5 with `key`'s public key, signed
    by `signer` over the given statement."""
    statement = registration_statement(nonce, peer_id, room, seq)
    return Register(
        peer=A,
        room=ROOM,
        identity=IDS[key].public_key,
        signature=IDS[signer].sign(statement),
        seq=5,
    )


def _a(n: str) -> dict[str, Any]:
    """The statement A would sign for this registration on challenge `n`."""
    return {"nonce": n, "peer_id": pid("A"), "room": ROOM, "seq": 5}


FORGERIES: dict[str, Forgery] = {
    # Z presents its own key (so its own id) and claims A's id.
    "someone-elses-id": lambda n: _as_a(key="Z", signer="Z", **_a(n)),
    # A's public key, but Z cannot sign with it.
    "bad-signature": lambda n: _as_a(key="A", signer="Z", **_a(n)),
    # A's genuine signatures, of something else: replays of other registrations.
    "other-nonce": lambda n: _as_a(key="A", signer="A", **(_a(n) | {"nonce": "nonce0"})),
    "other-seq": lambda n: _as_a(key="A", signer="A", **(_a(n) | {"seq": 0})),
    "other-room": lambda n: _as_a(key="A", signer="A", **(_a(n) | {"room": "other"})),
    "other-peer-id": lambda n: _as_a(key="A", signer="A", **(_a(n) | {"peer_id": pid("Z")})),
    "garbage": lambda n: Register(peer=A, room=ROOM, identity="pk", signature="sig", seq=5),
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_registration_that_does_not_prove_its_id_is_refused_and_evicts_nobody(
    forge: Forgery,
) -> None:
    reg = make()
    join(reg, 1, A)  # its challenge was "nonce0"
    join(reg, 2, B)
    nonce = hello(reg, 3, 1.0)
    actions = reg.receive(3, frame(forge(nonce)), 1.0)
    assert errors(actions, 3) == ["bad_identity"]
    assert closes(actions) == {3: (CloseCode.FORBIDDEN, "bad identity")}
    assert not sent(actions, 1) and not sent(actions, 2) and not members_changed(actions)
    assert names(reg.members()) == ["L", "A", "B"]
    assert acked(reg, 1, 1.1)


def test_a_signed_registration_is_bound_to_its_connections_challenge() -> None:
    reg = make()
    nonce1 = hello(reg, 1)
    hello(reg, 2)
    # A's registration for connection 1, replayed on connection 2 first.
    actions = reg.receive(2, frame(register(A, nonce1)), 0.0)
    assert errors(actions, 2) == ["bad_identity"]
    assert closes(actions) == {2: (CloseCode.FORBIDDEN, "bad identity")}
    assert registered(reg.receive(1, frame(register(A, nonce1)), 0.0), 1)


# ---------------------------------------------------------------- keyed rooms


def test_keyed_room_accepts_a_sealed_register_and_seals_everything_after() -> None:
    reg = make(KEY)
    nonce = hello(reg, 1)
    a = Session(nonce)
    sealed = a.seal_register(A, nonce)
    assert sealed.seq == 1 and sealed.nonce == a.nonce
    actions = reg.receive(1, frame(sealed), 0.0)
    (reply,) = sent(actions, 1)
    assert isinstance(reply, Sealed) and reply.nonce is None
    assert a.open(reply) == Registered(leader_id=pid("L"), term=TERM, peers=[LEADER, A])
    assert members_changed(actions) == [["L", "A"]]

    b, actions = join_keyed(reg, 2, B, nonce="beef")  # its own session
    (announce,) = sent(actions, 1)
    assert a.open(announce) == PeerList(leader_id=pid("L"), term=TERM, peers=[LEADER, A, B])

    beat = reg.receive(1, frame(a.seal(Heartbeat(seq=1, term=TERM))), 0.1)
    assert [a.open(m) for m in sent(beat, 1)] == [HeartbeatAck(seq=1, term=TERM)]
    # Forwarded signals are opened and sealed again, under the receiver's session.
    offer = Offer(from_=pid("A"), to=pid("B"), sdp="v=0", link="l1", epoch=1)
    (forwarded,) = sent(reg.receive(1, frame(a.seal(offer)), 0.2), 2)
    assert b.open(forwarded) == offer
    local = Answer(from_=pid("A"), to=pid("L"), sdp="v=0", link="l1", epoch=1)
    assert reg.receive(1, frame(a.seal(local)), 0.3) == [Deliver(local)]
    to_b = Offer(from_=pid("L"), to=pid("B"), sdp="v=0", link="l2", epoch=1)
    (from_leader,) = sent(reg.send_local(to_b), 2)
    assert b.open(from_leader) == to_b
    # An error that keeps the connection open is sealed as well.
    spoof = Offer(from_=pid("B"), to=pid("B"), sdp="x", link="l1", epoch=1)
    (error,) = sent(reg.receive(1, frame(a.seal(spoof)), 0.4), 1)
    opened = a.open(error)
    assert isinstance(opened, SignalError) and opened.code == "spoofed"
    # A leave too; then B hears of it, sealed.
    actions = reg.receive(1, frame(a.seal(Leave(peer_id=pid("A")))), 0.5)
    assert closes(actions) == {1: (CloseCode.NORMAL, "left")}
    (gone,) = sent(actions, 2)
    assert b.open(gone) == PeerList(leader_id=pid("L"), term=TERM, peers=[LEADER, B])


def _seal_with(
    server_nonce: str, body: str, *, key: str = KEY, leaders_direction: bool = False
) -> Sealed:
    session = Session(server_nonce, key=key)
    if not leaders_direction:
        return session.seal_text(body)
    # sealed as the leader seals to the client: the other direction's key
    share = SHARES[server_nonce]
    shared = session.mine.agree(share)
    to_server, to_client = session_keys(
        key, ROOM, server_nonce, session.nonce, share, session.mine.share, shared
    )
    mirror = Box(sending=to_client, receiving=to_server, direction="s")
    seq, box = mirror.seal(body)
    return Sealed(seq=seq, box=box, nonce=session.nonce, share=session.mine.share)


def _second(server_nonce: str, body: str) -> Sealed:
    session = Session(server_nonce)
    session.seal(Heartbeat(seq=1, term=TERM))  # sealed, never sent
    return session.seal(decode_signal(body))


BAD_REGISTERS: dict[str, Callable[[str, str], SignalMessage]] = {
    "plain": lambda n, body: decode_signal(body),
    "wrong-key": lambda n, body: _seal_with(n, body, key="not the key"),
    "no-nonce": lambda n, body: msgspec.structs.replace(_seal_with(n, body), nonce=None),
    "other-nonce": lambda n, body: msgspec.structs.replace(_seal_with(n, body), nonce="beef"),
    "no-share": lambda n, body: msgspec.structs.replace(_seal_with(n, body), share=None),
    "not-a-share": lambda n, body: msgspec.structs.replace(_seal_with(n, body), share="x" * 43),
    "other-share": lambda n, body: msgspec.structs.replace(
        _seal_with(n, body), share=Ephemeral().share
    ),
    "tampered": lambda n, body: msgspec.structs.replace(
        _seal_with(n, body), box=flipped(_seal_with(n, body).box)
    ),
    "seq-2": _second,
    "leaders-direction": lambda n, body: _seal_with(n, body, leaders_direction=True),
    "sealed-twice": lambda n, body: _seal_with(n, frame(_seal_with(n, body))),
    "not-json": lambda n, body: _seal_with(n, "hello"),
}


@pytest.mark.parametrize("make_frame", BAD_REGISTERS.values(), ids=BAD_REGISTERS.keys())
def test_keyed_room_refuses_a_register_not_sealed_with_the_key_with_4003(
    make_frame: Callable[[str, str], SignalMessage],
) -> None:
    reg = make(KEY)
    join_keyed(reg, 1, A)
    nonce = hello(reg, 2)
    actions = reg.receive(2, frame(make_frame(nonce, frame(register(B, nonce)))), 0.0)
    assert refusal(actions, 2) == ("forbidden", CloseCode.FORBIDDEN)
    assert closes(actions) == {2: (CloseCode.FORBIDDEN, "forbidden")}
    assert not sent(actions, 1) and not members_changed(actions)
    assert names(reg.members()) == ["L", "A"]
    assert all(KEY not in frame(x.msg) for x in actions if isinstance(x, Send))


def test_a_sealed_register_is_bound_to_its_connections_nonce() -> None:
    reg = make(KEY)
    nonce1 = hello(reg, 1)
    hello(reg, 2)
    # Connection 1's sealed register, replayed on connection 2.
    replayed = Session(nonce1).seal_register(A, nonce1)
    actions = reg.receive(2, frame(replayed), 0.0)
    assert refusal(actions, 2) == ("forbidden", CloseCode.FORBIDDEN)
    # On its own connection it opens.
    (reply,) = sent(reg.receive(1, frame(Session(nonce1).seal_register(A, nonce1)), 0.0), 1)
    assert isinstance(reply, Sealed)
    assert names(reg.members()) == ["L", "A"]


def _tampered(session: Session, msg: SignalMessage) -> list[SignalMessage]:
    sealed = session.seal(msg)
    return [msgspec.structs.replace(sealed, box=flipped(sealed.box))]


def _replayed(session: Session, msg: SignalMessage) -> list[SignalMessage]:
    sealed = session.seal(msg)
    return [sealed, sealed]


def _skipped(session: Session, msg: SignalMessage) -> list[SignalMessage]:
    session.seal(msg)  # sealed, never sent
    return [session.seal(msg)]


def _other_session(session: Session, msg: SignalMessage) -> list[SignalMessage]:
    """The next frame's number, but a box sealed in another session of the room."""
    sealed = session.seal(msg)
    other = Session("another challenge", server_share=Ephemeral().share)
    other.seal(msg)
    return [msgspec.structs.replace(sealed, box=other.seal(msg).box)]


BAD_MEMBER_FRAMES: dict[str, Callable[[Session, SignalMessage], list[SignalMessage]]] = {
    "plain": lambda session, msg: [msg],
    "tampered": _tampered,
    "replayed": _replayed,
    "skipped": _skipped,
    "other-session": _other_session,
}


@pytest.mark.parametrize("frames", BAD_MEMBER_FRAMES.values(), ids=BAD_MEMBER_FRAMES.keys())
def test_keyed_room_closes_a_member_whose_frame_is_not_sealed_or_not_intact_with_4003(
    frames: Callable[[Session, SignalMessage], list[SignalMessage]],
) -> None:
    reg = make(KEY)
    a, _ = join_keyed(reg, 1, A)
    _, actions = join_keyed(reg, 2, B)
    (announce,) = sent(actions, 1)
    assert a.open(announce) == PeerList(leader_id=pid("L"), term=TERM, peers=[LEADER, A, B])
    *good, bad = frames(a, Heartbeat(seq=1, term=TERM))
    for msg in good:
        assert [a.open(m) for m in sent(reg.receive(1, frame(msg), 0.1), 1)] == [
            HeartbeatAck(seq=1, term=TERM)
        ]
    actions = reg.receive(1, frame(bad), 0.2)
    assert refusal(actions, 1) == ("forbidden", CloseCode.FORBIDDEN)
    assert closes(actions) == {1: (CloseCode.FORBIDDEN, "forbidden")}
    assert names(reg.members()) == ["L", "B"]
    assert reg.receive(1, frame(a.seal(Heartbeat(seq=2, term=TERM))), 0.3) == []


def test_open_room_answers_a_sealed_frame_with_unexpected_and_stays_open() -> None:
    reg = make()
    nonce = hello(reg, 1)
    sealed = Session(nonce).seal_register(A, nonce)
    actions = reg.receive(1, frame(sealed), 0.0)
    assert errors(actions, 1) == ["unexpected"] and not closes(actions)
    assert registered(reg.receive(1, frame(register(A, nonce)), 0.0), 1)
    actions = reg.receive(1, frame(sealed), 0.1)
    assert errors(actions, 1) == ["unexpected"] and not closes(actions)
    assert acked(reg, 1, 0.2)


def test_a_relay_cannot_alter_the_sealed_register() -> None:
    """A device in the middle relays the challenge and the client's sealed
    register; it may read them, but changing one byte is noticed."""
    reg = make(KEY)
    nonce = hello(reg, 1)
    client = Session(nonce)
    sealed = client.seal_register(A, nonce)
    altered = msgspec.structs.replace(sealed, box=flipped(sealed.box))
    actions = reg.receive(1, frame(altered), 0.0)
    assert closes(actions) == {1: (CloseCode.FORBIDDEN, "forbidden")}
    assert names(reg.members()) == ["L"]

    # Nor can it hand the client a challenge of its own: the keys then differ.
    nonce = hello(reg, 2)
    fooled = Session("a nonce of the relay's")
    actions = reg.receive(2, frame(fooled.seal_register(A, nonce)), 0.0)
    assert closes(actions) == {2: (CloseCode.FORBIDDEN, "forbidden")}


def test_a_member_in_the_middle_cannot_carry_anothers_registration_into_its_own_session() -> None:
    """A device that holds the room key answers for the leader's address: it
    opens the client's sealed register (its own session with the client) and
    seals it again in a session of its own with the leader. The registration
    was signed in the client's session, so it does not fit: the leader refuses
    it, and never sends that client's frames (a later rekey) through the device."""
    reg = make(KEY)
    nonce = hello(reg, 1)
    victim = Session(nonce, server_share=Ephemeral().share)  # the device's share, not the leader's
    carried = register(A, nonce, session=victim.binding)
    middle = Session(nonce, nonce="mitm")  # the device's own session with the leader
    actions = reg.receive(1, frame(middle.seal(carried)), 0.0)
    assert refusal(actions, 1) == ("bad_identity", CloseCode.FORBIDDEN)
    assert names(reg.members()) == ["L"]


def test_a_relay_cannot_alter_the_leaders_sealed_reply() -> None:
    reg = make(KEY)
    nonce = hello(reg, 1)
    client = Session(nonce)
    (reply,) = sent(reg.receive(1, frame(client.seal_register(A, nonce)), 0.0), 1)
    assert isinstance(reply, Sealed)
    altered = msgspec.structs.replace(reply, box=flipped(reply.box))
    assert client.box.open(altered.seq, altered.box) is None
    # Nor can it make up a reply of its own.
    made_up = Registered(leader_id=pid("X"), term=TERM, peers=[peer("X")])
    assert client.box.open(1, b64(frame(made_up).encode() + b"0" * 16)) is None
    # The genuine reply still opens: nothing above consumed its place.
    assert client.open(reply) == Registered(leader_id=pid("L"), term=TERM, peers=[LEADER, A])


# ---------------------------------------------------------------- addresses


def test_set_networks_keeps_only_unicast_addresses_on_the_leaders_networks() -> None:
    reg = make()
    reg.set_networks(
        [ipaddress.IPv4Network("10.0.0.0/24"), ipaddress.IPv4Network("192.168.7.0/24")]
    )
    listed = [
        "10.0.0.9",
        "172.16.0.4",  # another network
        "224.0.0.251",  # multicast
        "127.0.0.1",  # loopback
        "10.0.0.255",  # the network's broadcast address
        "192.168.7.20",
        "10.0.0.9",  # listed twice
        "0.0.0.0",  # unspecified
    ]
    actions = join(reg, 1, peer("A", addresses=listed))
    kept = peer("A", addresses=["10.0.0.9", "192.168.7.20"])
    assert registered(actions, 1).peers == [LEADER, kept]
    assert [a.members for a in actions if isinstance(a, MembersChanged)] == [[LEADER, kept]]
    assert reg.members() == [LEADER, kept]


def test_without_networks_any_unicast_address_is_kept() -> None:
    reg = make()
    listed = ["192.168.1.5", "224.0.0.251", "127.0.0.1", "0.0.0.0", "172.16.0.4"]
    actions = join(reg, 1, peer("A", addresses=listed))
    assert registered(actions, 1).peers[1].addresses == ["192.168.1.5", "172.16.0.4"]


@pytest.mark.parametrize(
    ("networks", "addresses"),
    [
        (["10.0.0.0/24"], ["172.16.0.4", "10.0.1.9"]),
        (["10.0.0.0/24"], ["10.0.0.255", "127.0.0.1"]),
        ([], ["127.0.0.1", "224.0.0.251", "0.0.0.0"]),
        ([], []),
    ],
)
def test_a_peer_with_no_usable_address_left_is_refused_with_4010(
    networks: list[str], addresses: list[str]
) -> None:
    reg = make()
    join(reg, 1, B)
    reg.set_networks([ipaddress.IPv4Network(n) for n in networks])
    actions = join(reg, 2, peer("A", addresses=addresses))
    assert errors(actions, 2) == ["bad_address"]
    assert closes(actions) == {2: (CloseCode.REJECTED, "no usable address")}
    assert not sent(actions, 1) and not members_changed(actions)
    assert names(reg.members()) == ["L", "B"]


def test_more_than_eight_addresses_is_an_invalid_frame() -> None:
    reg = make()
    nonce = hello(reg, 1)
    crowded = peer("A", addresses=[f"10.0.0.{i}" for i in range(1, 10)])
    actions = reg.receive(1, frame(register(crowded, nonce)), 0.0)
    assert errors(actions, 1) == ["invalid"] and not closes(actions)
    assert registered(reg.receive(1, frame(register(A, nonce)), 0.0), 1)


# ---------------------------------------------------------------- frame rate


def heartbeats(reg: RoomRegistry, conn: int, count: int, now: float) -> list[list[Action]]:
    return [reg.receive(conn, frame(Heartbeat(seq=i, term=TERM)), now) for i in range(count)]


def test_a_burst_beyond_frame_burst_is_closed_with_4029() -> None:
    assert FRAME_BURST == 60
    reg = make()
    join(reg, 1, A, 0.0)
    join(reg, 2, B, 0.0)
    *burst, last = heartbeats(reg, 1, FRAME_BURST + 1, 10.0)  # 61 frames at once
    assert all(
        sent(actions, 1) == [HeartbeatAck(seq=i, term=TERM)] for i, actions in enumerate(burst)
    )
    assert errors(last, 1) == ["too_fast"]
    assert closes(last) == {1: (CloseCode.TOO_FAST, "too many frames")}
    assert names(reg.members()) == ["L", "B"]
    assert reg.receive(1, frame(Heartbeat(seq=99, term=TERM)), 20.0) == []
    assert acked(reg, 2, 10.0)  # B's own bucket is untouched


def test_frame_rate_sustained_is_fine_and_the_bucket_refills_at_that_rate() -> None:
    assert FRAME_RATE == 20.0
    reg = make()
    join(reg, 1, A, 0.0)
    # 20 frames a second for 30 s: far beyond the burst, all taken.
    for i in range(1, 601):
        assert acked(reg, 1, i / FRAME_RATE, seq=i)
    # Drain the bucket, then one second buys exactly FRAME_RATE frames more.
    assert all(len(sent(a, 1)) == 1 for a in heartbeats(reg, 1, FRAME_BURST, 40.0))
    *second, last = heartbeats(reg, 1, int(FRAME_RATE) + 1, 41.0)
    assert all(
        sent(actions, 1) == [HeartbeatAck(seq=i, term=TERM)] for i, actions in enumerate(second)
    )
    assert closes(last) == {1: (CloseCode.TOO_FAST, "too many frames")}


def test_a_stranger_flooding_bad_frames_is_closed_with_4029() -> None:
    reg = make()
    reg.connect(1, 0.0)
    floods = [reg.receive(1, "{not json", 0.0) for _ in range(FRAME_BURST + 1)]
    assert all(errors(actions, 1) == ["malformed"] for actions in floods[:-1])
    assert errors(floods[-1], 1) == ["too_fast"]
    assert closes(floods[-1]) == {1: (CloseCode.TOO_FAST, "too many frames")}
    assert reg.next_deadline() is None


@pytest.mark.parametrize("cause", ["too_fast", "forbidden"])
def test_a_member_closed_by_a_refusal_is_announced_gone(cause: str) -> None:
    reg = make(KEY if cause == "forbidden" else None)
    if cause == "forbidden":
        join_keyed(reg, 1, A)
        b, _ = join_keyed(reg, 2, B, nonce="beef")
        actions = reg.receive(1, frame(Heartbeat(seq=1, term=TERM)), 1.0)  # not sealed
        announced = [b.open(m) for m in sent(actions, 2)]
    else:
        join(reg, 1, A)
        join(reg, 2, B)
        actions = heartbeats(reg, 1, FRAME_BURST + 1, 1.0)[-1]
        announced = sent(actions, 2)
    assert refusal(actions, 1)[1] in (CloseCode.TOO_FAST, CloseCode.FORBIDDEN)
    assert announced == [PeerList(leader_id=pid("L"), term=TERM, peers=[LEADER, B])]
    assert members_changed(actions) == [["L", "B"]]


# ---------------------------------------------------------------- forwarding


def test_signals_are_forwarded_as_is_between_members() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    a, b = pid("A"), pid("B")
    for msg in (
        Offer(from_=a, to=b, sdp="v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n", link="l1", epoch=1),
        Answer(from_=a, to=b, sdp="v=0", link="l1", epoch=1),
        Candidate(from_=a, to=b, candidate="candidate:1 1 udp 1 10.0.0.1 9 typ host"),
        Candidate(from_=a, to=b, candidate=None, sdp_mid="0", sdp_mline_index=0),
    ):
        assert reg.receive(1, frame(msg), 0.0) == [Send(2, msg)]


def test_signals_to_the_leader_are_delivered_locally() -> None:
    reg = make()
    join(reg, 1, A)
    msg = Answer(from_=pid("A"), to=pid("L"), sdp="v=0", link="l1", epoch=1)
    assert reg.receive(1, frame(msg), 0.0) == [Deliver(msg)]


def test_a_member_can_only_send_as_itself() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    for spoof in (
        Offer(from_=pid("B"), to=pid("B"), sdp="x", link="l1", epoch=1),
        Offer(from_=pid("L"), to=pid("L"), sdp="x", link="l1", epoch=1),
    ):
        actions = reg.receive(1, frame(spoof), 0.0)
        assert errors(actions, 1) == ["spoofed"]
        assert len(actions) == 1  # nothing forwarded, nothing closed
    honest = Offer(from_=pid("A"), to=pid("B"), sdp="x", link="l1", epoch=1)
    assert reg.receive(1, frame(honest), 0.0) == [Send(2, honest)]


def test_only_registered_peers_are_reachable() -> None:
    reg = make()
    join(reg, 1, A)
    reg.connect(2, 0.0)  # connected, never registered as B
    for to in (pid("B"), "nobody"):
        offer = Offer(from_=pid("A"), to=to, sdp="x", link="l1", epoch=1)
        actions = reg.receive(1, frame(offer), 0.0)
        assert errors(actions, 1) == ["unknown_peer"]
        assert len(actions) == 1


def test_send_local_reaches_a_member_and_raises_for_strangers() -> None:
    reg = make()
    join(reg, 1, A)
    msg = Offer(from_=pid("L"), to=pid("A"), sdp="v=0", link="l1", epoch=1)
    assert reg.send_local(msg) == [Send(1, msg)]
    with pytest.raises(KeyError):
        reg.send_local(Offer(from_=pid("L"), to=pid("B"), sdp="v=0", link="l1", epoch=1))
    with pytest.raises(ValueError, match="send as"):
        reg.send_local(Offer(from_=pid("A"), to=pid("A"), sdp="v=0", link="l1", epoch=1))
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
    expected = PeerList(leader_id=pid("L"), term=TERM + 1, peers=[LEADER, A, B])
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
    assert sent(actions, 2) == [PeerList(leader_id=pid("L"), term=TERM, peers=[LEADER, B])]
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
    actions = reg.receive(1, frame(Leave(peer_id=pid("A"))), 1.0)
    assert closes(actions) == {1: (CloseCode.NORMAL, "left")}
    assert sent(actions, 2) == [PeerList(leader_id=pid("L"), term=TERM, peers=[LEADER, B])]
    assert members_changed(actions) == [["L", "B"]]
    assert reg.disconnect(1, 1.1) == []


def test_leave_for_someone_else_is_spoofed() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    actions = reg.receive(1, frame(Leave(peer_id=pid("B"))), 1.0)
    assert errors(actions, 1) == ["spoofed"]
    assert len(actions) == 1
    assert names(reg.members()) == ["L", "A", "B"]


def test_disconnect_of_a_member_is_broadcast_and_of_a_stranger_is_silent() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    reg.connect(3, 0.0)
    assert reg.disconnect(3, 1.0) == []
    actions = reg.disconnect(1, 1.0)
    assert sent(actions, 2) == [PeerList(leader_id=pid("L"), term=TERM, peers=[LEADER, B])]
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
    assert names(reg.members()) == ["L"]
    assert reg.next_deadline() is None
    assert not reg.leading
    nonce = hello(reg, 4, 2.0)
    assert errors(reg.receive(4, frame(register(C, nonce)), 2.0), 4) == ["not_leader"]


def test_stop_leading_with_a_redirect_points_the_followers_at_the_successor() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    successor = peer("S", started_at=0)
    actions = reg.stop_leading(1.0, redirect=successor, term=TERM + 1)
    turn = PeerList(leader_id=pid("S"), term=TERM + 1, peers=[successor, LEADER, A, B])
    # Each follower hears of the successor before its close.
    for conn in (1, 2):
        mine = [a for a in actions if getattr(a, "conn_id", None) == conn]
        assert mine == [Send(conn, turn), Close(conn, 4000, "leader stepped down")]
    nonce = hello(reg, 3, 2.0)
    (error, _) = reg.receive(3, frame(register(C, nonce)), 2.0)
    assert isinstance(error, Send) and isinstance(error.msg, SignalError)
    assert pid("S") in error.msg.message


def test_start_leading_again_only_changes_the_term() -> None:
    reg = make()
    join(reg, 1, A)
    assert reg.start_leading(TERM + 2, 1.0) == [
        Send(1, PeerList(leader_id=pid("L"), term=TERM + 2, peers=[LEADER, A]))
    ]
    assert names(reg.members()) == ["L", "A"]


def test_update_me_is_broadcast() -> None:
    reg = make()
    join(reg, 1, A)
    moved = msgspec.structs.replace(LEADER, port=4444)
    actions = reg.update_me(moved)
    assert sent(actions, 1) == [PeerList(leader_id=pid("L"), term=TERM, peers=[moved, A])]
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
    assert names(reg.members()) == (["L", "A", "B"] if registered_first else ["L", "A"])
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
        Challenge(nonce="x", share="x"),
        Registered(leader_id=pid("A"), term=1, peers=[]),
        PeerList(leader_id=pid("A"), term=1, peers=[]),
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


def test_a_member_on_another_subnet_keeps_the_address_its_connection_comes_from() -> None:
    reg = make()
    reg.set_networks([ipaddress.IPv4Network("10.0.0.0/24")])
    nonce = nonce_of(reg.connect(1, 0.0, remote="10.1.0.7"), 1)
    routed = peer("A", addresses=["10.1.0.7", "10.1.0.8", "172.16.0.4"])
    actions = reg.receive(1, frame(register(routed, nonce)), 0.0)
    assert registered(actions, 1).peers[1].addresses == ["10.1.0.7"]


# ---------------------------------------------------------------- rendezvous queries


def record(who: SignalPeer, role: str = "leader", term: int = TERM) -> PeerRecord:
    return PeerRecord.of(
        who, role=role, leader_id=LEADER.peer_id if role != "candidate" else None,  # type: ignore[arg-type]
        term=term, room=ROOM,
    )  # fmt: skip


@pytest.mark.parametrize("leading", [True, False])
def test_any_peer_answers_a_query_with_what_it_knows_then_closes(leading: bool) -> None:
    reg = make(leading=leading)
    known = [record(A, "follower"), record(LEADER)]
    reg.set_known(known)
    nonce = hello(reg, 1)
    del nonce
    actions = reg.receive(1, frame(Query(room=ROOM)), 0.0)
    (answer,) = sent(actions, 1)
    assert isinstance(answer, RoomInfo) and answer.records == known
    assert closes(actions) == {1: (CloseCode.NORMAL, "answered")}
    assert not members_changed(actions) and names(reg.members()) == ["L"]


def test_a_query_for_another_room_or_version_is_refused() -> None:
    reg = make()
    hello(reg, 1)
    actions = reg.receive(1, frame(Query(room="other")), 0.0)
    assert errors(actions, 1) == ["wrong_room"]
    hello(reg, 2)
    actions = reg.receive(2, frame(Query(room=ROOM, v=PROTOCOL_VERSION + 1)), 0.0)
    assert errors(actions, 2) == ["wrong_version"]


def test_in_a_keyed_room_only_a_sealed_query_is_answered_and_sealed() -> None:
    reg = make(KEY)
    reg.set_known([record(LEADER)])
    hello(reg, 1)
    plain = reg.receive(1, frame(Query(room=ROOM)), 0.0)
    assert errors(plain, 1) == ["forbidden"] and 1 in closes(plain)
    session = Session(hello(reg, 2))
    actions = reg.receive(2, frame(session.seal(Query(room=ROOM))), 0.0)
    (answer,) = sent(actions, 2)
    opened = session.open(answer)
    assert isinstance(opened, RoomInfo) and opened.records == [record(LEADER)]
    wrong = Session(hello(reg, 3), key="not the key")
    refused = reg.receive(3, frame(wrong.seal(Query(room=ROOM))), 0.0)
    assert errors(refused, 3) == ["forbidden"]


# ------------------------------------------------------------------ pairing, rekey


def test_a_keyed_room_pairs_a_device_without_the_key_then_closes_its_connection() -> None:
    reg = make(KEY, leading=False)  # any member pairs, leading or not
    (opened,) = reg.open_pairing(Window(code="123456", expires_at=60.0))
    assert isinstance(opened, PairingUpdate) and opened.reason == "opened"
    nonce = hello(reg, 1)
    device = Initiator("123456", ROOM, nonce, "cc" * 16)
    actions = reg.receive(1, frame(PairHello(room=ROOM, share=device.share, nonce="cc" * 16)), 1.0)
    (reply,) = sent(actions, 1)
    assert isinstance(reply, PairReply)  # plain: the device has no key to seal with
    assert [a.reason for a in actions if isinstance(a, PairingUpdate)] == ["tried"]
    confirm = PairConfirm(tag=device.reply(reply.share, reply.tag))
    done = reg.receive(1, frame(confirm), 1.0)
    (key_frame,) = sent(done, 1)
    assert isinstance(key_frame, PairKey) and device.room_key(key_frame.sealed) == KEY
    assert closes(done) == {1: (CloseCode.NORMAL, "paired")}
    assert [a.reason for a in done if isinstance(a, PairingUpdate)] == ["paired"]
    assert reg.pairing is None


def test_without_a_window_or_in_an_open_room_pairing_is_refused() -> None:
    reg = make(KEY)
    hello(reg, 1)
    hello_frame = PairHello(
        room=ROOM, share=Initiator("1", ROOM, "aa" * 16, "bb" * 16).share, nonce="bb" * 16
    )
    assert errors(reg.receive(1, frame(hello_frame), 0.0), 1) == ["pairing_closed"]
    open_room = make()
    open_room.open_pairing(Window(code="123456", expires_at=60.0))
    hello(open_room, 1)
    assert errors(open_room.receive(1, frame(hello_frame), 0.0), 1) == ["pairing_closed"]


def test_a_members_rekey_goes_to_every_other_member_and_becomes_the_rooms_key() -> None:
    reg = make(KEY)
    session_a, _ = join_keyed(reg, 1, A, nonce="a1" * 16)
    session_b, b_joined = join_keyed(reg, 2, B, nonce="b2" * 16)
    opened(session_a, b_joined, 1)
    actions = reg.receive(1, frame(session_a.seal(Rekey(room_key="n" * 43))), 1.0)
    assert [a.room_key for a in actions if isinstance(a, KeyRotated)] == ["n" * 43]
    (to_b,) = sent(actions, 2)
    rekey = session_b.open(to_b)
    assert isinstance(rekey, Rekey) and rekey.room_key == "n" * 43
    (outcome,) = sent(actions, 1)  # the rotating member hears who took the key
    took = [LEADER.peer_id, pid("A"), pid("B")]
    assert session_a.open(outcome) == Rekeyed(took=took, revoked=[])
    # New sessions need the new key; the old one is refused.
    old = Session(hello(reg, 3))
    refused = reg.receive(3, frame(old.seal_register(C, "x")), 2.0)
    assert errors(refused, 3) == ["forbidden"]


def opened(session: Session, actions: list[Action], conn: int) -> list[SignalMessage]:
    """Every frame `actions` send to `conn`, opened in order by its session."""
    return [session.open(m) for m in sent(actions, conn)]


def test_a_rotation_that_revokes_closes_the_device_tells_the_rest_and_keeps_it_out() -> None:
    reg = make(KEY)
    session_a, _ = join_keyed(reg, 1, A, nonce="a1" * 16)
    session_b, _ = join_keyed(reg, 2, B, nonce="b2" * 16)
    opened(session_a, _, 1)
    _, c_joined = join_keyed(reg, 3, C, nonce="c3" * 16)
    opened(session_a, c_joined, 1)
    opened(session_b, c_joined, 2)
    new = "n" * 43
    actions = reg.receive(1, frame(session_a.seal(Rekey(room_key=new, revoke=[pid("C")]))), 1.0)
    assert closes(actions) == {3: (CloseCode.REVOKED, "revoked")}
    assert sent(actions, 3) == []  # the revoked device never hears the new key
    to_b = opened(session_b, actions, 2)
    assert to_b[0] == Rekey(room_key=new, revoke=[pid("C")])
    assert isinstance(to_b[-1], PeerList) and names(to_b[-1].peers) == ["L", "A", "B"]
    to_a = opened(session_a, actions, 1)
    took = [LEADER.peer_id, pid("A"), pid("B")]
    assert to_a[0] == Rekeyed(took=took, revoked=[pid("C")])
    assert [a for a in actions if isinstance(a, KeyRotated)] == [KeyRotated(new, [pid("C")], took)]
    # Back with the new key (however it got it), the device is still refused.
    nonce = hello(reg, 4, 2.0)
    back = Session(nonce, key=new).seal_register(C, nonce)
    assert refusal(reg.receive(4, frame(back), 2.0), 4) == ("revoked", CloseCode.REVOKED)


def test_the_leader_revokes_by_itself_and_cannot_be_revoked() -> None:
    reg = make(KEY)
    session_a, _ = join_keyed(reg, 1, A, nonce="a1" * 16)
    _, b_joined = join_keyed(reg, 2, B, nonce="b2" * 16)
    opened(session_a, b_joined, 1)
    actions = reg.rekey("n" * 43, [pid("B"), LEADER.peer_id])
    assert closes(actions) == {2: (CloseCode.REVOKED, "revoked")}
    assert opened(session_a, actions, 1)[0] == Rekey(room_key="n" * 43, revoke=[pid("B")])
    assert not any(isinstance(a, KeyRotated) for a in actions)  # the leader knows already
    bad = reg.receive(
        1, frame(session_a.seal(Rekey(room_key="m" * 43, revoke=[LEADER.peer_id]))), 2.0
    )
    (error,) = opened(session_a, bad, 1)
    assert isinstance(error, SignalError) and error.code == "invalid"
    nonce = hello(reg, 3, 2.0)  # nothing rotated: the key asked for admits nobody
    attempt = Session(nonce, key="m" * 43).seal_register(C, nonce)
    assert refusal(reg.receive(3, frame(attempt), 2.0), 3)[0] == "forbidden"


# ------------------------------------------------------------------ web peers


def test_a_web_peer_registers_with_the_address_its_connection_comes_from() -> None:
    reg = make()
    reg.set_networks([ipaddress.IPv4Network("10.0.0.0/24")])
    nonce = nonce_of(reg.connect(1, 0.0, remote="10.0.0.42"), 1)
    browser = msgspec.structs.replace(peer("A", addresses=[]), port=0)
    actions = reg.receive(1, frame(register(browser, nonce)), 0.0)
    assert registered(actions, 1).peers[1].addresses == ["10.0.0.42"]


def test_small_relay_frames_cost_a_twentieth_of_a_frame_and_name_their_sender() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    relay = Relay(from_=pid("A"), to=pid("B"), link="l1", epoch=2, seq=1, data="c2VhbGVk")
    cost = RELAY_COST + len(frame(relay)) / RELAY_BYTES_PER_FRAME
    for n in range(int((FRAME_BURST - 2) / cost) - 20):  # far beyond 60 frames at once
        actions = reg.receive(1, frame(relay), 0.0)
        assert actions == [Send(2, relay, relay_from=1)], n
    to_leader = Relay(from_=pid("A"), to=LEADER.peer_id, link="l2", epoch=1, seq=1, data="x")
    assert reg.receive(1, frame(to_leader), 0.0) == [Deliver(to_leader)]
    spoofed = Relay(from_=pid("B"), to=pid("B"), link="l1", epoch=2, seq=1, data="x")
    assert errors(reg.receive(1, frame(spoofed), 0.0), 1) == ["spoofed"]


def test_relay_frames_are_charged_by_size_and_a_flood_cuts_its_sender() -> None:
    reg = make()
    join(reg, 1, A)
    join(reg, 2, B)
    big = Relay(from_=pid("A"), to=pid("B"), link="l1", epoch=2, seq=1, data="x" * 90_000)
    per_frame = RELAY_COST + len(frame(big)) / RELAY_BYTES_PER_FRAME
    passed = 0
    for _ in range(100):
        actions = reg.receive(1, frame(big), 0.0)
        if closes(actions):
            break
        passed += 1
    assert abs(passed - (FRAME_BURST - 2) / per_frame) <= 1.5  # by size, not by count
    assert passed * len(big.data) < 1.2 * 1024 * 1024  # about 1 MiB at once, not more
    assert closes(actions) == {1: (CloseCode.TOO_FAST, "relay flood")}
    assert acked(reg, 2, 0.5)  # the receiver stays


def test_one_address_registers_a_bounded_number_of_members() -> None:
    reg = make()
    reg.set_networks([ipaddress.IPv4Network("10.0.0.0/24")])
    ids = [Identity() for _ in range(MAX_MEMBERS_PER_ADDRESS + 1)]
    for n, identity in enumerate(ids):
        nonce = nonce_of(reg.connect(n + 1, 0.0, remote="10.0.0.66"), n + 1)
        who = msgspec.structs.replace(peer("A", addresses=[]), peer_id=identity.peer_id, port=0)
        statement = registration_statement(nonce, identity.peer_id, ROOM, 0)
        signed = Register(
            peer=who,
            room=ROOM,
            identity=identity.public_key,
            signature=identity.sign(statement),
        )
        actions = reg.receive(n + 1, frame(signed), 0.0)
        if n < MAX_MEMBERS_PER_ADDRESS:
            assert registered(actions, n + 1)
        else:
            assert refusal(actions, n + 1) == ("too_many_members", CloseCode.REJECTED)
    nonce = nonce_of(reg.connect(99, 0.0, remote="10.0.0.9"), 99)  # another device
    assert registered(reg.receive(99, frame(register(B, nonce)), 0.0), 99)


def test_a_page_may_come_only_from_a_device_of_the_room() -> None:
    reg = make()
    join(reg, 1, A)  # 10.0.0.9:3010
    assert reg.serves_page("10.0.0.9", 3010)
    reg.update_me(msgspec.structs.replace(LEADER, port=4000))  # its bound port
    assert reg.serves_page("10.0.0.1", 4000)  # the leader itself
    assert not reg.serves_page("10.0.0.9", 8080)
    assert not reg.serves_page("192.0.2.1", 3010)


def test_a_websocket_s_origin_is_the_room_s_page_or_a_tauri_app_s_own() -> None:
    reg = make()
    join(reg, 1, A)  # 10.0.0.9:3010
    assert reg.admits_page("http://10.0.0.9:3010")  # the display page of a member
    # The example app on iOS (tauri://localhost) and Android (http://tauri.localhost,
    # https:// with useHttpsScheme): its web peer joins from the app's own page.
    for app in ("tauri://localhost", "http://tauri.localhost", "https://tauri.localhost"):
        assert reg.admits_page(app), app
    for elsewhere in (
        "http://10.0.0.9:8080",  # another port of a member: another server
        "https://10.0.0.9:3010",  # the room's pages are served over http only
        "http://192.0.2.1:3010",  # a device that is not in the room
        "http://tauri.localhost:8080",  # not an app's origin (it has no port)
        "http://tauri.localhost.example.com",  # a web site whose name starts like one
        "http://evil.tauri.localhost",
        "tauri://localhost.example.com",
        "TAURI://LOCALHOST",  # browsers send origins in lower case: nothing else matches
        "null",  # a sandboxed frame, a file:// page
        "http://[::1",  # malformed
        "",
    ):
        assert not reg.admits_page(elsewhere), elsewhere


def test_a_member_s_odd_frames_are_answered_not_crashed_on() -> None:
    """Frames a member never sends (a query, a pairing frame, a rekey in an open
    room, one that opens but is not valid) get an error; the member stays."""
    keyed = make(KEY)
    session, _ = join_keyed(keyed, 1, A, nonce="a1" * 16)
    for odd in (Query(room=ROOM), Rekeyed(took=[], revoked=[])):
        (answer,) = [
            session.open(m) for m in sent(keyed.receive(1, frame(session.seal(odd)), 0.5), 1)
        ]
        assert isinstance(answer, SignalError) and answer.code == "unexpected"
    bad = keyed.receive(1, frame(session.seal_text('{"type":"heartbeat","seq":-1,"term":0}')), 0.5)
    (answer,) = [session.open(m) for m in sent(bad, 1)]
    assert isinstance(answer, SignalError) and answer.code == "invalid"
    assert acked_sealed(keyed, session, 1, 0.6)
    open_room = make()
    join(open_room, 1, A)
    assert errors(open_room.receive(1, frame(Rekey(room_key="n" * 43)), 0.5), 1) == ["unexpected"]
    assert acked(open_room, 1, 0.6)


def acked_sealed(reg: RoomRegistry, session: Session, conn: int, now: float) -> bool:
    actions = reg.receive(conn, frame(session.seal(Heartbeat(seq=1, term=TERM))), now)
    return [session.open(m) for m in sent(actions, conn)] == [HeartbeatAck(seq=1, term=reg.term)]
