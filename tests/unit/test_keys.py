"""The room key of a running node (sidecar/node/keys.py) against fake ports:
rotation, rekeys heard from the room, pairing windows, and a new device's
search for a member to pair with. No network, no root."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

import pytest

from sidecar.contract import Rekey, RoomKeyReason, Target, parse_target
from sidecar.core.pairing import MAX_TRIES, Secret, Window
from sidecar.core.registry import PairingUpdate
from sidecar.net.signaling.pair import PairFailed
from sidecar.node import keys as keys_module
from sidecar.node.keys import PairingFailed, RoomKeys

KEY = "k" * 43


class FakePorts:
    def __init__(self, room_key: str | None = KEY, in_room: bool = True) -> None:
        self.room = "main"
        self.room_key = room_key
        self.in_room = in_room
        self.rekeys: list[str] = []
        self.windows: list[Window | None] = []
        self.clock = 100.0
        self.targets: list[Target] = []
        self.resolutions: list[tuple[str, list[str]]] = []
        self.me = ("10.0.0.1", 3010)
        self.tasks: list[asyncio.Task[None]] = []

    def use_key(self, room_key: str) -> None:
        self.room_key = room_key

    async def send_rekey(self, room_key: str, revoke: list[str]) -> tuple[list[str], list[str]]:
        if not self.in_room:
            raise ConnectionError("no leader")
        self.rekeys.append(room_key)
        return ["me", "b"], sorted(revoke)

    def open_window(self, window: Window) -> bool:
        self.windows.append(window)
        return True

    def close_window(self) -> None:
        self.windows.append(None)

    def display_url(self) -> str | None:
        return "http://10.0.0.1:3010/"

    def rendezvous_targets(self) -> Iterable[Target]:
        return self.targets

    def resolved(self, target: Target, addresses: list[str]) -> None:
        self.resolutions.append((target.text, addresses))

    def may_contact(self, address: str) -> bool:
        return address.startswith("10.")

    def is_me(self, address: str, port: int) -> bool:
        return (address, port) == self.me

    def now(self) -> float:
        return self.clock

    def spawn(self, coro: Coroutine[Any, Any, None]) -> Any:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task


class Heard:
    def __init__(self) -> None:
        self.keys: list[tuple[str, RoomKeyReason | None]] = []
        self.revoked: list[list[str]] = []

    def room_key_changed(
        self, room_key: str, reason: RoomKeyReason | None, revoked: Sequence[str]
    ) -> None:
        self.keys.append((room_key, reason))
        self.revoked.append(list(revoked))

    def pairing_changed(self, update: PairingUpdate) -> None:
        del update


async def test_a_rotation_reaches_the_room_then_is_used_and_told() -> None:
    ports, heard = FakePorts(), Heard()
    keys = RoomKeys(ports, heard)
    took, revoked = await keys.rotate(["lost-tablet"])
    new = ports.rekeys[0]
    assert ports.room_key == new and heard.keys == [(new, "rotated")]
    assert took == ["me", "b"] and revoked == heard.revoked[0] == ["lost-tablet"]
    assert ports.windows == [None]  # a code shown before the rotation opens nothing
    assert new != KEY and len(new) == 43


async def test_no_rotation_outside_a_room() -> None:
    ports, heard = FakePorts(in_room=False), Heard()
    with pytest.raises(RuntimeError, match="cannot hear of it"):
        await RoomKeys(ports, heard).rotate()
    assert ports.room_key == KEY and heard.keys == []  # nothing changed


def test_a_rekey_from_the_room_is_taken_once() -> None:
    ports, heard = FakePorts(), Heard()
    keys = RoomKeys(ports, heard)
    keys.rekeyed(Rekey(room_key=KEY))  # the key we have: nothing to do
    keys.rekeyed(Rekey(room_key="n" * 43, revoke=["x"]))
    assert heard.keys == [("n" * 43, "rotated")] and ports.room_key == "n" * 43
    assert heard.revoked == [["x"]] and ports.windows == [None]


def test_a_pairing_window_has_a_fresh_code_a_link_and_the_bounds() -> None:
    ports = FakePorts()
    keys = RoomKeys(ports, Heard())
    info = keys.open_window(ttl_s=60, uses=2)
    (window,) = ports.windows
    assert window is not None and info.code == window.code
    assert window.code.isdigit() and len(window.code) == 6
    assert (window.tries_left, window.uses_left, window.expires_at) == (MAX_TRIES, 2, 160.0)
    assert abs(info.expires_at - keys.wall_ms(160.0)) <= 1
    assert info.token is not None and len(info.token) == 22 and info.token == window.token
    assert info.pair_url == f"http://10.0.0.1:3010/#room=main&pair={info.token}"
    window.token = None  # used: the host is shown no link any more
    assert keys.info(window).pair_url is None
    keys.close_window()
    assert ports.windows[-1] is None


def test_an_open_room_has_no_window() -> None:
    with pytest.raises(RuntimeError, match="open room"):
        RoomKeys(FakePorts(room_key=None), Heard()).open_window(60, 1)


async def test_pairing_tries_the_members_seen_and_takes_the_key() -> None:
    tried: list[tuple[str, int, str]] = []

    async def pair_with(address: str, port: int, room: str, code: Secret, timeout: float) -> str:
        tried.append((address, port, code.value))
        if address == "10.0.0.7":
            raise PairFailed("no window open")
        return "r" * 43

    ports, heard = FakePorts(room_key=None), Heard()
    keys = RoomKeys(ports, heard, pair_with=pair_with)
    keys.start_pairing(Secret("code", "123456"))
    keys.found(["10.0.0.7", "192.0.2.9"], 3010)  # an address off our networks is never tried
    keys.found(["10.0.0.1"], 3010)  # ourselves
    keys.found(["10.0.0.8"], 3011)
    assert keys.paired is not None
    assert await asyncio.wait_for(keys.paired, 2) == "r" * 43
    assert tried == [("10.0.0.7", 3010, "123456"), ("10.0.0.8", 3011, "123456")]
    assert ports.room_key == "r" * 43 and heard.keys == [
        ("r" * 43, None)
    ]  # not told: start_peer answers


async def test_a_wrong_code_from_one_member_does_not_end_the_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A device answering `wrong_code` at once (a fake member) is not asked
    again, and the search goes on to the member that holds the window."""
    monkeypatch.setattr(keys_module, "WRONG_CODE_WAIT_S", 5.0)
    tried: list[str] = []

    async def pair_with(address: str, port: int, room: str, code: Secret, timeout: float) -> str:
        tried.append(address)
        if address == "10.0.0.66":
            raise PairFailed("wrong_code: the confirmation does not hold", final=True)
        return "r" * 43

    ports = FakePorts(room_key=None)
    ports.now = asyncio.get_running_loop().time  # type: ignore[method-assign]
    keys = RoomKeys(ports, Heard(), pair_with=pair_with)
    keys.start_pairing(Secret("code", "123456"))
    keys.found(["10.0.0.66"], 3010)
    await asyncio.sleep(0.05)  # the fake one answered first; the real member shows up later
    keys.found(["10.0.0.8"], 3010)
    assert keys.paired is not None
    assert await asyncio.wait_for(keys.paired, 2) == "r" * 43
    assert tried == ["10.0.0.66", "10.0.0.8"]


