"""A room of real sidecar processes in the test lab, driven only through stdio."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab import Host, Lab
from tests.sidecar_proc import SidecarClient

CONTROLLER: dict[str, Any] = {"name": "Booth", "peer_type": "controller"}


def display(name: str, display_class: str = "audience") -> dict[str, Any]:
    return {"name": name, "peer_type": "display", "display_class": display_class}


@dataclass
class LabPeer:
    host: Host
    client: SidecarClient
    params: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def peer_id(self) -> str:
        return str(self.info["peer_id"])

    async def start(self) -> dict[str, Any]:
        self.info = await self.client.call("start_peer", self.params, timeout=35)
        return self.info

    async def status(self) -> dict[str, Any]:
        return dict(await self.client.call("get_leader_status"))


@dataclass
class Room:
    lab: Lab
    logs: Path
    peers: list[LabPeer] = field(default_factory=list)

    async def spawn(self, params: dict[str, Any], **how: Any) -> LabPeer:
        """A sidecar on a new host, answering (`how`: see SidecarClient.spawn_in)."""
        host = self.lab.add_host()
        client = await SidecarClient.spawn_in(host, log=self.logs / f"{host.name}.log", **how)
        # Answering: what follows measures the peer, not the interpreter's start.
        await client.call("get_leader_status", timeout=30)
        peer = LabPeer(host, client, params)
        self.peers.append(peer)
        return peer

    async def start(self, *params: dict[str, Any]) -> list[LabPeer]:
        """Spawn one sidecar per params, then start them all at once."""
        peers = [await self.spawn(p) for p in params]
        await asyncio.gather(*(p.start() for p in peers))
        return peers

    async def close(self) -> None:
        await asyncio.gather(*(p.client.aclose() for p in self.peers))


async def until(
    clients: list[LabPeer], condition: Callable[[LabPeer], bool], timeout: float
) -> float:
    """Wait until `condition` holds for every peer; returns the seconds it took."""
    started = time.monotonic()
    await asyncio.gather(
        *(p.client.wait_until(functools.partial(condition, p), timeout) for p in clients)
    )
    return time.monotonic() - started


async def agree_on(peers: list[LabPeer], leader: LabPeer, timeout: float) -> float:
    """Every peer names `leader` as leader (notifications), checked by status."""
    took = await until(peers, lambda p: p.client.leader_id == leader.peer_id, timeout)
    statuses = await asyncio.gather(*(p.status() for p in peers))
    assert [s["is_leader"] for s in statuses] == [p is leader for p in peers]
    assert {s["leader_id"] for s in statuses} == {leader.peer_id}
    assert len({s["term"] for s in statuses}) == 1, statuses
    return took


def connected_ids(peer: LabPeer) -> set[str]:
    """Peers with an open channel, from webrtc:connected / disconnected."""
    open_now: set[str] = set()
    for _, note in peer.client.history:
        if note["method"] == "webrtc:connected":
            open_now.add(note["params"]["peer"]["peer_id"])
        elif note["method"] == "webrtc:disconnected":
            open_now.discard(note["params"]["peer_id"])
    return open_now


async def connected(peers: list[LabPeer], expected: dict[str, set[str]], timeout: float) -> None:
    """Every peer's open channels are exactly `expected[peer_id]` (ids)."""
    await until(peers, lambda p: connected_ids(p) == expected[p.peer_id], timeout)
    for peer in peers:
        listed = {p["peer_id"] for p in await peer.client.call("get_connected_peers")}
        assert listed == expected[peer.peer_id]


def connected_at(peer: LabPeer, other: LabPeer) -> float:
    """When `peer`'s host heard that its channel to `other` opened (the first time)."""
    return next(
        at
        for at, n in peer.client.history
        if n["method"] == "webrtc:connected" and n["params"]["peer"]["peer_id"] == other.peer_id
    )


def messages(peer: LabPeer, sender: LabPeer | None = None) -> list[dict[str, Any]]:
    return [
        note["params"]
        for _, note in peer.client.history
        if note["method"] == "webrtc:message"
        and (sender is None or note["params"]["from"] == sender.peer_id)
    ]


def star(controller: LabPeer, displays: list[LabPeer]) -> dict[str, set[str]]:
    """The default mesh: the controller connected to every display, each display to it."""
    return {
        controller.peer_id: {d.peer_id for d in displays},
        **{d.peer_id: {controller.peer_id} for d in displays},
    }


def disconnects(peer: LabPeer) -> list[dict[str, Any]]:
    return [n["params"] for _, n in peer.client.history if n["method"] == "webrtc:disconnected"]


def leader_named_since(peer: LabPeer, leader: LabPeer, since: float) -> bool:
    return any(
        at >= since
        and n["method"] == "webrtc:leader_changed"
        and n["params"]["leader_id"] == leader.peer_id
        for at, n in peer.client.history
    )


