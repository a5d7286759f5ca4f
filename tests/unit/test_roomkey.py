"""The room key's cryptography and the peers' identities (sans I/O)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.identity import Identity, peer_id_of, registration_statement, verify
from sidecar.core.roomkey import (
    CLIENT_TO_SERVER,
    SERVER_TO_CLIENT,
    Sealer,
    sdp_auth,
    session_key,
    txt_auth,
)


def pair(key: bytes) -> tuple[Sealer, Sealer]:
    client = Sealer(key, sending=CLIENT_TO_SERVER, receiving=SERVER_TO_CLIENT)
    server = Sealer(key, sending=SERVER_TO_CLIENT, receiving=CLIENT_TO_SERVER)
    return client, server


def test_a_session_opens_what_the_other_side_sealed_in_order_once() -> None:
    client, server = pair(session_key("k", "n1", "n2", "room"))
    seq, mac = client.seal("hello")
    assert server.open(seq, "hello", mac)
    assert not server.open(seq, "hello", mac)  # replayed
    seq2, mac2 = client.seal("second")
    seq3, mac3 = client.seal("third")
    assert not server.open(seq3, "third", mac3)  # the second was dropped
    assert server.open(seq2, "second", mac2) and server.open(seq3, "third", mac3)
    back, mac = server.seal("reply")
    assert not client.open(back, "Reply", mac)  # altered
    assert not server.open(back, "reply", mac)  # a frame reflected back to its sender


def test_session_keys_differ_with_any_nonce_room_or_key() -> None:
    base = session_key("k", "n1", "n2", "room")
    others = [
        session_key("k2", "n1", "n2", "room"),
        session_key("k", "n1x", "n2", "room"),
        session_key("k", "n1", "n2x", "room"),
        session_key("k", "n1", "n2", "room2"),
    ]
    assert base not in others
    client, _ = pair(base)
    _, server = pair(others[1])
    seq, mac = client.seal("x")
    assert not server.open(seq, "x", mac)  # another session's MAC


def test_the_sdp_mac_binds_sender_receiver_channel_and_transport() -> None:
    mac = sdp_auth("k", "offer", "a", "b", "l1", 1, "v=0 fingerprint")
    for changed in (
        sdp_auth("k", "answer", "a", "b", "l1", 1, "v=0 fingerprint"),
        sdp_auth("k", "offer", "b", "a", "l1", 1, "v=0 fingerprint"),
        sdp_auth("k", "offer", "a", "b", "l2", 1, "v=0 fingerprint"),
        sdp_auth("k", "offer", "a", "b", "l1", 2, "v=0 fingerprint"),
        sdp_auth("k", "offer", "a", "b", "l1", 1, "v=0 fingerprinT"),
        sdp_auth("other", "offer", "a", "b", "l1", 1, "v=0 fingerprint"),
    ):
        assert changed != mac


def test_the_record_mac_covers_bare_keys_addresses_and_port() -> None:
    props: dict[bytes, bytes | None] = {b"id": b"x", b"role": b"leader"}
    mac = txt_auth(props, "k", ["10.0.0.1"], 3010)
    assert txt_auth({**props, b"flag": None}, "k", ["10.0.0.1"], 3010) != mac
    assert txt_auth(props, "k", ["10.0.0.2"], 3010) != mac
    assert txt_auth(props, "k", ["10.0.0.1"], 3011) != mac
    assert txt_auth({**props, b"auth": b"anything"}, "k", ["10.0.0.1"], 3010) == mac


def test_an_identity_signs_registrations_that_only_it_can_make() -> None:
    me, other = Identity(), Identity()
    assert me.peer_id == peer_id_of(me.public_key) and me.peer_id != other.peer_id
    statement = registration_statement("nonce", me.peer_id, "room", 3)
    signature = me.sign(statement)
    assert verify(me.public_key, statement, signature)
    assert not verify(other.public_key, statement, signature)
    assert not verify(
        me.public_key, registration_statement("nonce2", me.peer_id, "room", 3), signature
    )
    assert not verify(
        me.public_key, registration_statement("nonce", me.peer_id, "room", 4), signature
    )


@given(st.text(max_size=120), st.text(max_size=120))
def test_verify_never_raises_on_garbage(key: str, signature: str) -> None:
    assert verify(key, b"statement", signature) in (True, False)
