"""The real signaling server and client over WebSockets on 127.0.0.1 (nothing else is bound).

Every wait is bounded and every ordering claim rests on the server's
per-connection FIFO: once B receives a frame, anything queued for B before it
(a peer list, say) has been handled by B already.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import msgspec
import pytest
from aiohttp import WSMsgType, web

from sidecar.contract import (
    Answer,
    Challenge,
    Heartbeat,
    HeartbeatAck,
    Offer,
    PeerList,
    PeerSignal,
    Register,
    Registered,
    Sealed,
    SignalError,
    SignalMessage,
    SignalPeer,
    decode_signal,
)
from sidecar.core.identity import Identity, registration_statement
from sidecar.core.roomkey import Ephemeral, b64, open_session, unb64
from sidecar.core.signaling import MAX_FRAME_BYTES, SIGNAL_PATH, ClientSession, encode_signal
from sidecar.net.signaling.client import JoinFailed, SignalingClient
from sidecar.net.signaling.server import SignalingServer

HOST = "127.0.0.1"
ADDRESS = "192.0.2.10"
"""What a follower announces: any unicast address but a loopback one (the
leader drops those), though everything here runs over 127.0.0.1."""
ROOM = "main"
KEY = "sesame"
SDP_MAX = 64 * 1024  # SdpText's bound
WAIT = 3.0  # bound on any single expected event
T = TypeVar("T")

IDS = {name: Identity() for name in "ABLRSXYZ"}
"""One key pair per test peer: a peer id is its key's hash, so ids cannot be made up."""
NAMES = {identity.peer_id: name for name, identity in IDS.items()}


def pid(name: str) -> str:
    """The peer id of the test peer called `name`."""
    return IDS[name].peer_id


def names(peers: list[SignalPeer]) -> list[str]:
    """The test names of these peers, e.g. ["L", "A"]."""
    return [NAMES.get(p.peer_id, p.peer_id) for p in peers]


def peer(name: str) -> SignalPeer:
    return SignalPeer(
        peer_id=pid(name),
        name=f"Peer {name}",
        peer_type="display",
        display_class="stage",
        started_at=100,
        addresses=[ADDRESS],
        port=0,
    )


LEADER = SignalPeer(
    peer_id=pid("L"), name="Booth", peer_type="controller", display_class=None, started_at=1
)


async def get(queue: asyncio.Queue[T], timeout: float = WAIT) -> T:
    return await asyncio.wait_for(queue.get(), timeout)


def register(
    who: SignalPeer,
    nonce: str,
    *,
    seq: int = 0,
    identity: Identity | None = None,
    session: str = "",
) -> Register:
    """`who`'s registration answering `nonce` (in the keyed `session`), signed
    with its own key."""
    identity = identity or IDS[NAMES[who.peer_id]]
    signature = identity.sign(registration_statement(nonce, who.peer_id, ROOM, seq, session))
    return Register(peer=who, room=ROOM, identity=identity.public_key, signature=signature, seq=seq)


class Session:
    """A member's end of a keyed room's session, as SignalingClient keeps it."""

    def __init__(self, challenge: Challenge, key: str = KEY) -> None:
        self.client = ClientSession(key, ROOM, challenge)

    def seal_register(self, who: SignalPeer, nonce: str) -> Sealed:
        """`who`'s registration, signed in this session and sealed in it."""
        return self.seal(register(who, nonce, session=self.client.binding))

    def seal(self, msg: SignalMessage) -> Sealed:
        """The next frame to send; the first one carries the client nonce and share."""
        sealed = decode_signal(self.client.frame(msg))
        assert isinstance(sealed, Sealed)
        return sealed

    def open(self, msg: SignalMessage) -> SignalMessage:
        """A frame from the leader: it must be sealed, intact and the next one."""
        opened = self.client.open(msg)
        assert opened is not None, msg
        return opened


def flipped(sealed: Sealed) -> Sealed:
    """`sealed` with one bit of its ciphertext changed."""
    raw = bytearray(unb64(sealed.box))
    raw[0] ^= 1
    return msgspec.structs.replace(sealed, box=b64(bytes(raw)))


def one_byte_changed(text: str, old: str = "Peer", new: str = "Beer") -> str:
    """`text` with one byte altered, still valid JSON."""
    assert old in text and len(old) == len(new)
    return text.replace(old, new, 1)


# ----------------------------------------------------------------- fixtures


@dataclass
class Leader:
    server: SignalingServer
    delivered: asyncio.Queue[PeerSignal] = field(default_factory=asyncio.Queue)
    member_lists: asyncio.Queue[list[str]] = field(default_factory=asyncio.Queue)

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.server.port}{SIGNAL_PATH}"


