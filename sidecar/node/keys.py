"""The room key of a running session: got by pairing, lent by pairing
windows, rotated by a member (docs/api.md, "Keyed rooms and pairing").

`RoomKeys` belongs to a `sidecar.node.membership.Session` and uses only its public
parts: the signaling server (pairing windows, rekeys to the members), the
client of the leader (a follower's rekey), mDNS and the rendezvous asker
(they sign and check with the key). What the host should hear goes up
through the session's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Protocol

import msgspec

from sidecar.contract import Rekey, RoomKeyReason
from sidecar.core.pairing import MAX_TRIES, Window, new_code, new_room_key

if TYPE_CHECKING:
    from sidecar.core.registry import PairingUpdate
    from sidecar.node.membership import Session

log = logging.getLogger(__name__)

PAIR_TIMEOUT_S = 20.0
"""How long a device given a pairing code looks for a member with an open window
(start_peer answers within the dispatcher's 30 s)."""
PAIR_ATTEMPT_S = 3.0
RETRY_TARGET_S = 1.0
"""A member that had no window (yet) is asked again after this long."""


class KeyEvents(Protocol):
    def room_key_changed(self, room_key: str, reason: RoomKeyReason | None) -> None:
        """The session uses this key from now on (`reason`: tell the host why)."""

    def pairing_changed(self, update: PairingUpdate) -> None:
        """This peer's pairing window changed."""


class PairingFailed(Exception):
    pass


class RoomKeys:
    def __init__(self, session: Session, events: KeyEvents) -> None:
        self._session = session
        self._events = events
        self.paired: asyncio.Future[str] | None = None
        """While pairing: the room key, once a member gave it."""
        self._targets: dict[tuple[str, int], float] = {}  # (address, port) -> last tried
        self._found = asyncio.Event()

    @property
    def pairing_in_progress(self) -> bool:
        return self.paired is not None and not self.paired.done()

    # ------------------------------------------------------- the key in use

    def use(self, room_key: str, reason: RoomKeyReason | None) -> None:
        """Everything signs and checks with `room_key` from now on."""
        s = self._session
        s.options = msgspec.structs.replace(s.options, room_key=room_key, pairing_code=None)
        if s.server is not None:
            s.server.set_key(room_key)
        if s.discovery is not None:
            s.discovery.set_room_key(room_key)
        if s.asker is not None:
            s.asker.set_room_key(room_key)
        s.publish_needed.set()  # our record, signed with the new key
        self._events.room_key_changed(room_key, reason)

    # -------------------------------------------------------- rotation

    def rotate(self) -> str:
        """A new room key for every member present; raises RuntimeError when
        this peer is in no room (the members could not hear of it)."""
        s = self._session
        key = new_room_key()
        if s.server is not None and s.server.leading:
            s.server.rekey(key)
        elif s.client is not None and s.client.connected:
            s.spawn(s.client.send(Rekey(room_key=key)))
        else:
            raise RuntimeError("not connected to the room's leader: the members cannot hear of it")
        self.use(key, "rotated")
        return key

    def rekeyed(self, room_key: str) -> None:
        """A member rotated the key (we heard it from the leader, or as leader)."""
        if room_key != self._session.options.room_key:
            log.info("the room key was rotated by a member")
            self.use(room_key, "rotated")

    # ---------------------------------------------------- pairing windows

    def open_window(self, ttl_s: float, uses: int) -> tuple[Window, int]:
        """A new pairing window (it replaces an open one): the window, and when
        it expires in ms since the epoch."""
        s = self._session
        if s.options.room_key is None or s.server is None:
            raise RuntimeError("an open room has no key to pair with")
        window = Window(
            code=new_code(), expires_at=s.now() + ttl_s, tries_left=MAX_TRIES, uses_left=uses
        )
        s.server.open_pairing(window)
        return window, self.wall_ms(window.expires_at)

    def close_window(self) -> None:
        if self._session.server is not None:
            self._session.server.close_pairing()

    def wall_ms(self, loop_time: float) -> int:
        return int(time.time() * 1000 + (loop_time - self._session.now()) * 1000)

    # ------------------------------------------------ pairing in (a new device)

    def start_pairing(self, code: str) -> None:
        self.paired = asyncio.get_running_loop().create_future()
        self._session.spawn(self._pair(code))

    def found(self, addresses: list[str], port: int) -> None:
        """A member's server seen (mDNS, while pairing): a place to try the code."""
        if not self.pairing_in_progress:
            return
        for address in addresses:
            if self._session.may_contact(address):
                self._targets.setdefault((address, port), 0.0)
        self._found.set()

    async def _pair(self, code: str) -> None:
        from sidecar.net.signaling.pair import PairFailed, pair_with
        from sidecar.net.signaling.query import QueryFailed, resolve

        assert self.paired is not None
        s = self._session
        for target in s.rendezvous.targets:
            with contextlib.suppress(QueryFailed):
                for address in await resolve(target):
                    s.rendezvous.resolved(target, [address])
                    self._targets.setdefault((address, target.port), 0.0)
        deadline = s.now() + PAIR_TIMEOUT_S
        last_error = "no member of the room with an open pairing window was found"
        try:
            while s.now() < deadline:
                due = [t for t, at in self._targets.items() if s.now() - at >= RETRY_TARGET_S]
                for address, port in due:
                    if self._is_me(address, port):
                        continue
                    self._targets[(address, port)] = s.now()
                    try:
                        key = await pair_with(address, port, s.options.room, code, PAIR_ATTEMPT_S)
                    except PairFailed as exc:
                        last_error = f"{address}:{port}: {exc}"
                        log.info("pairing with %s:%d: %s", address, port, exc)
                        if exc.final:
                            raise PairingFailed(str(exc)) from None
                        continue
                    log.info("paired with %s:%d", address, port)
                    self.use(key, None)
                    self.paired.set_result(key)
                    return
                self._found.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY_TARGET_S):
                        await self._found.wait()
            raise PairingFailed(f"no pairing within {PAIR_TIMEOUT_S:.0f} s: {last_error}")
        except PairingFailed as exc:
            if not self.paired.done():
                self.paired.set_exception(exc)

    def _is_me(self, address: str, port: int) -> bool:
        s = self._session
        return address in s.addresses and s.server is not None and port == s.server.port
