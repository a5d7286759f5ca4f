"""Writes tests/vectors/wire.json from the sidecar's own code: identity, the
stretched room key and a sealed session, SDP MACs, one frame of each kind the
web peer reads and writes, and the data channel's envelopes. Fixed keys, nonces
and ephemeral scalars make every value reproducible; the TypeScript suite
(frontend-hook/test/wire.test.ts) and tests/unit/test_wire_vectors.py check it.

    uv run python -m tests.vectors.make_wire
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.contract import (
    PROTOCOL_VERSION,
    Answer,
    Challenge,
    Heartbeat,
    HeartbeatAck,
    Leave,
    Offer,
    PeerList,
    Query,
    Register,
    Registered,
    Relay,
    Sealed,
    SignalError,
    SignalMessage,
    SignalPeer,
)
from sidecar.core.identity import Identity, registration_statement
from sidecar.core.relayseal import RelaySeal, relay_keys
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

OUT = Path(__file__).resolve().parent / "wire.json"
ROOM_KEY = "correct horse battery staple"
ROOM = "main"
SERVER_NONCE = "0123456789abcdef0123456789abcdef"
CLIENT_NONCE = "fedcba9876543210fedcba9876543210"
SERVER_SCALAR = bytes(range(32, 64))
CLIENT_SCALAR = bytes(range(64, 96))
LINK = "a1b2c3d4e5f60718"
DISPLAY_SEED = bytes(range(100, 132))
"""The Ed25519 secret of the relay's other end (a sidecar display)."""
OFFER_SCALAR = bytes(range(128, 160))
ANSWER_SCALAR = bytes(range(160, 192))
RELAY_EPOCH = 2
LEADER = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"