@dataclass
class Follower:
    me: SignalPeer
    client: SignalingClient
    peer_lists: asyncio.Queue[PeerList]
    signals: asyncio.Queue[PeerSignal]
    lost: asyncio.Queue[str]
    registered: Registered | None = None


MakeLeader = Callable[..., Awaitable[Leader]]
MakeFollower = Callable[..., Awaitable[Follower]]


@pytest.fixture
async def make_leader() -> AsyncIterator[MakeLeader]:
    made: list[Leader] = []

    async def make(
        room_key: str | None = None, *, leading: bool = True, port: int = 0, **timing: float
    ) -> Leader:
        holder: list[Leader] = []
        server = SignalingServer(
            LEADER,
            ROOM,
            room_key,
            on_deliver=lambda msg: holder[0].delivered.put_nowait(msg),
            on_members_changed=lambda ms: holder[0].member_lists.put_nowait(names(ms)),
            **timing,  # type: ignore[arg-type]
        )
        leader = Leader(server)
        holder.append(leader)
        made.append(leader)
        await server.bind([HOST], port)
        if leading:
            server.start_leading(1)
        return leader

    yield make
    for leader in made:
        await leader.server.close()


@pytest.fixture
async def make_follower() -> AsyncIterator[MakeFollower]:
    made: list[Follower] = []

    async def make(
        url: str,
        name: str,
        room_key: str | None = None,
        *,
        join: bool = True,
        seq: int = 0,
        **timing: float,
    ) -> Follower:
        peer_lists: asyncio.Queue[PeerList] = asyncio.Queue()
        signals: asyncio.Queue[PeerSignal] = asyncio.Queue()
        lost: asyncio.Queue[str] = asyncio.Queue()
        client = SignalingClient(
            on_lost=lost.put_nowait,
            on_peer_list=peer_lists.put_nowait,
            on_signal=signals.put_nowait,
            **timing,  # type: ignore[arg-type]
        )
        follower = Follower(peer(name), client, peer_lists, signals, lost)
        made.append(follower)
        if join:
            follower.registered = await client.join(
                url, follower.me, ROOM, room_key, WAIT, identity=IDS[name], seq=seq
            )
        return follower

    yield make
    for follower in made:
        await follower.client.close()


class Raw:
    """A hand-driven WebSocket client, to send what a real client never would.

    `send`/`recv` move frames as they are; `say`/`hear` seal and open them
    once `register` opened a session (a keyed room)."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.session = session
        self.ws = ws
        self.frames: list[str] = []
        self.nonce = ""  # the challenge's
        self.last: Challenge | None = None
        self.sealed: Session | None = None

    @classmethod
    async def connect(cls, url: str) -> Raw:
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=1.0))
        return cls(session, ws)

    async def send(self, data: SignalMessage | str | bytes) -> None:
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data if isinstance(data, str) else encode_signal(data))

    async def recv(self) -> SignalMessage:
        msg = await self.ws.receive(timeout=WAIT)
        assert msg.type is WSMsgType.TEXT, msg
        self.frames.append(msg.data)
        return decode_signal(msg.data)

    async def say(self, msg: SignalMessage) -> SignalMessage:
        """Send `msg`, sealed in a keyed room; returns what went on the wire."""
        sent = msg if self.sealed is None else self.sealed.seal(msg)
        await self.send(sent)
        return sent

    async def hear(self) -> SignalMessage:
        msg = await self.recv()
        return msg if self.sealed is None else self.sealed.open(msg)

    async def error(self) -> SignalError:
        msg = await self.recv()
        assert isinstance(msg, SignalError), msg  # plain, even in a keyed room
        return msg

    async def closed(self) -> tuple[int, str | None]:
        msg = await self.ws.receive(timeout=WAIT)
        assert msg.type is WSMsgType.CLOSE, msg
        return msg.data, msg.extra

    async def challenge(self) -> str:
        challenge = await self.recv()
        assert isinstance(challenge, Challenge)
        self.nonce, self.last = challenge.nonce, challenge
        return challenge.nonce

    def keyed(self, key: str = KEY) -> Session:
        """A session on the last challenge, with `key`."""
        assert self.last is not None
        return Session(self.last, key)

    async def register(self, who: SignalPeer, key: str | None = None) -> Registered:
        nonce = await self.challenge()
        if key is not None:
            self.sealed = self.keyed(key)
        binding = self.sealed.client.binding if self.sealed is not None else ""
        await self.say(register(who, nonce, session=binding))
        reply = await self.hear()
        assert isinstance(reply, Registered), reply
        return reply

    async def aclose(self) -> None:
        await self.ws.close()
        await self.session.close()


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[str], Awaitable[Raw]]]:
    made: list[Raw] = []

    async def connect(url: str) -> Raw:
        client = await Raw.connect(url)
        made.append(client)
        return client

    yield connect
    for client in made:
        await client.aclose()


async def exchange_offer(a: Follower, b: Follower, sdp: str) -> None:
    """A's offer reaches B unchanged (and nothing else reached B first)."""
    sent = Offer(from_=a.me.peer_id, to=b.me.peer_id, sdp=sdp, link="l1", epoch=1)
    await a.client.send(sent)
    assert await get(b.signals) == sent