async def test_a_wrong_code_ends_the_search_once_every_member_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keys_module, "WRONG_CODE_WAIT_S", 0.2)
    monkeypatch.setattr(keys_module, "RETRY_TARGET_S", 0.05)

    async def pair_with(address: str, port: int, room: str, code: Secret, timeout: float) -> str:
        if address == "10.0.0.9":
            raise PairFailed("pairing_closed: no window")
        raise PairFailed("wrong_code: the confirmation does not hold", final=True)

    ports = FakePorts(room_key=None)
    ports.now = asyncio.get_running_loop().time  # type: ignore[method-assign]
    keys = RoomKeys(ports, Heard(), pair_with=pair_with)
    keys.start_pairing(Secret("code", "000000"))
    keys.found(["10.0.0.7", "10.0.0.9"], 3010)
    assert keys.paired is not None
    started = asyncio.get_running_loop().time()
    with pytest.raises(PairingFailed, match="wrong_code"):
        await asyncio.wait_for(keys.paired, 2)
    assert asyncio.get_running_loop().time() - started < 1.0  # not the whole 20 s


async def test_rendezvous_targets_are_places_to_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_module, "PAIR_TIMEOUT_S", 0.3)
    monkeypatch.setattr(keys_module, "RETRY_TARGET_S", 0.05)

    async def resolve(target: Target) -> list[str]:
        return ["10.0.0.20"]

    async def pair_with(address: str, port: int, room: str, code: Secret, timeout: float) -> str:
        raise PairFailed("pairing_closed: no window")

    ports = FakePorts(room_key=None)
    ports.targets = [parse_target("booth.local:4000")]
    clock = asyncio.get_running_loop().time
    ports.now = clock  # type: ignore[method-assign]
    keys = RoomKeys(ports, Heard(), pair_with=pair_with, resolve=resolve)
    keys.start_pairing(Secret("code", "123456"))
    assert keys.paired is not None
    with pytest.raises(PairingFailed, match=r"10\.0\.0\.20:4000: pairing_closed"):
        await asyncio.wait_for(keys.paired, 2)
    assert ports.resolutions == [("booth.local:4000", ["10.0.0.20"])]
