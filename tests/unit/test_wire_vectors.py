"""The wire protocol's shared vectors (tests/vectors/wire.json): what the
sidecar writes is what the vectors say, byte for byte. The TypeScript web
peer checks the same file (frontend-hook/test/wire.test.ts), so both sides
of a browser-to-sidecar channel agree."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.contract import RelayShare, decode_envelope, decode_signal
from sidecar.core.identity import Identity, registration_statement, verify
from sidecar.core.relayseal import RelaySeal
from sidecar.core.roomkey import (
    Ephemeral,
    Side,
    open_session,
    room_secret,
    sdp_auth,
    session_binding,
    session_keys,
)
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
    nonce, peer_id, room, seq, *session = v["statement"].split("|")[1:]
    binding = "|".join(session)  # the session it is signed in (keyed rooms)
    assert registration_statement(nonce, peer_id, room, int(seq), binding) == statement
    s = WIRE["sealing"]
    assert binding == session_binding(s["client_nonce"], s["server_share"], s["client_share"])
    assert verify(v["public_key"], statement, v["signature"])


def test_the_stretched_key_the_session_keys_and_sealed_frames_both_ways() -> None:
    v = WIRE["sealing"]
    assert room_secret(v["room_key"]).hex() == v["room_secret"]
    server = Ephemeral(bytes.fromhex(v["server_scalar"]))
    client = Ephemeral(bytes.fromhex(v["client_scalar"]))
    assert (server.share, client.share) == (v["server_share"], v["client_share"])
    shared = client.agree(server.share)
    assert shared == server.agree(client.share)
    keys = session_keys(
        v["room_key"], v["room"], v["server_nonce"], v["client_nonce"], server.share,
        client.share, shared,
    )  # fmt: skip
    assert (keys[0].hex(), keys[1].hex()) == (v["key_to_server"], v["key_to_client"])
    sides: tuple[tuple[Side, Ephemeral], ...] = (("client", client), ("server", server))
    ends = {
        side: open_session(
            v["room_key"],
            v["room"],
            side=side,
            mine=mine,
            server_nonce=v["server_nonce"],
            client_nonce=v["client_nonce"],
            server_share=server.share,
            client_share=client.share,
        )
        for side, mine in sides
    }
    for frame in v["client_frames"]:
        assert ends["client"].seal(frame["text"]) == (frame["seq"], frame["box"])
        assert ends["server"].open(frame["seq"], frame["box"]) == frame["text"]
    for frame in v["server_frames"]:
        assert ends["server"].seal(frame["text"]) == (frame["seq"], frame["box"])
        assert ends["client"].open(frame["seq"], frame["box"]) == frame["text"]


def test_a_relayed_channels_shares_keys_and_sealed_messages_both_ways() -> None:
    v = WIRE["relay_seal"]

    def end(secret: str, scalar: str, offerer: bool) -> RelaySeal:
        me = Identity(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret)))
        assert me.peer_id == (v["offerer"] if offerer else v["answerer"])
        peer = v["answerer"] if offerer else v["offerer"]
        ephemeral = Ephemeral(bytes.fromhex(scalar))
        return RelaySeal(
            me, peer=peer, link=v["link"], epoch=v["epoch"], offerer=offerer, ephemeral=ephemeral
        )

    offering = end(v["offerer_secret_key"], v["offer_scalar"], True)
    answering = end(v["answerer_secret_key"], v["answer_scalar"], False)
    offer, answer = (msgspec.convert(v[k], RelayShare) for k in ("offer", "answer"))
    assert offering.mine() == offer  # Ed25519 is deterministic
    assert answering.accept(offer) and answering.mine() == answer
    assert offering.accept(answer)
    for sender, receiver, frames in (
        (offering, answering, v["offerer_frames"]),
        (answering, offering, v["answerer_frames"]),
    ):
        for f in frames:
            assert sender.seal(f["text"]) == (f["seq"], f["box"])
            assert receiver.open(f["seq"], f["box"]) == f["text"]


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