def offer(from_: str, to: str, sdp: str = "x") -> Offer:
    """An offer between the test peers called `from_` and `to`."""
    return Offer(from_=pid(from_), to=pid(to), sdp=sdp, link="l1", epoch=1)


# ----------------------------------------------------------------- joining


async def test_two_clients_join_and_see_each_other(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    assert a.registered is not None and names(a.registered.peers) == ["L", "A"]
    assert a.registered.leader_id == pid("L") and a.registered.term == 1
    # The leader's own entry carries where it is bound.
    assert a.registered.peers[0].addresses == [HOST]
    assert a.registered.peers[0].port == leader.server.port
    b = await make_follower(leader.url, "B")
    assert b.registered is not None and names(b.registered.peers) == ["L", "A", "B"]
    assert names((await get(a.peer_lists)).peers) == ["L", "A", "B"]
    assert await get(leader.member_lists) == ["L", "A"]
    assert await get(leader.member_lists) == ["L", "A", "B"]
    assert names(leader.server.members()) == ["L", "A", "B"]


async def test_an_offer_reaches_the_peer_unchanged_and_answers_come_back(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    b = await make_follower(leader.url, "B")
    sdp = "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\na=ice-ufrag:Ωx\r\n" * 20
    await exchange_offer(a, b, sdp)
    answer = Answer(from_=pid("B"), to=pid("A"), sdp="v=0\r\n", link="l1", epoch=1)
    await b.client.send(answer)
    assert await get(a.signals) == answer
    # To the leader itself: delivered locally; from the leader: sent to the member.
    await a.client.send(offer("A", "L"))
    assert await get(leader.delivered) == offer("A", "L")
    leader.server.send_local(Answer(from_=pid("L"), to=pid("A"), sdp="y", link="l1", epoch=1))
    assert await get(a.signals) == Answer(from_=pid("L"), to=pid("A"), sdp="y", link="l1", epoch=1)
    with pytest.raises(KeyError):
        leader.server.send_local(Answer(from_=pid("L"), to="nobody", sdp="y", link="l1", epoch=1))


async def test_bad_input_gets_errors_and_closes_while_members_notice_nothing(
    make_leader: MakeLeader, make_follower: MakeFollower, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    b = await make_follower(leader.url, "B")
    r = await raw(leader.url)
    await r.register(peer("R"))
    assert names((await get(a.peer_lists)).peers) == ["L", "A", "B"]
    assert names((await get(a.peer_lists)).peers) == ["L", "A", "B", "R"]
    assert names((await get(b.peer_lists)).peers) == ["L", "A", "B", "R"]
    baseline = names(leader.server.members())

    # A registered troublemaker: every bad frame gets its error, the connection stays.
    await r.send(offer("A", "B", "forged"))
    assert (await r.error()).code == "spoofed"
    await r.send(offer("R", "Z"))
    assert (await r.error()).code == "unknown_peer"
    await r.send("{this is not json")
    assert (await r.error()).code == "malformed"
    await r.send(b"\x00\x01binary")
    assert (await r.error()).code == "binary"
    await r.send('{"type": "teleport", "to": "B"}')
    assert (await r.error()).code == "unknown_type"
    await r.send(f'{{"type": "offer", "from": "{pid("R")}", "to": "{pid("B")}", "sdp": 42}}')
    invalid = await r.error()
    assert invalid.code == "invalid" and "$.sdp" in invalid.message
    await r.send(r.keyed().seal(Heartbeat(seq=1, term=1)))  # this room has no key
    assert (await r.error()).code == "unexpected"
    await r.send(register(peer("R"), r.nonce))
    assert (await r.error()).code == "already_registered"
    await r.send(Heartbeat(seq=1, term=1))
    assert await r.recv() == HeartbeatAck(seq=1, term=1)

    # Strangers: a message before register, then an oversize frame.
    early = await raw(leader.url)
    assert isinstance(await early.recv(), Challenge)
    await early.send(offer("A", "B"))
    assert (await early.error()).code == "not_registered"
    assert await early.closed() == (4001, "not registered")
    big = await raw(leader.url)
    assert isinstance(await big.recv(), Challenge)
    await big.send("x" * (MAX_FRAME_BYTES + 1))
    assert (await big.closed())[0] == 1009

    # The members noticed nothing and still talk.
    await exchange_offer(a, b, "after the storm")
    await exchange_offer(b, a, "still here")
    assert a.peer_lists.empty() and b.peer_lists.empty()
    assert a.lost.empty() and b.lost.empty()
    assert names(leader.server.members()) == baseline


async def test_a_leader_only_frame_from_a_member_is_unexpected(
    make_leader: MakeLeader, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader()
    r = await raw(leader.url)
    await r.register(peer("R"))
    await r.send(Challenge(nonce="x", share="x"))
    assert (await r.error()).code == "unexpected"
    await r.send(Heartbeat(seq=1, term=1))
    assert await r.recv() == HeartbeatAck(seq=1, term=1)


async def test_a_frame_just_under_the_limit_is_accepted(
    make_leader: MakeLeader, make_follower: MakeFollower, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader()
    b = await make_follower(leader.url, "B")
    r = await raw(leader.url)
    await r.register(peer("R"))
    # The largest SDP, in a frame padded (JSON whitespace) to the frame limit.
    largest = offer("R", "B", "s" * SDP_MAX)
    text = encode_signal(largest)
    await r.send(text[:-1] + " " * (MAX_FRAME_BYTES - len(text)) + "}")
    assert await get(b.signals) == largest
    # One character more of SDP is refused by the schema, not by the transport.
    await r.send(offer("R", "B", "s" * (SDP_MAX + 1)))
    error = await r.error()
    assert error.code == "invalid" and "$.sdp" in error.message


async def test_a_member_sending_too_fast_is_closed_with_4029(
    make_leader: MakeLeader, make_follower: MakeFollower, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    r = await raw(leader.url)
    await r.register(peer("R"))
    assert names((await get(a.peer_lists)).peers) == ["L", "A", "R"]
    for seq in range(200):  # in a few milliseconds: far more than 60 at once
        await r.send(Heartbeat(seq=seq, term=1))
    while isinstance(reply := await r.recv(), HeartbeatAck):
        pass
    assert isinstance(reply, SignalError) and reply.code == "too_fast"
    assert await r.closed() == (4029, "too many frames")
    assert names(leader.server.members()) == ["L", "A"]
    await asyncio.sleep(0.1)
    assert a.lost.empty()


async def test_members_addresses_must_be_on_the_leaders_networks(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    leader.server.set_networks([ipaddress.IPv4Network("10.0.0.0/8")])
    with pytest.raises(JoinFailed) as elsewhere:
        await make_follower(leader.url, "A")  # it announces 192.0.2.10
    assert elsewhere.value.code == "bad_address"
    leader.server.set_networks([ipaddress.IPv4Network("192.0.2.0/24")])
    b = await make_follower(leader.url, "B")
    assert b.registered is not None and b.registered.peers[1].addresses == [ADDRESS]


# ----------------------------------------------------------------- identity


async def test_a_registration_with_another_peers_id_is_refused_and_evicts_nobody(
    make_leader: MakeLeader, make_follower: MakeFollower, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    b = await make_follower(leader.url, "B")
    assert names((await get(a.peer_lists)).peers) == ["L", "A", "B"]
    # Z claims A's id, with a newer seq, signed with its own key.
    impostor = await raw(leader.url)
    nonce = await impostor.challenge()
    await impostor.send(register(peer("A"), nonce, seq=9, identity=IDS["Z"]))
    assert (await impostor.error()).code == "bad_identity"
    assert await impostor.closed() == (4003, "bad identity")
    # A's key with a signature that is not A's.
    forger = await raw(leader.url)
    nonce = await forger.challenge()
    genuine = register(peer("A"), nonce, seq=9)
    await forger.send(msgspec.structs.replace(genuine, signature=IDS["Z"].sign(b"anything")))
    assert (await forger.error()).code == "bad_identity"
    assert await forger.closed() == (4003, "bad identity")
    # The client reports it too.
    client = SignalingClient(on_lost=lambda reason: None)
    with pytest.raises(JoinFailed) as refused:
        await client.join(leader.url, peer("A"), ROOM, None, WAIT, identity=IDS["Z"], seq=9)
    assert refused.value.code == "bad_identity"

    assert names(leader.server.members()) == ["L", "A", "B"]
    await exchange_offer(b, a, "A is still A")
    assert a.lost.empty() and a.peer_lists.empty()


async def test_re_registration_replaces_the_old_connection(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    first = await make_follower(leader.url, "A", seq=1)
    second = await make_follower(leader.url, "A", seq=2)
    assert "4002" in await get(first.lost)
    assert names(leader.server.members()) == ["L", "A"]
    b = await make_follower(leader.url, "B")
    await exchange_offer(b, second, "to the new one")


@pytest.mark.parametrize("seq", [1, 2])
async def test_a_registration_with_no_newer_seq_is_refused_and_the_member_stays(
    make_leader: MakeLeader, make_follower: MakeFollower, seq: int
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A", seq=2)
    with pytest.raises(JoinFailed) as late:
        await make_follower(leader.url, "A", seq=seq)
    assert late.value.code == "id_conflict"
    b = await make_follower(leader.url, "B")
    await exchange_offer(b, a, "to the registered one")
    assert a.lost.empty()


# ----------------------------------------------------------------- keyed rooms


async def test_a_wrong_room_key_is_refused_and_never_sees_the_members(
    make_leader: MakeLeader, make_follower: MakeFollower, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader(KEY)
    a = await make_follower(leader.url, "A", KEY)
    # Sealed with a guessed key.
    intruder = await raw(leader.url)
    nonce = await intruder.challenge()
    await intruder.send(intruder.keyed("guess").seal(register(peer("X"), nonce)))
    assert (await intruder.error()).code == "forbidden"
    assert await intruder.closed() == (4003, "forbidden")
    # Not sealed at all.
    plain = await raw(leader.url)
    nonce = await plain.challenge()
    await plain.send(register(peer("X"), nonce))
    assert (await plain.error()).code == "forbidden"
    assert await plain.closed() == (4003, "forbidden")
    assert not any(KEY in f or pid("A") in f for f in intruder.frames + plain.frames)

    with pytest.raises(JoinFailed) as refused:
        await make_follower(leader.url, "Y", "guess")
    assert refused.value.code == "forbidden"
    with pytest.raises(JoinFailed) as keyless:
        await make_follower(leader.url, "Z", None)
    assert keyless.value.code == "forbidden"

    b = await make_follower(leader.url, "B", KEY)
    assert names((await get(a.peer_lists)).peers) == ["L", "A", "B"]  # the first change
    assert names(leader.server.members()) == ["L", "A", "B"]
    await exchange_offer(b, a, "keyed")
    await exchange_offer(a, b, "keyed back")


async def test_in_a_keyed_room_every_frame_travels_sealed(
    make_leader: MakeLeader, make_follower: MakeFollower, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader(KEY)
    a = await make_follower(leader.url, "A", KEY)
    r = await raw(leader.url)
    assert names((await r.register(peer("R"), KEY)).peers) == ["L", "A", "R"]
    assert names((await get(a.peer_lists)).peers) == ["L", "A", "R"]
    await r.say(Heartbeat(seq=1, term=1))
    assert await r.hear() == HeartbeatAck(seq=1, term=1)
    await a.client.send(offer("A", "R", "sealed both ways"))
    assert await r.hear() == offer("A", "R", "sealed both ways")
    await r.say(offer("R", "A", "and back"))
    assert await get(a.signals) == offer("R", "A", "and back")
    assert all(KEY not in f for f in r.frames)
    assert all(isinstance(decode_signal(f), Sealed) for f in r.frames[1:])  # all but the challenge


def _plain(r: Raw) -> list[SignalMessage]:
    return [Heartbeat(seq=2, term=1)]


def _tampered(r: Raw) -> list[SignalMessage]:
    assert r.sealed is not None
    return [flipped(r.sealed.seal(Heartbeat(seq=2, term=1)))]


def _replayed(r: Raw) -> list[SignalMessage]:
    assert r.sealed is not None
    sealed = r.sealed.seal(Heartbeat(seq=2, term=1))
    return [sealed, sealed]


BAD_SEALING: dict[str, Callable[[Raw], list[SignalMessage]]] = {
    "plain": _plain,
    "tampered": _tampered,
    "replayed": _replayed,
}


@pytest.mark.parametrize("bad_frames", BAD_SEALING.values(), ids=BAD_SEALING.keys())
async def test_in_a_keyed_room_a_frame_not_sealed_or_not_intact_closes_with_4003(
    make_leader: MakeLeader,
    make_follower: MakeFollower,
    raw: Callable[[str], Awaitable[Raw]],
    bad_frames: Callable[[Raw], list[SignalMessage]],
) -> None:
    leader = await make_leader(KEY)
    a = await make_follower(leader.url, "A", KEY)
    r = await raw(leader.url)
    await r.register(peer("R"), KEY)
    assert names((await get(a.peer_lists)).peers) == ["L", "A", "R"]
    await r.say(Heartbeat(seq=1, term=1))
    assert await r.hear() == HeartbeatAck(seq=1, term=1)
    *good, bad = bad_frames(r)
    for frame in good:
        await r.send(frame)
        assert await r.hear() == HeartbeatAck(seq=2, term=1)
    await r.send(bad)
    assert (await r.error()).code == "forbidden"
    assert await r.closed() == (4003, "forbidden")
    assert names(leader.server.members()) == ["L", "A"]
    await asyncio.sleep(0.1)
    assert a.lost.empty()


async def test_a_keyed_client_with_the_right_key_joins_through_the_leaders_proof(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    """The leader proves the key back: its reply is sealed with the session key."""
    leader = await make_leader(KEY)
    a = await make_follower(leader.url, "A", KEY)
    assert a.registered is not None and a.registered.leader_id == pid("L")
    assert names(a.registered.peers) == ["L", "A"]


@dataclass
class Impostor:
    """A "leader" that does not hold the room key: registers anyone, with a
    reply that is plain, or sealed under a key of its own making."""

    seal: bool

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        mine = Ephemeral()
        await ws.send_str(encode_signal(Challenge(nonce="n", share=mine.share)))
        first = decode_signal(await ws.receive_str(timeout=WAIT))
        assert isinstance(first, Sealed) and first.nonce and first.share  # it cannot read it
        reply: SignalMessage = Registered(leader_id=pid("X"), term=1, peers=[peer("A")])
        if self.seal:
            box = open_session(
                "a guess of the key",
                ROOM,
                side="server",
                mine=mine,
                server_nonce="n",
                client_nonce=first.nonce,
                server_share=mine.share,
                client_share=first.share,
            )
            seq, sealed = box.seal(encode_signal(reply))
            reply = Sealed(seq=seq, box=sealed)
        await ws.send_str(encode_signal(reply))
        async for _ in ws:
            pass
        return ws


@pytest.mark.parametrize("seal", [False, True], ids=["plain", "sealed-with-a-guess"])
async def test_a_keyed_client_refuses_a_leader_that_cannot_prove_the_key(
    make_follower: MakeFollower, seal: bool
) -> None:
    async with serve(Impostor(seal).handle) as url:
        with pytest.raises(JoinFailed) as unproven:
            await make_follower(url, "A", KEY)
    assert unproven.value.code == "unproven_leader"


async def test_a_keyed_client_fails_at_once_on_a_leader_without_a_key(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader(None)
    client = SignalingClient(on_lost=lambda reason: None)
    with pytest.raises(JoinFailed) as unproven:
        await client.join(leader.url, peer("A"), ROOM, KEY, 1.0, identity=IDS["A"])
    assert unproven.value.code in ("unproven_leader", "forbidden")
    assert names(leader.server.members()) == ["L"]


@dataclass
class Relay:
    """A device in the middle: it takes the client's connection, opens its own
    to the leader and passes every frame on. The first sealed frame each way
    goes through `to_leader` or `to_client`; the others pass as they are."""

    upstream: str
    to_leader: Callable[[str], str] = str
    to_client: Callable[[str], str] = str

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse()
        await client.prepare(request)
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(self.upstream) as leader,
        ):
            await asyncio.gather(
                _pump(leader, client, self.to_client),
                _pump(client, leader, self.to_leader),
            )
        return client


async def _pump(
    src: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
    dst: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
    alter: Callable[[str], str],
) -> None:
    """Relay text frames, the first sealed one through `alter`; then the close."""
    altered = False
    async for msg in src:
        if msg.type is not WSMsgType.TEXT:
            break
        text = msg.data
        if not altered and isinstance(decode_signal(text), Sealed):
            text, altered = alter(text), True
        if dst.closed:
            break
        await dst.send_str(text)
    await dst.close(code=src.close_code or 1000)


def alter_body(text: str) -> str:
    """The sealed frame `text` with one bit of its box changed."""
    sealed = decode_signal(text)
    assert isinstance(sealed, Sealed)
    return encode_signal(flipped(sealed))


@pytest.mark.parametrize(
    ("to_leader", "to_client", "code"),
    [(alter_body, str, "forbidden"), (str, alter_body, "unproven_leader")],
    ids=["register-altered", "registered-altered"],
)
async def test_a_relay_in_the_middle_cannot_alter_the_sealed_frames(
    make_leader: MakeLeader,
    make_follower: MakeFollower,
    to_leader: Callable[[str], str],
    to_client: Callable[[str], str],
    code: str,
) -> None:
    leader = await make_leader(KEY)
    a = await make_follower(leader.url, "A", KEY)
    # An honest relay is invisible.
    async with serve(Relay(leader.url).handle) as url:
        b = await make_follower(url, "B", KEY)
        await exchange_offer(a, b, "through the relay")
        await b.client.close()
    assert names((await get(a.peer_lists)).peers) == ["L", "A", "B"]
    assert names((await get(a.peer_lists)).peers) == ["L", "A"]
    # One that changes one byte is caught, whichever way the frame goes.
    async with serve(Relay(leader.url, to_leader, to_client).handle) as url:
        with pytest.raises(JoinFailed) as caught:
            await make_follower(url, "Y", KEY)
    assert caught.value.code == code
    if code == "forbidden":
        assert names(leader.server.members()) == ["L", "A"]


# ----------------------------------------------------------------- join failures


async def test_join_failures_have_codes(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    idle = await make_leader(leading=False)
    with pytest.raises(JoinFailed) as not_leader:
        await make_follower(idle.url, "A")
    assert not_leader.value.code == "not_leader"

    leader = await make_leader()
    with pytest.raises(JoinFailed) as conflict:
        await make_follower(leader.url, "L")
    assert conflict.value.code == "id_conflict"

    client = SignalingClient(on_lost=lambda reason: None)
    with pytest.raises(JoinFailed) as wrong_room:
        await client.join(leader.url, peer("A"), "other room", None, WAIT, identity=IDS["A"])
    assert wrong_room.value.code == "wrong_room"

    with socket.socket() as unused:
        unused.bind((HOST, 0))
        port = unused.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(JoinFailed) as refused:
            await make_follower(f"ws://{HOST}:{port}{SIGNAL_PATH}", "A")
    assert refused.value.code == "refused"


async def test_join_times_out_on_a_server_that_never_challenges(
    make_follower: MakeFollower,
) -> None:
    async def mute(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    async with serve(mute) as url:
        client = SignalingClient(on_lost=lambda reason: None)
        started = time.monotonic()
        with pytest.raises(JoinFailed) as slow:
            await client.join(url, peer("A"), ROOM, None, timeout=0.3, identity=IDS["A"])
        assert slow.value.code == "timeout"
        assert time.monotonic() - started < 2.0


async def test_a_member_that_stops_reading_is_cut_off(
    make_leader: MakeLeader, make_follower: MakeFollower, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    stuck = await raw(leader.url)
    await stuck.register(peer("R"))  # and never reads again
    assert names((await get(a.peer_lists)).peers) == ["L", "A", "R"]
    # The leader's own offers: a member could not send this much (4029 first).
    blob = "s" * SDP_MAX
    for _ in range(2000):  # 128 MB at most: far beyond socket buffers plus the backlog
        try:
            leader.server.send_local(
                Offer(from_=pid("L"), to=pid("R"), sdp=blob, link="l1", epoch=1)
            )
        except KeyError:  # cut off, and forgotten
            break
        await asyncio.sleep(0)  # let the writer fill the socket
    else:
        pytest.fail("a member that reads nothing is never cut off")
    assert names((await get(a.peer_lists)).peers) == ["L", "A"]
    assert names(leader.server.members()) == ["L", "A"]
    assert a.lost.empty()


# ----------------------------------------------------------------- binding


async def test_a_port_in_use_falls_back_to_a_free_port(
    make_leader: MakeLeader, make_follower: MakeFollower, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="sidecar.signaling"):
            leader = await make_leader(port=taken)
        assert leader.server.port not in (None, taken)
        assert f"port {taken} is in use" in caplog.text
        assert leader.server.me.port == leader.server.port
        a = await make_follower(leader.url, "A")
        assert a.registered is not None


async def test_bind_twice_or_on_nothing_is_refused(make_leader: MakeLeader) -> None:
    leader = await make_leader()
    with pytest.raises(RuntimeError):
        await leader.server.bind([HOST], 0)
    fresh = SignalingServer(
        LEADER, ROOM, on_deliver=lambda msg: None, on_members_changed=lambda ms: None
    )
    with pytest.raises(ValueError):
        await fresh.bind([], 0)


# ----------------------------------------------------------------- liveness


async def test_leader_close_is_leader_loss_and_bounded(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    b = await make_follower(leader.url, "B")
    started = time.monotonic()
    await leader.server.close()
    assert time.monotonic() - started < 1.0
    assert "1001" in await get(a.lost)
    assert "1001" in await get(b.lost)
    await a.client.close()
    assert a.lost.empty()  # exactly once


async def test_stop_leading_redirects_then_closes_with_4000(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    successor = peer("S")
    leader.server.stop_leading(redirect=successor, term=2)
    turn = await get(a.peer_lists)
    assert (turn.leader_id, turn.term, names(turn.peers)) == (pid("S"), 2, ["S", "L", "A"])
    assert "4000" in await get(a.lost)
    assert a.client.term == 2
    with pytest.raises(JoinFailed) as refused:
        await make_follower(leader.url, "B")
    assert refused.value.code == "not_leader" and pid("S") in refused.value.reason


async def test_client_close_leaves_without_firing_on_lost(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    b = await make_follower(leader.url, "B")
    started = time.monotonic()
    await a.client.close()
    assert time.monotonic() - started < 1.0
    assert names((await get(b.peer_lists)).peers) == ["L", "B"]  # B's first list: A left
    assert a.lost.empty() and b.lost.empty()
    with pytest.raises(ConnectionError):
        await a.client.send(offer("A", "B"))


@dataclass
class FakeLeader:
    """A leader we control: registers anyone, then acks heartbeats or not."""

    ack: bool
    heartbeats: asyncio.Queue[Heartbeat] = field(default_factory=asyncio.Queue)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(encode_signal(Challenge(nonce="n", share=Ephemeral().share)))
        register = decode_signal(await ws.receive_str(timeout=WAIT))
        assert isinstance(register, Register)
        reply = Registered(leader_id="F", term=1, peers=[register.peer])
        await ws.send_str(encode_signal(reply))
        async for frame in ws:
            beat = decode_signal(frame.data)
            assert isinstance(beat, Heartbeat)
            self.heartbeats.put_nowait(beat)
            if self.ack:
                await ws.send_str(encode_signal(HeartbeatAck(seq=beat.seq, term=1)))
        return ws


class serve:
    """A throwaway aiohttp server on 127.0.0.1 with one WebSocket route."""

    def __init__(self, handler: Callable[[web.Request], Awaitable[Any]]) -> None:
        app = web.Application()
        app.router.add_get(SIGNAL_PATH, handler)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)

    async def __aenter__(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, HOST, 0)
        await site.start()
        return f"ws://{HOST}:{site.port}{SIGNAL_PATH}"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def test_client_detects_a_leader_that_stops_acking(make_follower: MakeFollower) -> None:
    fake = FakeLeader(ack=False)
    async with serve(fake.handle) as url:
        started = time.monotonic()
        a = await make_follower(url, "A", heartbeat_interval=0.1, missed_limit=3)
        reason = await get(a.lost)
        elapsed = time.monotonic() - started
        assert "no heartbeat ack" in reason
        assert 0.3 <= elapsed < 1.5  # three intervals, not before
        beats = [fake.heartbeats.get_nowait() for _ in range(fake.heartbeats.qsize())]
        assert [b.seq for b in beats][:2] == [1, 2] and all(b.term == 1 for b in beats)


async def test_client_stays_while_the_leader_acks(make_follower: MakeFollower) -> None:
    fake = FakeLeader(ack=True)
    async with serve(fake.handle) as url:
        a = await make_follower(url, "A", heartbeat_interval=0.05, missed_limit=3)
        for seq in range(1, 16):  # five times the loss limit
            assert (await get(fake.heartbeats)).seq == seq
        assert a.lost.empty()


async def test_server_drops_a_silent_member_after_the_heartbeat_timeout(
    make_leader: MakeLeader, make_follower: MakeFollower, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader(heartbeat_interval=0.1, missed_limit=3, grace=0.05)
    a = await make_follower(leader.url, "A", heartbeat_interval=0.1)
    silent = await raw(leader.url)
    started = time.monotonic()
    await silent.register(peer("R"))
    assert names((await get(a.peer_lists)).peers) == ["L", "A", "R"]
    assert await silent.closed() == (4008, "heartbeat timeout")
    assert 0.35 <= time.monotonic() - started < 2.0
    assert names((await get(a.peer_lists)).peers) == ["L", "A"]
    assert names(leader.server.members()) == ["L", "A"]  # A's heartbeats keep it in
    assert a.lost.empty()


async def test_server_closes_a_connection_that_never_registers(
    make_leader: MakeLeader, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader(register_timeout=0.2)
    lurker = await raw(leader.url)
    assert isinstance(await lurker.recv(), Challenge)
    assert await lurker.closed() == (4001, "registration timeout")


async def test_every_peer_serves_the_display_page_and_nothing_else(make_leader: MakeLeader) -> None:
    leader = await make_leader(leading=False)
    base = f"http://{HOST}:{leader.server.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/") as page:
            assert page.status == 200 and page.content_type == "text/html"
            html = await page.text()
        asset = re.search(r'src="\./(assets/[^"]+\.js)"', html)
        assert asset is not None
        async with http.get(f"{base}/{asset[1]}") as script:
            assert script.status == 200 and script.content_type == "text/javascript"
        for path in ("/assets/../../messages.py", "/assets/nope.js", "/etc/passwd", "/signal2"):
            async with http.get(f"{base}{path}") as missing:
                assert missing.status == 404, path
        async with http.post(f"{base}/") as posted:
            assert posted.status == 404
