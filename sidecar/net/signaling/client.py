"""A follower's connection to the leader's signaling server (aiohttp): the join
handshake, then the shell of `sidecar.core.follower.FollowerCore` (heartbeats,
loss, which frames count)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
import msgspec
from aiohttp import WSMsgType

from sidecar.contract import (
    Answer,
    Candidate,
    Challenge,
    Heartbeat,
    Leave,
    Offer,
    PeerList,
    PeerSignal,
    Register,
    Registered,
    Rekey,
    Rekeyed,
    Relay,
    SignalError,
    SignalMessage,
    SignalPeer,
    decode_signal,
)
from sidecar.core.follower import Beat, Deliver, FollowerCore, Lost
from sidecar.core.identity import Identity, registration_statement
from sidecar.core.signaling import (
    CLOSE_TIMEOUT_S,
    HEARTBEAT_INTERVAL_S,
    MAX_FRAME_BYTES,
    MISSED_LIMIT,
    ClientSession,
    CloseCode,
    call_safely,
    encode_signal,
    tag,
)

log = logging.getLogger("sidecar.signaling")


# ----------------------------------------------------------------- client


class JoinFailed(Exception):
    """Joining a leader failed; `code` says why in one word.

    Codes: refused (no connection, or closed without a reason), timeout,
    not_leader, forbidden (our key proof was refused), wrong_room,
    wrong_version, id_conflict, unproven_leader (the leader cannot prove the
    room key), revoked (this device was shut out of the room), protocol (the
    leader sent something unexpected).
    """

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.reason = reason
        self.code = code


_JOIN_CODES = {
    "not_leader",
    "forbidden",
    "wrong_room",
    "wrong_version",
    "id_conflict",
    "bad_identity",
    "bad_address",
    "too_fast",
    "revoked",
}
_CLOSE_TO_JOIN_CODE: dict[int, str] = {
    CloseCode.NOT_LEADER: "not_leader",
    CloseCode.FORBIDDEN: "forbidden",
    CloseCode.REJECTED: "wrong_room",
    CloseCode.REVOKED: "revoked",
}


class SignalingClient:
    """A follower's connection to the leader.

    After `join`, heartbeats every `heartbeat_interval` seconds; the leader is
    lost when no ack came for `missed_limit` intervals or the connection
    closes. `on_lost` then fires exactly once, and never after `close`.
    """

    def __init__(
        self,
        *,
        on_lost: Callable[[str], None],
        on_peer_list: Callable[[PeerList], None] | None = None,
        on_signal: Callable[[PeerSignal], None] | None = None,
        on_rekey: Callable[[Rekey], None] | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL_S,
        missed_limit: int = MISSED_LIMIT,
    ) -> None:
        self._on_lost = on_lost
        self._on_peer_list = on_peer_list
        self._on_signal = on_signal
        self._on_rekey = on_rekey
        self._interval = heartbeat_interval
        self._missed_limit = missed_limit
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._me: SignalPeer | None = None
        self._leader_id: str | None = None
        self._term = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._teardown: asyncio.Task[None] | None = None
        self._closing = False
        self._lost = False
        self._sealed: ClientSession | None = None  # a keyed room's session
        self._core: FollowerCore | None = None
        self._rotation: asyncio.Future[Rekeyed] | None = None

    @property
    def leader_id(self) -> str | None:
        return self._leader_id

    @property
    def term(self) -> int:
        """The leader's term as last heard (Registered, PeerList, HeartbeatAck)."""
        return self._core.term if self._core is not None else self._term

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed and not self._lost

    @property
    def dropped(self) -> bool:
        """The leader closed the connection because our heartbeats stopped (we
        slept, or our network was down): it is alive, and takes us back."""
        return self._ws is not None and self._ws.close_code == CloseCode.HEARTBEAT_TIMEOUT

    async def join(
        self,
        urls: str | list[str],
        me: SignalPeer,
        room: str,
        room_key: str | None,
        timeout: float,
        identity: Identity,
        seq: int = 0,
    ) -> Registered:
        """Connect, answer the challenge, register; raises JoinFailed.

        With several URLs (a leader on two networks), all are tried at once and
        the first connection that opens is the one used: an address on a
        network we cannot reach then costs nothing."""
        if self._session is not None:
            raise RuntimeError("a SignalingClient joins once")
        targets = [urls] if isinstance(urls, str) else list(urls)
        if not targets:
            raise JoinFailed("no address to join", "refused")
        self._session = session = aiohttp.ClientSession()
        where = " or ".join(targets)
        try:
            async with asyncio.timeout(timeout):
                ws = await _connect_first(session, targets)
                self._ws = ws
                registered = await self._handshake(ws, me, room, room_key, identity, seq)
        except TimeoutError:
            await self._shutdown()
            raise JoinFailed(
                f"no registration from {where} within {timeout} s", "timeout"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            await self._shutdown()
            raise JoinFailed(f"cannot connect to {where}: {exc}", "refused") from exc
        except BaseException:
            await self._shutdown()
            raise
        self._me = me
        self._leader_id = registered.leader_id
        self._term = registered.term
        self._core = FollowerCore(
            term=registered.term,
            now=_now_ms(),
            keyed=self._sealed is not None,
            interval_ms=self._interval * 1000,
            missed_limit=self._missed_limit,
        )
        self._tasks = [
            asyncio.create_task(self._read_loop(ws), name="signaling-client-read"),
            asyncio.create_task(self._clock(ws), name="signaling-client-heartbeat"),
        ]
        return registered

    async def _handshake(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        me: SignalPeer,
        room: str,
        room_key: str | None,
        identity: Identity,
        seq: int,
    ) -> Registered:
        refusal: list[SignalError] = []
        first = await _next_join_frame(ws, refusal)
        if not isinstance(first, Challenge):
            raise JoinFailed(f"expected a challenge, got {tag(first)}", "protocol")
        if room_key is not None:
            try:
                self._sealed = ClientSession(room_key, room, first)
            except ValueError:
                raise JoinFailed("the leader's share is not one", "protocol") from None
        binding = self._sealed.binding if self._sealed is not None else ""
        statement = registration_statement(first.nonce, me.peer_id, room, seq, binding)
        register = Register(
            peer=me,
            room=room,
            identity=identity.public_key,
            signature=identity.sign(statement),
            seq=seq,
        )
        await ws.send_str(self._frame(register))
        while True:
            msg = await _next_join_frame(ws, refusal)
            if isinstance(msg, SignalError):
                if self._sealed is not None and msg.code not in _JOIN_CODES:
                    # A leader that answers our sealed register with a plain error
                    # other than a refusal has no key: it cannot prove one.
                    await ws.close(code=CloseCode.FORBIDDEN, message=b"leader has no key")
                    raise JoinFailed(f"the leader has no room key ({msg.code})", "unproven_leader")
                refusal.append(msg)  # the close that follows says we are refused
                continue
            if self._sealed is not None:
                # Only a member of the room can seal: the leader proves the key here.
                opened = self._unseal(msg)
                if opened is None:
                    await ws.close(code=CloseCode.FORBIDDEN, message=b"leader cannot prove the key")
                    raise JoinFailed("the leader cannot prove the room key", "unproven_leader")
                msg = opened
            if isinstance(msg, Registered):
                return msg
            log.debug("signaling: ignoring %s before registered", tag(msg))

    def _frame(self, msg: SignalMessage) -> str:
        """The text of a frame to send: sealed in a keyed room."""
        return encode_signal(msg) if self._sealed is None else self._sealed.frame(msg)

    def _unseal(self, msg: SignalMessage) -> SignalMessage | None:
        return msg if self._sealed is None else self._sealed.open(msg)

    async def send(self, msg: PeerSignal | Rekey) -> None:
        """Send an offer, answer or candidate through the leader."""
        ws = self._ws
        if ws is None or ws.closed or self._lost or self._closing:
            raise ConnectionError("not connected to a leader")
        await ws.send_str(self._frame(msg))

    async def rotate(self, rekey: Rekey, timeout: float) -> Rekeyed:
        """Hand a new room key to the leader, which passes it to every member
        but `rekey.revoke`; its answer says who took it. Raises
        ConnectionError (not connected, or lost before the answer) or
        TimeoutError (the rotation may or may not have happened)."""
        if self._sealed is None:
            raise ConnectionError("an open room has no key to rotate")
        if self._rotation is not None and not self._rotation.done():
            raise ConnectionError("a rotation is already under way")
        self._rotation = rotation = asyncio.get_running_loop().create_future()
        try:
            await self.send(rekey)
            async with asyncio.timeout(timeout):
                return await asyncio.shield(rotation)
        finally:
            self._rotation = None

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        reason = "connection closed"
        try:
            while True:
                frame = await ws.receive()
                if frame.type is WSMsgType.TEXT:
                    self._on_frame(frame.data)
                elif frame.type is WSMsgType.BINARY:
                    log.warning("signaling: ignoring a binary frame from the leader")
                else:
                    if frame.type is WSMsgType.CLOSE:
                        reason = f"leader closed the connection ({frame.data} {frame.extra or ''})"
                    elif frame.type is WSMsgType.ERROR:
                        reason = f"connection error: {frame.data}"
                    break
        except Exception as exc:  # whatever broke the reader, the leader is gone to us
            reason = f"connection failed: {exc!r}"
        self._lose(reason.strip())

    def _on_frame(self, text: str) -> None:
        core = self._core
        assert core is not None
        try:
            received = decode_signal(text)
        except msgspec.DecodeError as exc:
            log.warning("signaling: bad frame from the leader: %s", exc)
            return
        msg = self._unseal(received)
        if msg is None:
            core.unsealed(isinstance(received, SignalError), _now_ms())
            if isinstance(received, SignalError):  # refusals come unsealed
                log.warning("signaling: leader says %s: %s", received.code, received.message)
        else:
            core.received(msg, _now_ms())
        self._carry_out(core)

    def _carry_out(self, core: FollowerCore) -> None:
        for output in core.take():
            match output:
                case Deliver(PeerList() as peer_list):
                    # leader_id stays the one we are connected to: a list naming
                    # another leader is a redirect, and the close follows.
                    call_safely(self._on_peer_list, peer_list)
                case Deliver(Rekey() as rekey):
                    call_safely(self._on_rekey, rekey)
                case Deliver(Rekeyed() as rekeyed):
                    if self._rotation is not None and not self._rotation.done():
                        self._rotation.set_result(rekeyed)
                case Deliver(SignalError() as error):
                    log.warning("signaling: leader says %s: %s", error.code, error.message)
                case Deliver(Offer() | Answer() | Candidate() | Relay() as signal):
                    call_safely(self._on_signal, signal)
                case Beat(seq, term) if self._ws is not None:
                    self._beat(self._ws, seq, term)
                case Lost("unsealed"):
                    self._lose("a frame that is not sealed with the room's key, or out of sequence")
                case Lost(_, silent_ms):
                    self._lose(f"no heartbeat ack for {silent_ms / 1000:.1f} s")

    async def _clock(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Wakes the core at its deadline (one timer)."""
        core = self._core
        assert core is not None
        while (deadline := core.next_deadline()) is not None:
            await asyncio.sleep(max(0.0, (deadline - _now_ms()) / 1000))
            core.tick(_now_ms())
            self._carry_out(core)

    def _beat(self, ws: aiohttp.ClientWebSocketResponse, seq: int, term: int) -> None:
        async def send() -> None:
            try:
                async with asyncio.timeout(self._interval):
                    await ws.send_str(self._frame(Heartbeat(seq=seq, term=term)))
            except TimeoutError:
                # Our socket takes nothing (and, in a keyed room, a frame half sent
                # would put the session out of sequence): the leader is lost to us.
                self._lose("could not send a heartbeat within an interval")
            except (ConnectionError, aiohttp.ClientError) as exc:
                log.debug("signaling: heartbeat not sent: %s", exc)

        task = asyncio.create_task(send(), name="signaling-client-beat")
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    def _lose(self, reason: str) -> None:
        if self._closing or self._lost:
            return
        self._lost = True
        log.info("signaling: leader %s lost: %s", self._leader_id, reason)
        if self._rotation is not None and not self._rotation.done():
            self._rotation.set_exception(ConnectionError(f"the leader was lost: {reason}"))
        self._teardown = asyncio.create_task(self._shutdown(), name="signaling-client-teardown")
        call_safely(self._on_lost, reason)

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                if self._ws is not None:
                    await self._ws.close()
        except TimeoutError:
            log.debug("signaling: close handshake timed out")
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._session is not None:
                await self._session.close()

    async def close(self, leave: bool = True) -> None:
        """Leave (optionally) and disconnect, within about a second; never fires on_lost."""
        if self._closing:
            return
        self._closing = True
        ws, me = self._ws, self._me
        if leave and ws is not None and me is not None and not ws.closed and not self._lost:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await ws.send_str(self._frame(Leave(peer_id=me.peer_id)))
            except (TimeoutError, ConnectionError, aiohttp.ClientError) as exc:
                log.debug("signaling: leave not sent: %s", exc)
        if self._teardown is not None:
            await self._teardown
        else:
            await self._shutdown()


async def _connect_first(
    session: aiohttp.ClientSession, urls: list[str]
) -> aiohttp.ClientWebSocketResponse:
    """The first WebSocket of `urls` to open; the others are cancelled or closed.
    Raises the last connection error when none opens."""

    async def connect(url: str) -> aiohttp.ClientWebSocketResponse:
        return await session.ws_connect(
            url,
            max_msg_size=MAX_FRAME_BYTES + 1,  # aiohttp's limit is exclusive
            compress=0,
            timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
        )

    if len(urls) == 1:
        return await connect(urls[0])
    attempts = [asyncio.create_task(connect(url)) for url in urls]
    winner: aiohttp.ClientWebSocketResponse | None = None
    error: BaseException | None = None
    try:
        for next_done in asyncio.as_completed(attempts):
            try:
                winner = await next_done
                break
            except (aiohttp.ClientError, OSError) as exc:
                error = exc
    finally:
        for attempt in attempts:
            attempt.cancel()
        results = await asyncio.gather(*attempts, return_exceptions=True)
        for ws in results:
            if isinstance(ws, aiohttp.ClientWebSocketResponse) and ws is not winner:
                await ws.close()
    if winner is None:
        assert error is not None
        raise error
    return winner


async def _next_join_frame(
    ws: aiohttp.ClientWebSocketResponse, refusal: list[SignalError]
) -> SignalMessage:
    frame = await ws.receive()
    if frame.type is WSMsgType.TEXT:
        try:
            return decode_signal(frame.data)
        except msgspec.DecodeError as exc:
            raise JoinFailed(f"bad frame from the leader: {exc}", "protocol") from None
    if frame.type is WSMsgType.BINARY:
        raise JoinFailed("binary frame from the leader", "protocol")
    close_code = ws.close_code
    if refusal and refusal[-1].code in _JOIN_CODES:
        raise JoinFailed(refusal[-1].message, refusal[-1].code)
    code = _CLOSE_TO_JOIN_CODE.get(close_code, "refused") if close_code else "refused"
    reason = refusal[-1].message if refusal else f"closed with {close_code} {frame.extra or ''}"
    raise JoinFailed(reason.strip(), code)


def _now_ms() -> float:
    return asyncio.get_running_loop().time() * 1000.0
