"""Retained state (docs/api.md, "Retained state"): real sidecars, one per namespace.

A display that joins mid-service has the room's current values at once, from
whichever peers it connects to, and two halves of a partition agree again
once it heals.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

from tests.browser.page import Pages
from tests.e2e.room import (
    CONTROLLER,
    LabPeer,
    Room,
    connected,
    connected_at,
    connected_ids,
    display,
    messages,
    star,
    until,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

SETUP_S = 10.0
STATE_S = 1.0
"""The issue's bound: every key within 1 s of the channel opening (bench/ measures it)."""

KEYS = {
    "slide": {"song": "Amazing Grace", "verse": 2},
    "blackout": False,
    "lower-third": "Pastor Ann — Welcome",
}


def states(peer: LabPeer) -> list[tuple[float, dict[str, Any]]]:
    return [(at, n["params"]) for at, n in peer.client.history if n["method"] == "webrtc:state"]


def state_map(peer: LabPeer) -> dict[str, Any]:
    """The map as the host sees it from webrtc:state alone (what the hook keeps)."""
    seen: dict[str, Any] = {}
    for _, entry in states(peer):
        if entry["value"] is None:
            seen.pop(entry["key"], None)
        else:
            seen[entry["key"]] = entry["value"]
    return seen


def cut_off(gone: set[str], peer: LabPeer) -> bool:
    return not connected_ids(peer) & gone


async def get_state(peer: LabPeer) -> dict[str, Any]:
    return {e["key"]: e["value"] for e in await peer.client.call("get_state")}


async def set_keys(peer: LabPeer, keys: dict[str, Any], **how: Any) -> None:
    for key, value in keys.items():
        await peer.client.call("send_control_message", {"payload": value, "retain": key, **how})


async def test_a_display_that_joins_late_has_the_state_before_any_later_message(
    room: Room,
) -> None:
    ctrl, d1 = await room.start(CONTROLLER, display("Audience"))
    await connected([ctrl, d1], star(ctrl, [d1]), SETUP_S)
    await set_keys(ctrl, KEYS)
    await set_keys(ctrl, {"countdown": 10}, to=[])  # a value and no message
    await set_keys(ctrl, {"countdown": None})  # ... cleared again
    await until([d1], lambda p: len(messages(p)) == len(KEYS) + 1, 5)
    assert [m["payload"] for m in messages(d1)] == [*KEYS.values(), None]  # none for `to: []`
    assert state_map(d1) == KEYS

    late = await room.spawn(display("Lobby", "lobby"))
    await late.start()
    await connected([ctrl, d1, late], star(ctrl, [d1, late]), SETUP_S)
    # The controller sends the moment it sees the channel: the values come first.
    await ctrl.client.call("send_control_message", {"payload": "after join", "to": late.peer_id})
    await late.client.wait_until(lambda: len(messages(late)) == 1, 5)
    opened = connected_at(late, ctrl)
    first_message = next(at for at, n in late.client.history if n["method"] == "webrtc:message")
    got = states(late)
    assert {e["key"]: e["value"] for _, e in got} == KEYS  # each key once; no cleared key shown
    assert all(opened <= at < first_message for at, _ in got)
    assert max(at for at, _ in got) - opened <= STATE_S
    assert {e["origin"] for _, e in got} == {ctrl.peer_id}
    assert await get_state(late) == await get_state(ctrl) == await get_state(d1) == KEYS


async def test_a_retained_message_to_one_display_is_the_value_for_every_peer(room: Room) -> None:
    ctrl, aud, stage = await room.start(CONTROLLER, display("Audience"), display("Stage", "stage"))
    await connected([ctrl, aud, stage], star(ctrl, [aud, stage]), SETUP_S)
    await set_keys(ctrl, {"stage-note": "two more minutes"}, display_class="stage")
    await until([aud, stage], lambda p: state_map(p) == {"stage-note": "two more minutes"}, 5)
    await stage.client.wait_until(lambda: len(messages(stage)) == 1, 5)  # it follows its state
    assert [m["payload"] for m in messages(stage)] == ["two more minutes"]
    assert messages(aud) == []
    # The target's host has the value before the message that carries it.
    kinds = [n["method"] for _, n in stage.client.history if n["method"].startswith("webrtc:")]
    assert kinds.index("webrtc:state") < kinds.index("webrtc:message")
    # A display writes: with the default mesh it is not paired with the other
    # display, and the controller passes the value on.
    await set_keys(aud, {"audience-ready": True})
    await until([ctrl, stage], lambda p: state_map(p).get("audience-ready") is True, 5)
    # Beyond the bounds: a clear reason, nothing changed.
    bad = await ctrl.client.call_raw("send_control_message", {"payload": 1, "retain": "x" * 129})
    assert bad["error"]["code"] == -32602 and bad["error"]["data"]["field"] == "retain"


