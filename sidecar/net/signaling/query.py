"""Asking peers' signaling servers what they know of the room (a rendezvous).

One WebSocket, three frames: the server's `challenge`, our `query` (sealed
under a session key in a keyed room, so only a member is answered and only
a member can answer), its `room_info`; then it closes. See
docs/protocol.md, "Rendezvous".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import msgspec
from aiohttp import WSMsgType

from sidecar.contract import (
    Challenge,
    PeerRecord,
    Query,
    RoomInfo,
    SignalError,
    SignalMessage,
    decode_signal,
)
from sidecar.core.rendezvous import (
    ASK_TIMEOUT_S,
    MAX_RESOLVED,
    RESOLVE_TIMEOUT_S,
    Rendezvous,
    Target,
)
from sidecar.core.signaling import (
    CLOSE_TIMEOUT_S,
    MAX_FRAME_BYTES,
    SIGNAL_PATH,
    ClientSession,
    tag,
)

log = logging.getLogger("sidecar.core.rendezvous")


class QueryFailed(Exception):
    """No answer; `refused` when the peer answered no (another room or
    version, or it cannot prove the room key)."""

    def __init__(self, reason: str, refused: bool = False) -> None:
        super().__init__(reason)
        self.refused = refused


_T = TypeVar("_T")


async def exchange_with(
    address: str,
    port: int,
    timeout: float,
    talk: Callable[[aiohttp.ClientWebSocketResponse], Awaitable[_T]],
) -> _T:
    """One short conversation (`talk`) with the signaling server at
    `address:port`, all of it within `timeout`; raises QueryFailed."""
    url = f"ws://{address}:{port}{SIGNAL_PATH}"
    try:
        async with (
            asyncio.timeout(timeout),
            aiohttp.ClientSession() as session,
            session.ws_connect(
                url,
                max_msg_size=MAX_FRAME_BYTES + 1,
                compress=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
            ) as ws,
        ):
            return await talk(ws)
    except TimeoutError:
        raise QueryFailed(f"no answer within {timeout} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise QueryFailed(f"cannot connect: {exc}") from None


async def query_room(
    address: str, port: int, room: str, room_key: str | None, timeout: float
) -> list[PeerRecord]:
    """The records the peer at `address:port` knows of `room`; raises QueryFailed."""
    return await exchange_with(address, port, timeout, lambda ws: _ask(ws, room, room_key))


async def _ask(
    ws: aiohttp.ClientWebSocketResponse, room: str, room_key: str | None
) -> list[PeerRecord]:
    challenge = await next_frame(ws)
    if not isinstance(challenge, Challenge):
        raise QueryFailed(f"expected a challenge, got {tag(challenge)}")
    query = Query(room=room)
    session: ClientSession | None = None
    if room_key is not None:
        try:
            session = ClientSession(room_key, room, challenge)
        except ValueError:
            raise QueryFailed("the peer's share is not one") from None
    await ws.send_str(session.frame(query) if session else msgspec.json.encode(query).decode())
    answer = await next_frame(ws)
    if isinstance(answer, SignalError):
        raise QueryFailed(f"{answer.code}: {answer.message}", refused=True)
    if session is not None:
        opened = session.open(answer)
        if opened is None:
            raise QueryFailed("the answer is not sealed with the room's key", refused=True)
        answer = opened
    if not isinstance(answer, RoomInfo):
        raise QueryFailed(f"expected room_info, got {tag(answer)}")
    return [r for r in answer.records if r.room == room]


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> SignalMessage:
    frame = await ws.receive()
    if frame.type is not WSMsgType.TEXT:
        raise QueryFailed(f"closed ({ws.close_code})")
    try:
        return decode_signal(frame.data)
    except msgspec.DecodeError as exc:
        raise QueryFailed(f"bad frame: {exc}") from None


class Asker:
    """Asks the rendezvous targets when `sidecar.core.rendezvous` says, and hands
    every answer's records to `on_records`. Runs until cancelled; never
    raises for a target that fails (its status says why)."""

    def __init__(
        self,
        plan: Rendezvous,
        *,
        room: str,
        room_key: str | None,
        on_records: Callable[[list[PeerRecord]], None],
        online: Callable[[], bool],
        in_room: Callable[[], bool],
        is_me: Callable[[str, int], bool],
    ) -> None:
        self.plan = plan
        self._room = room
        self._key = room_key
        self._on_records = on_records
        self._online = online
        self._in_room = in_room
        self._is_me = is_me
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Something changed (online again, leader lost): look at the plan now."""
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._wake.clear()
                if self._online():
                    for target in self.plan.due(loop.time()):
                        task = asyncio.create_task(self._ask(target))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                deadline = self.plan.next_deadline()
                delay = None if deadline is None else max(deadline - loop.time(), 0.05)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _ask(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        try:
            addresses = await resolve(target)
        except QueryFailed as exc:
            self.plan.failed(target, loop.time(), str(exc), in_room=self._in_room())
            self._wake.set()
            return
        self.plan.resolved(target, addresses)
        addresses = [a for a in addresses if not self._is_me(a, target.port)]
        if not addresses:  # ourselves (a remembered list names this device too)
            self.plan.answered(target, loop.time(), in_room=True)
            return
        outcome: QueryFailed | None = None
        for address in addresses:
            try:
                records = await query_room(
                    address, target.port, self._room, self._key, ASK_TIMEOUT_S
                )
            except QueryFailed as exc:
                outcome = exc
                continue
            self._on_records(records)
            self.plan.answered(target, loop.time(), in_room=self._in_room())
            log.debug("rendezvous %s: %d record(s)", target.text, len(records))
            break
        else:
            assert outcome is not None
            log.info("rendezvous %s: %s", target.text, outcome)
            self.plan.failed(
                target, loop.time(), str(outcome), outcome.refused, in_room=self._in_room()
            )
        self._wake.set()

    def set_room_key(self, room_key: str | None) -> None:
        self._key = room_key


async def resolve(target: Target) -> list[str]:
    """The IPv4 addresses of a target (itself, for an address); raises QueryFailed."""
    if target.is_address:
        return [target.host]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(
                target.host, target.port, family=socket.AF_INET, type=socket.SOCK_STREAM
            )
    except (OSError, TimeoutError) as exc:
        raise QueryFailed(f"cannot resolve {target.host}: {exc or 'timed out'}") from None
    found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not found:
        raise QueryFailed(f"{target.host} has no IPv4 address")
    return found[:MAX_RESOLVED]