def main() -> None:
    old = json.loads(OUT.read_text(encoding="utf-8"))
    me = Identity(
        Ed25519PrivateKey.from_private_bytes(bytes.fromhex(old["identity"]["secret_key"]))
    )
    phone = SignalPeer(
        peer_id=me.peer_id,
        name="Phone",
        peer_type="display",
        display_class="stage",
        started_at=1796000000000,
    )
    server, client = Ephemeral(SERVER_SCALAR), Ephemeral(CLIENT_SCALAR)
    binding = session_binding(CLIENT_NONCE, server.share, client.share)
    statement = registration_statement(SERVER_NONCE, me.peer_id, ROOM, 2, binding)
    register = Register(
        peer=phone,
        room=ROOM,
        identity=me.public_key,
        signature=me.sign(statement),
        v=PROTOCOL_VERSION,
        seq=2,
    )
    registered = Registered(leader_id=LEADER, term=3, peers=[phone])

    to_server, to_client = session_keys(
        ROOM_KEY,
        ROOM,
        SERVER_NONCE,
        CLIENT_NONCE,
        server.share,
        client.share,
        client.agree(server.share),
    )
    sides: tuple[tuple[Side, Ephemeral], ...] = (("client", client), ("server", server))
    ends = {
        side: open_session(
            ROOM_KEY,
            ROOM,
            side=side,
            mine=mine,
            server_nonce=SERVER_NONCE,
            client_nonce=CLIENT_NONCE,
            server_share=server.share,
            client_share=client.share,
        )
        for side, mine in sides
    }

    def sealed(side: Side, msgs: list[SignalMessage]) -> list[dict[str, Any]]:
        out = []
        for msg in msgs:
            text = encode_signal(msg)
            seq, box = ends[side].seal(text)
            out.append({"seq": seq, "text": text, "box": box})
        return out

    client_frames = sealed("client", [register, Heartbeat(seq=1, term=3)])
    server_frames = sealed("server", [registered, HeartbeatAck(seq=1, term=3)])

    sdp_vectors = []
    for kind, sender, receiver in (("offer", me.peer_id, LEADER), ("answer", LEADER, me.peer_id)):
        for sdp, epoch in (("relay", 2), ("v=0\r\no=- 1 2 IN IP4 10.0.0.5\r\n", 1)):
            auth = sdp_auth(ROOM_KEY, kind, sender, receiver, LINK, epoch, sdp)
            sdp_vectors.append(
                {
                    "room_key": ROOM_KEY,
                    "kind": kind,
                    "from": sender,
                    "to": receiver,
                    "link": LINK,
                    "epoch": epoch,
                    "sdp": sdp,
                    "auth": auth,
                }
            )

    # A relayed channel: the phone offers a relay transport to a display,
    # which answers; each seals one message under their own keys.
    display = Identity(Ed25519PrivateKey.from_private_bytes(DISPLAY_SEED))
    offering = RelaySeal(
        me,
        peer=display.peer_id,
        link=LINK,
        epoch=RELAY_EPOCH,
        offerer=True,
        ephemeral=Ephemeral(OFFER_SCALAR),
    )
    answering = RelaySeal(
        display,
        peer=me.peer_id,
        link=LINK,
        epoch=RELAY_EPOCH,
        offerer=False,
        ephemeral=Ephemeral(ANSWER_SCALAR),
    )
    offer_share = offering.mine()
    assert answering.accept(offer_share)
    answer_share = answering.mine()
    assert offering.accept(answer_share)
    to_answerer, to_offerer = relay_keys(
        LINK,
        RELAY_EPOCH,
        me.peer_id,
        display.peer_id,
        offer_share.share,
        answer_share.share,
        Ephemeral(OFFER_SCALAR).agree(answer_share.share),
    )
    sync_text = '{"type":"sync","received":0}'
    ack_text = '{"type":"ack","count":1}'
    sync_seq, sync_box = offering.seal(sync_text)
    ack_seq, ack_box = answering.seal(ack_text)
    relay_seal = {
        "offerer_secret_key": old["identity"]["secret_key"],
        "answerer_secret_key": DISPLAY_SEED.hex(),
        "offerer": me.peer_id,
        "answerer": display.peer_id,
        "link": LINK,
        "epoch": RELAY_EPOCH,
        "offer_scalar": OFFER_SCALAR.hex(),
        "answer_scalar": ANSWER_SCALAR.hex(),
        "offer": msgspec.to_builtins(offer_share),
        "answer": msgspec.to_builtins(answer_share),
        "key_to_answerer": to_answerer.hex(),
        "key_to_offerer": to_offerer.hex(),
        "offerer_frames": [{"seq": sync_seq, "text": sync_text, "box": sync_box}],
        "answerer_frames": [{"seq": ack_seq, "text": ack_text, "box": ack_box}],
    }

    first = client_frames[0]
    frames: list[SignalMessage] = [
        Challenge(nonce=SERVER_NONCE, share=server.share),
        Query(room=ROOM),
        register,
        Sealed(seq=first["seq"], box=first["box"], nonce=CLIENT_NONCE, share=client.share),
        Sealed(seq=server_frames[0]["seq"], box=server_frames[0]["box"]),
        Heartbeat(seq=1, term=3),
        HeartbeatAck(seq=1, term=3),
        PeerList(leader_id=LEADER, term=3, peers=[phone]),
        Offer(
            from_=me.peer_id,
            to=display.peer_id,
            sdp="relay",
            link=LINK,
            epoch=RELAY_EPOCH,
            relay=offer_share,
        ),
        Answer(
            from_=display.peer_id,
            to=me.peer_id,
            sdp="relay",
            link=LINK,
            epoch=RELAY_EPOCH,
            relay=answer_share,
        ),
        Relay(
            from_=me.peer_id,
            to=display.peer_id,
            link=LINK,
            epoch=RELAY_EPOCH,
            seq=sync_seq,
            data=sync_box,
        ),
        Leave(peer_id=me.peer_id),
        SignalError(code="not_leader", message="x does not lead the room"),
    ]
    wire: dict[str, Any] = {
        "description": old["description"],
        "identity": {
            **old["identity"],
            "statement": statement.decode(),
            "signature": me.sign(statement),
        },
        "sealing": {
            "room_key": ROOM_KEY,
            "room": ROOM,
            "room_secret": room_secret(ROOM_KEY).hex(),
            "server_nonce": SERVER_NONCE,
            "client_nonce": CLIENT_NONCE,
            "server_scalar": SERVER_SCALAR.hex(),
            "client_scalar": CLIENT_SCALAR.hex(),
            "server_share": server.share,
            "client_share": client.share,
            "key_to_server": to_server.hex(),
            "key_to_client": to_client.hex(),
            "client_frames": client_frames,
            "server_frames": server_frames,
        },
        "sdp_auth": sdp_vectors,
        "relay_seal": relay_seal,
        "frames": [encode_signal(f) for f in frames],
        "envelopes": old["envelopes"],
    }
    OUT.write_text(json.dumps(wire, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
