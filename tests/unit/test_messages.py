"""The Structs round-trip, reject bad input naming the field, and feed the schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from sidecar import contract as m
from sidecar.host.methods import METHODS
from sidecar.host.schema import json_schema, openrpc_document, to_json

ROOT = Path(__file__).resolve().parents[2]

PEER = m.PeerInfo(
    peer_id="6f1c0a52-0000-4000-8000-000000000001",
    name="Stage left ✝",
    peer_type="display",
    display_class="stage",
    started_at=1764110000123,
    is_leader=False,
    connection_state="connected",
)
SIGNAL_PEER = m.SignalPeer(
    peer_id="a", name="Booth", peer_type="controller", display_class=None, started_at=1
)

SAMPLES: list[Any] = [
    PEER,
    m.IceServer(urls=["stun:10.0.0.1:3478"], username="u", credential="c"),
    m.StartPeerParams(name="Booth", peer_type="controller"),
    m.StartPeerParams(
        name="Lobby",
        peer_type="display",
        display_class="lobby",
        signaling_port=0,
        room="main",
        room_key="a long s3cret phrase",
        mesh="full",
        echo=True,
        ice_servers=[m.IceServer(urls="turn:10.0.0.2", username="u", credential="c")],
        interfaces=["10.77.0.1"],
    ),
    m.SendControlMessageParams(payload={"slide": 3, "text": "Ἰησοῦς"}, to=["a", "b"]),
    m.SendResult(message_id="m1", sent_to=["a"]),
    m.LeaderStatus(
        state="follower",
        leader_id="a",
        is_leader=False,
        term=3,
        leader=PEER,
        signaling_url="ws://10.0.0.5:3010",
    ),
    m.PingResult(rtt_ms=0.8),
    m.ConnectedParams(peer=PEER),
    m.DisconnectedParams(peer_id="a", reason="timeout"),
    m.MessageParams(from_="a", message_id="m1", payload=[1, None, "x"], sent_at=5),
    m.LeaderChangedParams(leader_id=None, is_leader=False, term=0),
    m.PeerListChangedParams(peers=[PEER]),
]

SIGNALS: list[m.SignalMessage] = [
    m.Challenge(nonce="n", share="s"),
    m.Register(peer=SIGNAL_PEER, room="default", identity="pk", signature="sig", seq=2),
    m.Sealed(seq=1, box="qz8", nonce="n1", share="s1"),
    m.Registered(leader_id="a", term=1, peers=[SIGNAL_PEER]),
    m.PeerList(leader_id="a", term=2, peers=[]),
    m.Offer(from_="a", to="b", sdp="v=0", link="l1", epoch=1),
    m.Answer(from_="b", to="a", sdp="v=0", link="l1", epoch=1),
    m.Candidate(
        from_="a",
        to="b",
        candidate="candidate:1 1 udp 1 10.0.0.1 5000 typ host",
        sdp_mid="0",
        sdp_mline_index=0,
    ),
    m.Heartbeat(seq=1, term=1),
    m.HeartbeatAck(seq=1, term=1),
    m.Leave(peer_id="a"),
    m.SignalError(code="not_registered", message="register first"),
]

ENVELOPES: list[m.Envelope] = [
    m.ControlEnvelope(id="m1", from_="a", sent_at=1, payload={"cue": "next"}),
    m.PingEnvelope(seq=1, sent_at=2),
    m.PongEnvelope(seq=1, sent_at=2),
    m.ByeEnvelope(),
    m.AckEnvelope(count=3),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_api_types_round_trip(sample: Any) -> None:
    wire = msgspec.json.encode(sample)
    assert msgspec.json.decode(wire, type=type(sample)) == sample


@pytest.mark.parametrize("signal", SIGNALS, ids=lambda s: type(s).__name__)
def test_signaling_messages_round_trip_through_the_tagged_union(signal: m.SignalMessage) -> None:
    wire = msgspec.json.encode(signal)
    assert msgspec.json.decode(wire)["type"]  # the tag is on the wire
    assert m.decode_signal(wire) == signal


@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda s: type(s).__name__)
def test_envelopes_round_trip(envelope: m.Envelope) -> None:
    assert m.decode_envelope(msgspec.json.encode(envelope)) == envelope


def test_python_keyword_fields_use_their_wire_names() -> None:
    wire = msgspec.json.decode(
        msgspec.json.encode(m.MessageParams(from_="a", message_id="m", payload=1, sent_at=0))
    )
    assert "from" in wire and "from_" not in wire


def test_unknown_signal_type_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'bogus'"):
        m.decode_signal(b'{"type":"bogus"}')


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"peer_type": "controller"}, "name"),
        ({"name": "", "peer_type": "controller"}, "name"),
        ({"name": "x" * 65, "peer_type": "controller"}, "name"),
        ({"name": "a\nb", "peer_type": "controller"}, "name"),
        ({"name": "A", "peer_type": "projector"}, "peer_type"),
        ({"name": "A", "peer_type": "display"}, "display_class"),
        ({"name": "A", "peer_type": "controller", "display_class": "stage"}, "display_class"),
        ({"name": "A", "peer_type": "controller", "signaling_port": 70000}, "signaling_port"),
        ({"name": "A", "peer_type": "controller", "signaling_port": "3010"}, "signaling_port"),
        ({"name": "A", "peer_type": "controller", "mesh": "star"}, "mesh"),
        ({"name": "A", "peer_type": "controller", "echo": 1}, "echo"),
        ({"name": "A", "peer_type": "controller", "interfaces": ["10.0.0.256"]}, "interfaces[0]"),
        ({"name": "A", "peer_type": "controller", "ice_servers": [{}]}, "ice_servers[0].urls"),
        ({"name": "A", "peer_type": "controller", "colour": "red"}, "colour"),
        ({"name": "A", "peer_type": "controller", "room": "𝄞" * 63}, "room"),  # 252 bytes
    ],
)
def test_bad_start_peer_params_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(m.ParamError) as caught:
        m.convert_params(params, m.StartPeerParams)
    assert caught.value.field == field
    assert caught.value.reason


def test_the_longest_room_name_that_fits_a_txt_string_is_accepted() -> None:
    room = "𝄞" * 62 + "ab"  # 250 bytes as UTF-8
    params = {"name": "A", "peer_type": "controller", "room": room}
    assert m.convert_params(params, m.StartPeerParams).room == room


def test_positional_params_are_refused() -> None:
    with pytest.raises(m.ParamError) as caught:
        m.convert_params(["Booth", "controller"], m.StartPeerParams)
    assert caught.value.field == "params"


def test_defaults_of_start_peer_follow_api_md() -> None:
    p = m.convert_params({"name": "Booth", "peer_type": "controller"}, m.StartPeerParams)
    assert (p.signaling_port, p.room, p.room_key, p.mesh, p.echo, p.ice_servers, p.interfaces) == (
        3010,
        "default",
        None,
        "controllers",
        False,
        [],
        None,
    )


def test_payload_size_counts_serialized_utf8_bytes() -> None:
    assert m.payload_size("é") == len('"é"'.encode())


def test_schema_names_every_type() -> None:
    defs = json_schema()["$defs"]
    expected = {type(s).__name__ for s in SAMPLES + SIGNALS + ENVELOPES}
    expected |= {spec.params.__name__ for spec in METHODS}
    expected |= {"PeerType", "DisplayClass", "ConnectionState", "SignalMessage", "Envelope"}
    assert expected <= set(defs)


def test_openrpc_lists_every_method_with_its_errors() -> None:
    doc = openrpc_document()
    methods = {entry["name"]: entry for entry in doc["methods"]}
    assert set(methods) == {
        "start_peer",
        "send_control_message",
        "get_connected_peers",
        "get_leader_status",
        "get_state",
        "open_pairing",
        "close_pairing",
        "rotate_room_key",
        "ping_peer",
        "stop_peer",
    }
    start = {p["name"]: p for p in methods["start_peer"]["params"]}
    assert start["name"]["required"] and not start["room"]["required"]
    assert {e["code"] for e in methods["send_control_message"]["errors"]} == {
        -32602,
        -32001,
        -32003,
        -32004,
    }
    assert [n["name"] for n in doc["x-notifications"]] == list(m.NOTIFICATIONS)


def test_committed_openrpc_document_is_current() -> None:
    committed = (ROOT / "docs" / "openrpc.json").read_text(encoding="utf-8")
    assert committed == to_json(openrpc_document()), (
        "docs/openrpc.json is stale: "
        "run `uv run mobile-worship-sidecar openrpc > docs/openrpc.json`"
    )


def test_version_matches_pyproject() -> None:
    import tomllib

    from sidecar import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert __version__ == project["project"]["version"]
