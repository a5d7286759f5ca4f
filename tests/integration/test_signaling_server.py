"""The real signaling server and client over WebSockets on 127.0.0.1 (nothing else is bound).

Every wait is bounded and every ordering claim rests on the server's
per-connection FIFO: once B receives a frame, anything queued for B before it
(a peer list, say) has been handled by B already.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from sidecar.messages import (
    Answer,
    Challenge,
    Heartbeat,
    HeartbeatAck,
    Offer,
    PeerList,
    Register,
    Registered,
    SignalError,
    SignalMessage,
    SignalPeer,
    decode_signal,
)
from sidecar.roomkey import register_proof
from sidecar.signaling.client import JoinFailed, SignalingClient
from sidecar.signaling.protocol import MAX_FRAME_BYTES, SIGNAL_PATH, PeerSignal, encode_signal
from sidecar.signaling.server import SignalingServer

HOST = "127.0.0.1"
ROOM = "main"
KEY = "sesame"
WAIT = 3.0  # bound on any single expected event
T = TypeVar("T")


def peer(peer_id: str) -> SignalPeer:
    return SignalPeer(
        peer_id=peer_id,
        name=f"Peer {peer_id}",
        peer_type="display",
        display_class="stage",
        started_at=100,
        addresses=[HOST],
        port=0,
    )


LEADER = SignalPeer(
    peer_id="L", name="Booth", peer_type="controller", display_class=None, started_at=1
)


async def get(queue: asyncio.Queue[T], timeout: float = WAIT) -> T:
    return await asyncio.wait_for(queue.get(), timeout)


def ids(peers: list[SignalPeer]) -> list[str]:
    return [p.peer_id for p in peers]


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
            on_members_changed=lambda ms: holder[0].member_lists.put_nowait(ids(ms)),
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
        peer_id: str,
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
        follower = Follower(peer(peer_id), client, peer_lists, signals, lost)
        made.append(follower)
        if join:
            follower.registered = await client.join(url, follower.me, ROOM, room_key, WAIT, seq=seq)
        return follower

    yield make
    for follower in made:
        await follower.client.close()


class Raw:
    """A hand-driven WebSocket client, to send what a real client never would."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.session = session
        self.ws = ws
        self.frames: list[str] = []

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

    async def error(self) -> SignalError:
        msg = await self.recv()
        assert isinstance(msg, SignalError), msg
        return msg

    async def closed(self) -> tuple[int, str | None]:
        msg = await self.ws.receive(timeout=WAIT)
        assert msg.type is WSMsgType.CLOSE, msg
        return msg.data, msg.extra

    async def register(self, who: SignalPeer, key: str | None = None) -> Registered:
        challenge = await self.recv()
        assert isinstance(challenge, Challenge)
        proof = register_proof(key, challenge.nonce, who.peer_id, ROOM) if key else None
        await self.send(Register(peer=who, room=ROOM, proof=proof))
        reply = await self.recv()
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
    offer = Offer(from_=a.me.peer_id, to=b.me.peer_id, sdp=sdp, link="l1", epoch=1)
    await a.client.send(offer)
    assert await get(b.signals) == offer


# ----------------------------------------------------------------- joining


