"""The room key of a running node: got by pairing, lent by pairing windows,
rotated by a member (docs/api.md, "Keyed rooms and pairing").

`RoomKeys` reaches the rest of the node only through `KeyPorts`, a narrow
interface its membership implements (sidecar.node.membership): where the key
is used (signaling, mDNS, rendezvous, our record), how a new key reaches the
room, the pairing window of our server, and the places to try a pairing
code. What the host should hear goes up through `KeyEvents`. The network
steps of pairing (`pair_with`, `resolve`) are given to it, so its rules run
in unit tests without a network (tests/unit/test_keys.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol

from sidecar.contract import PairingWindow, Rekey, RoomKeyReason, Target
from sidecar.core.pairing import MAX_TRIES, Secret, Window, new_code, new_room_key, new_token
from sidecar.core.registry import PairingUpdate

log = logging.getLogger(__name__)

PAIR_TIMEOUT_S = 20.0
"""How long a device given a pairing code looks for a member with an open window
(start_peer answers within the dispatcher's 30 s)."""
PAIR_ATTEMPT_S = 3.0
RETRY_TARGET_S = 1.0
"""A member that had no window (yet) is asked again after this long."""
WRONG_CODE_WAIT_S = 3.0
"""A wrong code ends the search once every member known has answered, but not
before this long: one device answering `wrong_code` at once (a fake member)
does not end it before the real members are found."""


class KeyEvents(Protocol):
    def room_key_changed(
        self, room_key: str, reason: RoomKeyReason | None, revoked: Sequence[str]
    ) -> None:
        """The node uses this key from now on (`reason`: tell the host why);
        `revoked` were shut out of the room with the change."""

    def pairing_changed(self, update: PairingUpdate) -> None:
        """This peer's pairing window changed."""


class KeyPorts(Protocol):
    """What `RoomKeys` needs of the membership that holds it, and nothing more."""

    @property
    def room(self) -> str: ...

    @property
    def room_key(self) -> str | None: ...

    def use_key(self, room_key: str) -> None:
        """Sign and check with `room_key` from now on: signaling, mDNS, rendezvous,
        and our record published anew."""

    async def send_rekey(self, room_key: str, revoke: list[str]) -> tuple[list[str], list[str]]:
        """Hand a new key to the room but `revoke` (leading: to every member;
        following: to the leader, which passes it on): who took it, who was
        shut out. Raises ConnectionError (in no room) or TimeoutError."""

    def open_window(self, window: Window) -> bool:
        """Open a pairing window on our server; False when there is none."""

    def close_window(self) -> None: ...

    def display_url(self) -> str | None:
        """This device's display page, when it serves one."""

    def rendezvous_targets(self) -> Iterable[Target]: ...

    def resolved(self, target: Target, addresses: list[str]) -> None:
        """A rendezvous target's name resolved to these addresses."""

    def may_contact(self, address: str) -> bool: ...

    def is_me(self, address: str, port: int) -> bool: ...

    def now(self) -> float:
        """The node's clock (the event loop's), in seconds."""

    def spawn(self, coro: Coroutine[Any, Any, None]) -> Any: ...


PairWith = Callable[[str, int, str, Secret, float], Awaitable[str]]
"""(address, port, room, secret, timeout) -> the room key; raises PairFailed."""
Resolve = Callable[[Target], Awaitable[list[str]]]


class PairingFailed(Exception):
    pass


class RoomKeys:
    def __init__(
        self,
        ports: KeyPorts,
        events: KeyEvents,
        *,
        pair_with: PairWith | None = None,
        resolve: Resolve | None = None,
    ) -> None:
        self._ports = ports
        self._events = events
        self._pair_with = pair_with
        self._resolve = resolve
        self.paired: asyncio.Future[str] | None = None
        """While pairing: the room key, once a member gave it."""
        self._targets: dict[tuple[str, int], float] = {}  # (address, port) -> last tried
        self._found = asyncio.Event()

    @property
    def pairing_in_progress(self) -> bool:
        return self.paired is not None and not self.paired.done()

    # ------------------------------------------------------- the key in use

    def use(self, room_key: str, reason: RoomKeyReason | None, revoked: Sequence[str] = ()) -> None:
        """Everything signs and checks with `room_key` from now on. A rotation
        closes this device's pairing window: a code seen before it (perhaps by
        the device it shut out) gives nothing after it."""
        if reason == "rotated":
            self._ports.close_window()
        self._ports.use_key(room_key)
        self._events.room_key_changed(room_key, reason, revoked)

    # -------------------------------------------------------- rotation

    async def rotate(self, revoke: Sequence[str] = ()) -> tuple[list[str], list[str]]:
        """A new room key for every member present but `revoke`: who took it,
        who was shut out. Raises RuntimeError when this peer is in no room (the
        members could not hear of it), TimeoutError when the leader did not
        answer (the rotation may or may not have happened)."""
        key = new_room_key()
        try:
            took, revoked = await self._ports.send_rekey(key, list(revoke))
        except ConnectionError as exc:
            raise RuntimeError(
                f"not connected to the room's leader: the members cannot hear of it ({exc})"
            ) from None
        self.use(key, "rotated", revoked)
        return took, revoked

    def rekeyed(self, rekey: Rekey) -> None:
        """A member rotated the key (we heard it from the leader, or as leader)."""
        if rekey.room_key != self._ports.room_key:
            log.info("the room key was rotated by a member (%d shut out)", len(rekey.revoke))
            self.use(rekey.room_key, "rotated", rekey.revoke)

    # ---------------------------------------------------- pairing windows

    def open_window(self, ttl_s: float, uses: int) -> PairingWindow:
        """A new pairing window (it replaces an open one), with its code and
        its pairing link's token."""
        if self._ports.room_key is None:
            raise RuntimeError("an open room has no key to pair with")
        window = Window(
            code=new_code(),
            expires_at=self._ports.now() + ttl_s,
            tries_left=MAX_TRIES,
            uses_left=uses,
            token=new_token(),
        )
        if not self._ports.open_window(window):
            raise RuntimeError("not in a room yet")
        return self.info(window)

    def info(self, window: Window) -> PairingWindow:
        """What the host is shown of a window: the code, the pairing link (the
        display page with the token, while it is unused), what is left."""
        page, token = self._ports.display_url(), window.token
        link = urllib.parse.urlencode({"room": self._ports.room, "pair": token})
        return PairingWindow(
            code=window.code,
            expires_at=self.wall_ms(window.expires_at),
            tries_left=max(window.tries_left, 0),
            uses_left=max(window.uses_left, 0),
            token=token,
            pair_url=f"{page}#{link}" if page is not None and token is not None else None,
        )

    def close_window(self) -> None:
        self._ports.close_window()

    def wall_ms(self, loop_time: float) -> int:
        return int(time.time() * 1000 + (loop_time - self._ports.now()) * 1000)

    # ------------------------------------------------ pairing in (a new device)

    def start_pairing(self, secret: Secret) -> None:
        self.paired = asyncio.get_running_loop().create_future()
        self._ports.spawn(self._pair(secret))

    def found(self, addresses: list[str], port: int) -> None:
        """A member's server seen (mDNS, while pairing): a place to try the code."""
        if not self.pairing_in_progress:
            return
        for address in addresses:
            if self._ports.may_contact(address):
                self._targets.setdefault((address, port), 0.0)
        self._found.set()

    async def _pair(self, secret: Secret) -> None:
        from sidecar.net.signaling.pair import PairFailed, pair_with
        from sidecar.net.signaling.query import QueryFailed, resolve

        pair = self._pair_with or pair_with
        resolve_target = self._resolve or resolve
        assert self.paired is not None
        p = self._ports
        for target in p.rendezvous_targets():
            with contextlib.suppress(QueryFailed):
                for address in await resolve_target(target):
                    p.resolved(target, [address])
                    self._targets.setdefault((address, target.port), 0.0)
        started = p.now()
        deadline = started + PAIR_TIMEOUT_S
        last_error = "no member of the room with an open pairing window was found"
        refused: str | None = None  # a member said the code is wrong
        done: set[tuple[str, int]] = set()  # members that refused the code: not again
        try:
            while p.now() < deadline:
                due = [
                    t
                    for t, at in self._targets.items()
                    if p.now() - at >= RETRY_TARGET_S and t not in done
                ]
                for address, port in due:
                    if p.is_me(address, port):
                        continue
                    self._targets[(address, port)] = p.now()
                    try:
                        key = await pair(address, port, p.room, secret, PAIR_ATTEMPT_S)
                    except PairFailed as exc:
                        last_error = f"{address}:{port}: {exc}"
                        log.info("pairing with %s:%d: %s", address, port, exc)
                        if exc.final:  # refused here for good; another member may hold the window
                            refused = str(exc)
                            done.add((address, port))
                        continue
                    log.info("paired with %s:%d", address, port)
                    self.use(key, None)
                    self.paired.set_result(key)
                    return
                untried = [t for t, at in self._targets.items() if at == 0.0 and t not in done]
                if refused is not None and not untried and p.now() >= started + WRONG_CODE_WAIT_S:
                    raise PairingFailed(refused)  # every member we know has answered
                self._found.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY_TARGET_S):
                        await self._found.wait()
            timed_out = f"no pairing within {PAIR_TIMEOUT_S:.0f} s: {last_error}"
            raise PairingFailed(refused or timed_out)
        except PairingFailed as exc:
            if not self.paired.done():
                self.paired.set_exception(exc)
