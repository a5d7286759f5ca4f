"""The room key's cryptography and the peers' identities (sans I/O)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.identity import Identity, peer_id_of, registration_statement, verify
from sidecar.core.roomkey import Box, Ephemeral, open_session, room_secret, sdp_auth, txt_auth


def sessions(key: str = "k" * 16, room: str = "room") -> tuple[Box, Box]:
    server, client = Ephemeral(), Ephemeral()
    common = {
        "server_nonce": "n1",
        "client_nonce": "n2",
        "server_share": server.share,
        "client_share": client.share,
    }
    return (
        open_session(key, room, side="client", mine=client, **common),
        open_session(key, room, side="server", mine=server, **common),
    )


def test_a_session_opens_what_the_other_side_sealed_in_order_once() -> None:
    client, server = sessions()
    seq, box = client.seal("hello")
    assert "hello" not in box  # encrypted, not only signed
    assert server.open(seq, box) == "hello"
    assert server.open(seq, box) is None  # replayed
    seq2, box2 = client.seal("second")
    seq3, box3 = client.seal("third")
    assert server.open(seq3, box3) is None  # the second was dropped
    assert server.open(seq2, box2) == "second" and server.open(seq3, box3) == "third"
    back, reply = server.seal("reply")
    assert client.open(back, reply[:-2] + ("AA" if reply[-2:] != "AA" else "BA")) is None
    assert server.open(back, reply) is None  # a frame reflected back to its sender
    assert client.open(back, reply) == "reply"


def test_a_listener_with_the_room_key_cannot_open_a_session() -> None:
    """It sees both nonces and both shares, and holds the key, but not the
    ephemeral secret of either side: its keys are another session's."""
    key = "k" * 16
    server, client, listener = Ephemeral(), Ephemeral(), Ephemeral()
    common = {"server_nonce": "n1", "client_nonce": "n2", "server_share": server.share}
    sender = open_session(
        key, "room", side="client", mine=client, client_share=client.share, **common
    )
    guess = open_session(
        key, "room", side="server", mine=listener, client_share=client.share, **common
    )
    seq, box = sender.seal('{"type":"rekey","room_key":"secret"}')
    assert guess.open(seq, box) is None


def test_sessions_differ_with_any_nonce_share_room_or_key() -> None:
    client, _ = sessions()
    seq, box = client.seal("x")
    for other in (sessions(key="j" * 16)[1], sessions(room="room2")[1], sessions()[1]):
        assert other.open(seq, box) is None


def test_a_room_key_is_stretched_once_and_the_same_everywhere() -> None:
    assert room_secret("k" * 16) == room_secret("k" * 16) != room_secret("j" * 16)
    assert len(room_secret("k" * 16)) == 32


def test_a_share_that_is_not_one_is_refused() -> None:
    mine = Ephemeral()
    for bad in ("", "not base64!", "AAAA", "A" * 43):  # the last: the all-zero point
        try:
            mine.agree(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was taken as a share")


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