async def test_two_clients_join_and_see_each_other(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    assert a.registered is not None and ids(a.registered.peers) == ["L", "A"]
    assert a.registered.leader_id == "L" and a.registered.term == 1
    # The leader's own entry carries where it is bound.
    assert a.registered.peers[0].addresses == [HOST]
    assert a.registered.peers[0].port == leader.server.port
    b = await make_follower(leader.url, "B")
    assert b.registered is not None and ids(b.registered.peers) == ["L", "A", "B"]
    assert ids((await get(a.peer_lists)).peers) == ["L", "A", "B"]
    assert await get(leader.member_lists) == ["L", "A"]
    assert await get(leader.member_lists) == ["L", "A", "B"]
    assert ids(leader.server.members()) == ["L", "A", "B"]


async def test_an_offer_reaches_the_peer_unchanged_and_answers_come_back(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    b = await make_follower(leader.url, "B")
    sdp = "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\na=ice-ufrag:Ωx\r\n" * 20
    await exchange_offer(a, b, sdp)
    answer = Answer(from_="B", to="A", sdp="v=0\r\n", link="l1", epoch=1)
    await b.client.send(answer)
    assert await get(a.signals) == answer
    # To the leader itself: delivered locally; from the leader: sent to the member.
    await a.client.send(Offer(from_="A", to="L", sdp="x", link="l1", epoch=1))
    assert await get(leader.delivered) == Offer(from_="A", to="L", sdp="x", link="l1", epoch=1)
    leader.server.send_local(Answer(from_="L", to="A", sdp="y", link="l1", epoch=1))
    assert await get(a.signals) == Answer(from_="L", to="A", sdp="y", link="l1", epoch=1)
    with pytest.raises(KeyError):
        leader.server.send_local(Answer(from_="L", to="nobody", sdp="y", link="l1", epoch=1))


async def test_bad_input_gets_errors_and_closes_while_members_notice_nothing(
    make_leader: MakeLeader, make_follower: MakeFollower, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    b = await make_follower(leader.url, "B")
    r = await raw(leader.url)
    await r.register(peer("R"))
    assert ids((await get(a.peer_lists)).peers) == ["L", "A", "B"]
    assert ids((await get(a.peer_lists)).peers) == ["L", "A", "B", "R"]
    assert ids((await get(b.peer_lists)).peers) == ["L", "A", "B", "R"]
    baseline = ids(leader.server.members())

    # A registered troublemaker: every bad frame gets its error, the connection stays.
    await r.send(Offer(from_="A", to="B", sdp="forged", link="l1", epoch=1))
    assert (await r.error()).code == "spoofed"
    await r.send(Offer(from_="R", to="Z", sdp="x", link="l1", epoch=1))
    assert (await r.error()).code == "unknown_peer"
    await r.send("{this is not json")
    assert (await r.error()).code == "malformed"
    await r.send(b"\x00\x01binary")
    assert (await r.error()).code == "binary"
    await r.send('{"type": "teleport", "to": "B"}')
    assert (await r.error()).code == "unknown_type"
    await r.send('{"type": "offer", "from": "R", "to": "B", "sdp": 42}')
    invalid = await r.error()
    assert invalid.code == "invalid" and "$.sdp" in invalid.message
    await r.send(Challenge(nonce="x"))
    assert (await r.error()).code == "unexpected"
    await r.send(Register(peer=peer("R"), room=ROOM))
    assert (await r.error()).code == "already_registered"
    await r.send(Heartbeat(seq=1, term=1))
    assert await r.recv() == HeartbeatAck(seq=1, term=1)

    # Strangers: a message before register, then an oversize frame.
    early = await raw(leader.url)
    assert isinstance(await early.recv(), Challenge)
    await early.send(Offer(from_="A", to="B", sdp="x", link="l1", epoch=1))
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
    assert ids(leader.server.members()) == baseline


async def test_a_frame_just_under_the_limit_is_accepted(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    b = await make_follower(leader.url, "B")
    overhead = len(encode_signal(Offer(from_="A", to="B", sdp="", link="l1", epoch=1)))
    await exchange_offer(a, b, "s" * (MAX_FRAME_BYTES - overhead))


async def test_a_wrong_room_key_is_refused_and_never_sees_the_members(
    make_leader: MakeLeader, make_follower: MakeFollower, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader(KEY)
    a = await make_follower(leader.url, "A", KEY)
    intruder = await raw(leader.url)
    challenge = await intruder.recv()
    assert isinstance(challenge, Challenge)
    forged = register_proof("guess", challenge.nonce, "X", ROOM)
    await intruder.send(Register(peer=peer("X"), room=ROOM, proof=forged))
    assert (await intruder.error()).code == "forbidden"
    assert await intruder.closed() == (4003, "forbidden")
    assert not any(KEY in f or '"A"' in f for f in intruder.frames)

    with pytest.raises(JoinFailed) as refused:
        await make_follower(leader.url, "Y", "guess")
    assert refused.value.code == "forbidden"
    with pytest.raises(JoinFailed) as keyless:
        await make_follower(leader.url, "Z", None)
    assert keyless.value.code == "forbidden"

    b = await make_follower(leader.url, "B", KEY)
    assert ids((await get(a.peer_lists)).peers) == ["L", "A", "B"]  # the first change
    assert ids(leader.server.members()) == ["L", "A", "B"]
    await exchange_offer(b, a, "keyed")


async def test_a_keyed_client_refuses_a_leader_that_cannot_prove_the_key(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader(None)
    with pytest.raises(JoinFailed) as unproven:
        await make_follower(leader.url, "A", KEY)
    assert unproven.value.code == "unproven_leader"
    # It registered for a moment, then walked away.
    assert await get(leader.member_lists) == ["L", "A"]
    assert await get(leader.member_lists) == ["L"]


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
        await client.join(leader.url, peer("A"), "other room", None, WAIT)
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
            await client.join(url, peer("A"), ROOM, None, timeout=0.3)
        assert slow.value.code == "timeout"
        assert time.monotonic() - started < 2.0


async def test_re_registration_replaces_the_old_connection(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    first = await make_follower(leader.url, "A", seq=1)
    second = await make_follower(leader.url, "A", seq=2)
    assert "4002" in await get(first.lost)
    assert ids(leader.server.members()) == ["L", "A"]
    b = await make_follower(leader.url, "B")
    await exchange_offer(b, second, "to the new one")


async def test_a_member_that_stops_reading_is_cut_off(
    make_leader: MakeLeader, make_follower: MakeFollower, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    stuck = await raw(leader.url)
    await stuck.register(peer("R"))  # and never reads again
    assert ids((await get(a.peer_lists)).peers) == ["L", "A", "R"]
    blob = "s" * (200 * 1024)
    for _ in range(500):  # 100 MB at most: far beyond socket buffers plus the backlog
        await a.client.send(Offer(from_="A", to="R", sdp=blob, link="l1", epoch=1))
        if not a.peer_lists.empty():
            break
    assert ids((await get(a.peer_lists)).peers) == ["L", "A"]
    assert ids(leader.server.members()) == ["L", "A"]
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
    assert (turn.leader_id, turn.term, ids(turn.peers)) == ("S", 2, ["S", "L", "A"])
    assert "4000" in await get(a.lost)
    assert a.client.term == 2
    with pytest.raises(JoinFailed) as refused:
        await make_follower(leader.url, "B")
    assert refused.value.code == "not_leader" and "S" in refused.value.reason


async def test_client_close_leaves_without_firing_on_lost(
    make_leader: MakeLeader, make_follower: MakeFollower
) -> None:
    leader = await make_leader()
    a = await make_follower(leader.url, "A")
    b = await make_follower(leader.url, "B")
    started = time.monotonic()
    await a.client.close()
    assert time.monotonic() - started < 1.0
    assert ids((await get(b.peer_lists)).peers) == ["L", "B"]  # B's first list: A left
    assert a.lost.empty() and b.lost.empty()
    with pytest.raises(ConnectionError):
        await a.client.send(Offer(from_="A", to="B", sdp="x", link="l1", epoch=1))


@dataclass
class FakeLeader:
    """A leader we control: registers anyone, then acks heartbeats or not."""

    ack: bool
    heartbeats: asyncio.Queue[Heartbeat] = field(default_factory=asyncio.Queue)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(encode_signal(Challenge(nonce="n")))
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
    assert ids((await get(a.peer_lists)).peers) == ["L", "A", "R"]
    assert await silent.closed() == (4008, "heartbeat timeout")
    assert 0.35 <= time.monotonic() - started < 2.0
    assert ids((await get(a.peer_lists)).peers) == ["L", "A"]
    assert ids(leader.server.members()) == ["L", "A"]  # A's heartbeats keep it in
    assert a.lost.empty()


async def test_server_closes_a_connection_that_never_registers(
    make_leader: MakeLeader, raw: Callable[[str], Awaitable[Raw]]
) -> None:
    leader = await make_leader(register_timeout=0.2)
    lurker = await raw(leader.url)
    assert isinstance(await lurker.recv(), Challenge)
    assert await lurker.closed() == (4001, "registration timeout")