def open_fds(peer: LabPeer) -> int:
    return len(os.listdir(f"/proc/{peer.client.process.pid}/fd"))


class CueStream:
    """Cues from one peer to others at a steady rate, numbered, until stopped."""

    def __init__(self, sender: LabPeer, to: list[LabPeer], every_s: float = 0.05) -> None:
        self.sender, self.to, self.every_s = sender, to, every_s
        self.sent: list[int] = []
        self.failures: list[dict[str, Any]] = []
        # What each target had from the sender before: this stream counts after it.
        self._before = {p.peer_id: len(messages(p, sender)) for p in to}
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def received(self, peer: LabPeer) -> list[Any]:
        """The payloads of this stream that `peer` received so far."""
        return [m["payload"] for m in messages(peer, self.sender)[self._before[peer.peer_id] :]]

    async def _run(self) -> None:
        n = 0
        ids = [p.peer_id for p in self.to]
        while not self._stop.is_set():
            answer = await self.sender.client.call_raw(
                "send_control_message", {"payload": n, "to": ids}, timeout=15
            )
            if "error" in answer:
                self.failures.append(answer["error"])
            else:
                self.sent.append(n)
            n += 1
            await asyncio.sleep(self.every_s)  # a cue rate, not synchronisation

    async def flowing(self, more: int, timeout: float) -> None:
        """`more` further cues reach every target (the path carries traffic now)."""
        counts = {p.peer_id: len(self.received(p)) for p in self.to}

        def grown(peer: LabPeer) -> Callable[[], bool]:
            return lambda: len(self.received(peer)) >= counts[peer.peer_id] + more

        await asyncio.gather(*(p.client.wait_until(grown(p), timeout) for p in self.to))

    async def stop(self) -> None:
        self._stop.set()
        await self._task

    async def all_arrived(self, timeout: float) -> None:
        """Every cue sent reached every target, once each and in order."""
        await self.stop()

        def complete(peer: LabPeer) -> Callable[[], bool]:
            return lambda: len(self.received(peer)) >= len(self.sent)

        await asyncio.gather(*(p.client.wait_until(complete(p), timeout) for p in self.to))
        for peer in self.to:
            got = self.received(peer)
            assert got == self.sent, f"{peer.host.name}: {len(got)} of {len(self.sent)}"
        assert not self.failures


async def start_dual_homed(room: Room, *params: dict[str, Any]) -> list[LabPeer]:
    """Sidecars on two networks each (eth0 on the lab's, eth1 on a second one), started at once."""
    peers = [await room.spawn(p) for p in params]
    for peer in peers:
        peer.host.add_interface(1)
    await asyncio.gather(*(p.start() for p in peers))
    return peers


async def suspend(peer: LabPeer, seconds: float) -> float:
    """Stop the peer's process (SIGSTOP, a laptop's sleep) for `seconds`, wake it
    (SIGCONT) and return when it woke."""
    pid = peer.client.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)  # the sleep itself
    finally:
        os.kill(pid, signal.SIGCONT)
    return time.monotonic()


def notes(peer: LabPeer, method: str) -> list[dict[str, Any]]:
    """The params of every `method` notification `peer`'s host heard, in order."""
    return [n["params"] for _, n in peer.client.history if n["method"] == method]


async def keyed_controller(room: Room, setup_s: float = 10.0) -> tuple[LabPeer, str]:
    """A controller that creates the room's key: the key its host was given."""
    (ctrl,) = await room.start({**CONTROLLER, "create_room_key": True})
    (created,) = notes(ctrl, "webrtc:room_key")
    assert created["reason"] == "created" and len(created["room_key"]) >= 43
    await ctrl.client.wait_until(lambda: ctrl.client.leader_id == ctrl.peer_id, setup_s)
    return ctrl, str(created["room_key"])


async def via(peer: LabPeer, peer_id: str) -> str | None:
    """How `peer`'s channel to `peer_id` goes (`direct`, `relay`), or None."""
    for info in await peer.client.call("get_connected_peers"):
        if info["peer_id"] == peer_id:
            return str(info["via"])
    return None


def page_url(peer: LabPeer, **fragment: str) -> str:
    """The display page `peer` serves, with `fragment` (name, class, key, echo…)."""
    return f"http://{peer.host.ip}:3010/#" + "&".join(f"{k}={v}" for k, v in fragment.items())


async def two_booths(room: Room, setup_s: float) -> tuple[LabPeer, LabPeer]:
    """Two controllers in one room: (the leader, the one that succeeds it)."""
    first, second = await room.start(CONTROLLER, {**CONTROLLER, "name": "Second booth"})
    leader = min([first, second], key=lambda p: (p.info["started_at"], p.peer_id))
    survivor = second if leader is first else first
    await agree_on([first, second], leader, setup_s)
    return leader, survivor
