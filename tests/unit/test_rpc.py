"""The JSON-RPC dispatcher, in process: every bad-input case of docs/api.md and concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from sidecar.contract import NoParams, PingPeerParams
from sidecar.host.methods import METHODS, MethodSpec
from sidecar.host.rpc import RpcServer
from sidecar.host.service import Service
from sidecar.host.stdio import Oversize


def make_server(methods: tuple[MethodSpec, ...] = METHODS) -> tuple[RpcServer, list[Any]]:
    written: list[Any] = []
    server: RpcServer
    peer = Service(notify=lambda method, params, soon=False: server.notify(method, params))
    server = RpcServer(
        peer, lambda line, soon=False: written.append(msgspec.json.decode(line)), methods
    )
    return server, written


def wire(response: Any) -> Any:
    """What the host reads: the answer as it goes over stdout."""
    return msgspec.json.decode(msgspec.json.encode(response))


async def answer(raw: str | bytes | Oversize) -> Any:
    server, _ = make_server()
    return wire(await server.answer(raw.encode() if isinstance(raw, str) else raw))


def req(method: str, params: Any = None, id_: Any = 1) -> str:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        body["params"] = params
    return msgspec.json.encode(body).decode()


def code_of(response: Any) -> int:
    return int(response["error"]["code"])


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{", -32700),
        ("nope", -32700),
        ('{"jsonrpc":"2.0","method":"get_leader_status","id":1} trailing', -32700),
        (b'{"jsonrpc":"2.0","method":"get_leader_status","id":1\x00}', -32700),
        (b'{"jsonrpc":"2.0","method":"get_leader_status\xff","id":1}', -32700),
        (b"\xc3\x28", -32700),
        ("[" * 100_000 + "]" * 100_000, -32700),
        ("[]", -32600),
        ("1", -32600),
        ('"text"', -32600),
        ("null", -32600),
        ('{"method":"get_leader_status","id":1}', -32600),
        ('{"jsonrpc":"1.0","method":"get_leader_status","id":1}', -32600),
        ('{"jsonrpc":"2.0","method":7,"id":1}', -32600),
        ('{"jsonrpc":"2.0","method":"get_leader_status","params":"x","id":1}', -32600),
        ('{"jsonrpc":"2.0","method":"get_leader_status","id":{"a":1}}', -32600),
        ('{"jsonrpc":"2.0","method":"get_leader_status","id":true}', -32600),
        (req("no_such_method"), -32601),
        (req("start_peer", {"name": "A"}), -32602),
        (req("start_peer", ["A", "controller"]), -32602),
        (req("get_leader_status", {"verbose": True}), -32602),
        (req("send_control_message", {"payload": 1, "to": 5}), -32602),
        (req("send_control_message", {"payload": 1}), -32001),
        (req("ping_peer", {"peer_id": "x"}), -32001),
    ],
)
async def test_bad_input_gets_its_error_code(raw: str | bytes, code: int) -> None:
    response = await answer(raw)
    assert response["jsonrpc"] == "2.0"
    assert code_of(response) == code
    assert response["error"]["message"]


async def test_oversize_line_is_an_invalid_request_with_null_id() -> None:
    response = await answer(Oversize(5_000_000))
    assert code_of(response) == -32600 and response["id"] is None
    assert "5000000 bytes" in response["error"]["data"]["reason"]


async def test_parse_error_has_null_id() -> None:
    assert (await answer('{"id": 4,'))["id"] is None


async def test_invalid_request_keeps_a_readable_id() -> None:
    assert (await answer('{"jsonrpc":"1.0","method":"x","id":"abc"}'))["id"] == "abc"


async def test_invalid_params_data_names_the_field_and_reason() -> None:
    response = await answer(req("start_peer", {"name": "A", "peer_type": "display"}))
    assert response["error"]["data"] == {
        "field": "display_class",
        "reason": "required when peer_type is display",
    }


async def test_escaped_nul_inside_a_string_is_valid_json_but_a_bad_name() -> None:
    response = await answer(req("start_peer", {"name": "a\u0000b", "peer_type": "controller"}))
    assert code_of(response) == -32602
    assert response["error"]["data"]["field"] == "name"


async def test_notification_gets_no_answer_even_when_it_fails() -> None:
    assert await answer('{"jsonrpc":"2.0","method":"get_leader_status"}') is None
    assert await answer('{"jsonrpc":"2.0","method":"no_such_method"}') is None


async def test_blank_line_is_ignored() -> None:
    assert await answer("   ") is None


async def test_batch_answers_each_member_and_skips_notifications() -> None:
    raw = (
        "["
        + ",".join(
            [
                req("get_leader_status", id_="a"),
                '{"jsonrpc":"2.0","method":"get_leader_status"}',
                "1",
                req("nope", id_="b"),
            ]
        )
        + "]"
    )
    response = await answer(raw)
    assert [r.get("id") for r in response] == ["a", None, "b"]
    assert response[0]["result"]["state"] == "idle"
    assert code_of(response[1]) == -32600
    assert code_of(response[2]) == -32601


async def test_batch_of_notifications_gets_no_answer() -> None:
    assert await answer('[{"jsonrpc":"2.0","method":"get_leader_status"}]') is None


async def test_idle_status_and_empty_peer_list_before_start() -> None:
    status = (await answer(req("get_leader_status")))["result"]
    assert status == {
        "state": "idle",
        "leader_id": None,
        "is_leader": False,
        "term": 0,
        "leader": None,
        "signaling_url": None,
        "addresses": [],
        "keyed": False,
        "found_by": [],
        "room_addresses": [],
        "rendezvous": [],
        "pairing": None,
        "display_url": None,
    }
    assert (await answer(req("get_connected_peers", [])))["result"] == []


async def test_stop_peer_before_start_is_harmless() -> None:
    assert (await answer(req("stop_peer")))["result"] is None


async def test_slow_request_does_not_hold_back_a_fast_one() -> None:
    release = asyncio.Event()
    order: list[str] = []

    async def slow(_service: Service, _params: Any) -> Any:
        await release.wait()
        order.append("slow")
        return "slow"

    async def fast(_service: Service, _params: Any) -> Any:
        order.append("fast")
        return "fast"

    methods = (
        MethodSpec("slow", "", NoParams, str, (), slow),
        MethodSpec("fast", "", PingPeerParams, str, (), fast),
    )
    server, written = make_server(methods)
    slow_task = asyncio.create_task(server.handle_line(req("slow", id_=1).encode()))
    await server.handle_line(req("fast", {"peer_id": "p"}, id_=2).encode())
    assert written == [{"jsonrpc": "2.0", "result": "fast", "id": 2}]
    release.set()
    await asyncio.wait_for(slow_task, 5)
    assert order == ["fast", "slow"]
    assert written[1] == {"jsonrpc": "2.0", "result": "slow", "id": 1}


async def test_requests_start_in_the_order_read_even_inside_a_batch() -> None:
    """A batch read before a single request is handled before it (sends keep order)."""
    started: list[str] = []

    async def record(_service: Service, params: Any) -> Any:
        started.append(params.peer_id)
        return None

    server, _ = make_server((MethodSpec("send", "", PingPeerParams, None, (), record),))
    batch = "[" + ",".join(req("send", {"peer_id": p}, id_=p) for p in ("a1", "a2")) + "]"
    tasks = [  # as the app does: one task per line, created in input order
        asyncio.create_task(server.handle_line(batch.encode())),
        asyncio.create_task(server.handle_line(req("send", {"peer_id": "b"}, id_="b").encode())),
    ]
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert started == ["a1", "a2", "b"]


async def test_a_crashing_method_is_an_internal_error_and_the_server_lives() -> None:
    async def broken(_service: Service, _params: Any) -> Any:
        raise RuntimeError("boom")

    server, _ = make_server((MethodSpec("broken", "", NoParams, None, (), broken), *METHODS))
    assert code_of(wire(await server.answer(req("broken").encode()))) == -32603
    assert wire(await server.answer(req("get_leader_status").encode()))["result"]["state"] == "idle"


async def test_notifications_are_single_json_lines() -> None:
    from sidecar.contract import LeaderChangedParams

    server, written = make_server()
    server.notify(
        "webrtc:leader_changed", LeaderChangedParams(leader_id="a", is_leader=True, term=2)
    )
    assert written == [
        {
            "jsonrpc": "2.0",
            "method": "webrtc:leader_changed",
            "params": {"leader_id": "a", "is_leader": True, "term": 2},
        }
    ]
