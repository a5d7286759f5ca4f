"""The wire protocol's shared vectors (tests/vectors/wire.json): what the
sidecar writes is what the vectors say, byte for byte. The TypeScript web
peer checks the same file (frontend-hook/test/wire.test.ts), so both sides
of a browser-to-sidecar channel agree."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.contract import decode_envelope, decode_signal
from sidecar.core.identity import Identity, registration_statement, verify
from sidecar.core.roomkey import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Sealer, sdp_auth, session_key
from sidecar.core.signaling import encode_signal

WIRE = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "wire.json").read_text(encoding="utf-8")
)


def test_identity_peer_id_and_registration_signature() -> None:
    v = WIRE["identity"]
    me = Identity(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["secret_key"])))
    assert (me.public_key, me.peer_id) == (v["public_key"], v["peer_id"])
    statement = v["statement"].encode()
    assert me.sign(statement) == v["signature"]  # Ed25519 is deterministic
    nonce, peer_id, room, seq = v["statement"].split("|")[1:]
    assert registration_statement(nonce, peer_id, room, int(seq)) == statement
    assert verify(v["public_key"], statement, v["signature"])


def test_session_key_and_sealed_frames_both_ways() -> None:
    v = WIRE["sealing"]
    key = session_key(v["room_key"], v["server_nonce"], v["client_nonce"], v["room"])
    assert key.hex() == v["session_key"]
    client = Sealer(key, CLIENT_TO_SERVER, SERVER_TO_CLIENT)
    server = Sealer(key, SERVER_TO_CLIENT, CLIENT_TO_SERVER)
    for frame in v["client_frames"]:
        assert client.seal(frame["body"]) == (frame["seq"], frame["mac"])
        assert server.open(frame["seq"], frame["body"], frame["mac"])
    for frame in v["server_frames"]:
        assert server.seal(frame["body"]) == (frame["seq"], frame["mac"])
        assert client.open(frame["seq"], frame["body"], frame["mac"])


def test_sdp_macs() -> None:
    for v in WIRE["sdp_auth"]:
        mac = sdp_auth(
            v["room_key"], v["kind"], v["from"], v["to"], v["link"], v["epoch"], v["sdp"]
        )
        assert mac == v["auth"]


def test_every_frame_and_envelope_decodes_and_encodes_back_unchanged() -> None:
    for text in WIRE["frames"]:
        assert encode_signal(decode_signal(text)) == text
    for text in WIRE["envelopes"]:
        assert msgspec.json.encode(decode_envelope(text)).decode() == text