@pytest.mark.parametrize("mesh", ["controllers", "full"])
async def test_the_state_outlives_the_controller_that_set_it(room: Room, mesh: str) -> None:
    """Killed, the writer cannot give a late display the state: the room does
    (the second controller with the default mesh, the other display with a full one)."""
    how = {"mesh": mesh}
    peers = [{**CONTROLLER, **how}, {**display("Audience"), **how}]
    if mesh == "controllers":
        peers.append({**CONTROLLER, "name": "Second booth", **how})
    writer, *rest = await room.start(*peers)
    others = {p.peer_id for p in rest}
    await until(rest, lambda p: writer.peer_id in connected_ids(p), SETUP_S)
    await set_keys(writer, KEYS)
    await until(rest, lambda p: state_map(p) == KEYS, 5)
    writer.client.process.kill()
    await until(rest, lambda p: writer.peer_id not in connected_ids(p), SETUP_S)

    late = await room.spawn({**display("Lobby", "lobby"), **how})
    await late.start()
    await late.client.wait_until(lambda: connected_ids(late) & others != set(), SETUP_S)
    await late.client.wait_until(lambda: state_map(late) == KEYS, STATE_S * 2)
    assert await get_state(late) == KEYS
    assert {e["origin"] for _, e in states(late)} == {writer.peer_id}


async def test_with_no_controller_a_screen_switched_on_gets_the_state_from_the_leader(
    room: Room, pages: Pages
) -> None:
    """The booth laptop restarts: the displays left elect one of them, and a sidecar
    display or a browser switched on meanwhile gets the state from it (mesh
    `controllers`: a pair with the leader keeps a channel)."""
    ctrl, aud, stage = await room.start(CONTROLLER, display("Audience"), display("Stage", "stage"))
    await connected([ctrl, aud, stage], star(ctrl, [aud, stage]), SETUP_S)
    await set_keys(ctrl, KEYS)
    await until([aud, stage], lambda p: state_map(p) == KEYS, 5)
    ctrl.client.process.kill()
    await until([aud, stage], lambda p: p.client.leader_id in (aud.peer_id, stage.peer_id), SETUP_S)
    leader = aud if aud.client.leader_id == aud.peer_id else stage

    late = await room.spawn(display("Lobby", "lobby"))
    await late.start()
    await late.client.wait_until(lambda: leader.peer_id in connected_ids(late), SETUP_S)
    await late.client.wait_until(lambda: state_map(late) == KEYS, STATE_S * 2)
    assert await get_state(late) == KEYS

    page = await pages.open(room.lab.add_host("tv"), f"http://{leader.host.ip}:3010/#name=TV")
    await page.wait("return document.querySelectorAll('dd[data-key]').length === 3;", SETUP_S)
    shown = await page.eval("return window.__mw.peer.call('get_state');")
    assert {e["key"]: e["value"] for e in shown} == KEYS


async def test_two_halves_of_a_partition_converge_on_the_later_write(room: Room) -> None:
    c1, d1, c2, d2 = await room.start(
        CONTROLLER,
        display("Audience"),
        {**CONTROLLER, "name": "Second booth"},
        display("Stage", "stage"),
    )
    everyone = [c1, d1, c2, d2]
    await until(everyone, lambda p: len(connected_ids(p)) >= 2, SETUP_S)
    await set_keys(c1, {"slide": "before the split"})
    await until(everyone, lambda p: state_map(p) == {"slide": "before the split"}, 5)

    room.lab.partition([c2.host, d2.host])
    halves = [[c1, d1], [c2, d2]]
    for half, other in zip(halves, reversed(halves), strict=True):
        await until(half, functools.partial(cut_off, {p.peer_id for p in other}), SETUP_S)
    # Each half moves on: the same key, and one key that only one half sets.
    await set_keys(c1, {"slide": "one", "song": "How Great Thou Art"})
    await set_keys(c2, {"slide": "two"})
    await until(halves[0], lambda p: state_map(p).get("slide") == "one", 5)
    await until(halves[1], lambda p: state_map(p).get("slide") == "two", 5)
    writes = {e["origin"]: e for _, e in states(c1) + states(c2) if e["key"] == "slide"}
    latest = max(
        (writes[c1.peer_id], writes[c2.peer_id]),
        key=lambda e: (e["version"]["time"], e["version"]["counter"], e["origin"]),
    )

    room.lab.heal_partition()
    expected = {"slide": latest["value"], "song": "How Great Thou Art"}
    await until(everyone, lambda p: state_map(p) == expected, SETUP_S * 2)
    maps = await asyncio.gather(*(p.client.call("get_state") for p in everyone))
    assert all(m == maps[0] for m in maps)
    assert {e["key"]: e["value"] for e in maps[0]} == expected
    slide = next(e for e in maps[0] if e["key"] == "slide")
    assert slide["origin"] == latest["origin"] and slide["version"] == latest["version"]
