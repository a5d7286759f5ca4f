"""The method table of the stdio API: one entry per docs/api.md method.

Each entry names its params Struct, its result type and the errors it can
answer, so the dispatcher (`sidecar.host.rpc`) and the OpenRPC document
(`sidecar.host.schema`) are built from the same declaration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from msgspec import Struct

from sidecar.contract import (
    LeaderStatus,
    NoParams,
    OpenPairingParams,
    PairingWindow,
    PeerInfo,
    PingPeerParams,
    PingResult,
    RotateRoomKeyParams,
    RotationResult,
    SendControlMessageParams,
    SendResult,
    StartPeerParams,
    StateEntry,
)
from sidecar.host import errors
from sidecar.host.service import Service


async def _start_peer(service: Service, p: Any) -> Any:
    return await service.start(p)


async def _stop_peer(service: Service, _: Any) -> Any:
    await service.stop()
    return None


async def _send_control_message(service: Service, p: Any) -> Any:
    return await service.send(p)


async def _get_connected_peers(service: Service, _: Any) -> Any:
    return service.connected_peers()


async def _get_leader_status(service: Service, _: Any) -> Any:
    return service.leader_status()


async def _get_state(service: Service, _: Any) -> Any:
    return service.state()


async def _open_pairing(service: Service, p: Any) -> Any:
    return service.open_pairing(p)


async def _close_pairing(service: Service, _: Any) -> Any:
    service.close_pairing()
    return None


async def _rotate_room_key(service: Service, p: Any) -> Any:
    return await service.rotate_room_key(p)


async def _ping_peer(service: Service, p: Any) -> Any:
    return await service.ping(p.peer_id)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    summary: str
    params: type[Struct]
    result: Any  # a type msgspec can describe in JSON Schema
    errors: tuple[int, ...]
    call: Callable[[Service, Any], Awaitable[Any]]
    bounded_inside: bool = False
    """True when the call cannot wait without a bound of its own; the others
    run under the dispatcher's METHOD_TIMEOUT_S (which costs a timer a call)."""


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "start_peer",
        "Join the room on the local network; returns this peer.",
        StartPeerParams,
        PeerInfo,
        (errors.INVALID_PARAMS, errors.ALREADY_STARTED, errors.NOT_STARTED, errors.PAIRING_FAILED),
        _start_peer,
    ),
    MethodSpec(
        "send_control_message",
        "Send a JSON payload over the data channels to all, some, or a display class.",
        SendControlMessageParams,
        SendResult,
        (
            errors.INVALID_PARAMS,
            errors.NOT_STARTED,
            errors.PEER_NOT_CONNECTED,
            errors.PAYLOAD_TOO_LARGE,
        ),
        _send_control_message,
        bounded_inside=True,  # waits only behind a send window, for SEND_WAIT_S at most
    ),
    MethodSpec(
        "get_connected_peers",
        "The peers with an open data channel.",
        NoParams,
        list[PeerInfo],
        (errors.INVALID_PARAMS,),
        _get_connected_peers,
        bounded_inside=True,  # never waits
    ),
    MethodSpec(
        "get_leader_status",
        "Election state, the leader, the term and the signaling URL.",
        NoParams,
        LeaderStatus,
        (errors.INVALID_PARAMS,),
        _get_leader_status,
        bounded_inside=True,  # never waits
    ),
    MethodSpec(
        "get_state",
        "The room's retained state: the current value of each key, as this peer holds it.",
        NoParams,
        list[StateEntry],
        (errors.INVALID_PARAMS,),
        _get_state,
        bounded_inside=True,  # never waits
    ),
    MethodSpec(
        "open_pairing",
        "Open a pairing window of this keyed room: a six-digit code a new device starts with.",
        OpenPairingParams,
        PairingWindow,
        (errors.INVALID_PARAMS, errors.NOT_STARTED, errors.NOT_KEYED),
        _open_pairing,
        bounded_inside=True,  # never waits
    ),
    MethodSpec(
        "close_pairing",
        "Close this device's pairing window, if one is open.",
        NoParams,
        None,
        (errors.INVALID_PARAMS, errors.NOT_STARTED),
        _close_pairing,
        bounded_inside=True,  # never waits
    ),
    MethodSpec(
        "rotate_room_key",
        "Give every member present but the revoked a new room key; the old one admits"
        " nobody any more, and the revoked are shut out.",
        RotateRoomKeyParams,
        RotationResult,
        (errors.INVALID_PARAMS, errors.NOT_STARTED, errors.NOT_KEYED, errors.PEER_NOT_CONNECTED),
        _rotate_room_key,
        bounded_inside=True,  # waits for the leader's answer, ROTATE_TIMEOUT_S at most
    ),
    MethodSpec(
        "ping_peer",
        "Round-trip time to a connected peer, measured over the data channel.",
        PingPeerParams,
        PingResult,
        (errors.INVALID_PARAMS, errors.NOT_STARTED, errors.PEER_NOT_CONNECTED),
        _ping_peer,
    ),
    MethodSpec(
        "stop_peer",
        "Leave the network as on exit, but keep the process; start_peer may follow.",
        NoParams,
        None,
        (errors.INVALID_PARAMS,),
        _stop_peer,
    ),
)
