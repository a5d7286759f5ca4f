"""Pairing with a short code (sidecar/core/pairing.py, sidecar/core/pairdesk.py):
the exchange, the window's bounds, the vectors shared with the TypeScript
implementation, and what a captured exchange gives an eavesdropper."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any, Literal

import pytest

from sidecar.compat.pake import generator, with_scalar
from sidecar.contract import PairConfirm, PairHello, PairKey, PairReply
from sidecar.core.pairdesk import PairingDesk, Refusal
from sidecar.core.pairing import (
    MAX_TRIES,
    MAX_TRIES_PER_ADDRESS,
    Initiator,
    PairingError,
    Responder,
    Window,
    b64,
    channel_id,
    new_code,
    new_room_key,
    session_id,
)
from sidecar.core.signaling import encode_signal

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "pairing.json").read_text(encoding="utf-8")
)["vectors"]
ROOM, SN, CN = "main", "aa" * 16, "bb" * 16


def exchange(code_a: str, code_b: str, key: str = "k" * 43) -> tuple[str, list[str]]:
    """A full exchange as the wire carries it: the key A got, and every frame."""
    a, b = Initiator(code_a, ROOM, SN, CN), Responder(code_b, ROOM, SN, CN)
    frames = [encode_signal(PairHello(room=ROOM, share=a.share, nonce=CN))]
    share_b, tag_b = b.hello(a.share)
    frames.append(encode_signal(PairReply(share=share_b, tag=tag_b)))
    tag_a = a.reply(share_b, tag_b)
    frames.append(encode_signal(PairConfirm(tag=tag_a)))
    sealed = b.confirm(tag_a, key)
    frames.append(encode_signal(PairKey(sealed=sealed)))
    return a.room_key(sealed), frames


def test_the_right_code_gives_the_room_key() -> None:
    key = new_room_key()
    assert len(key) == 43 and len(base64.urlsafe_b64decode(key + "=")) == 32
    assert exchange("123456", "123456", key)[0] == key


def test_a_wrong_code_is_caught_by_both_sides() -> None:
    a, b = Initiator("123456", ROOM, SN, CN), Responder("654321", ROOM, SN, CN)
    share_b, tag_b = b.hello(a.share)
    with pytest.raises(PairingError) as at_a:
        a.reply(share_b, tag_b)
    assert at_a.value.code == "wrong_code"
    # A guesser that sends a tag anyway gets nothing from the member.
    forged = b64(hmac.new(b"guess", b"", hashlib.sha512).digest())
    with pytest.raises(PairingError) as at_b:
        b.confirm(forged, "k" * 43)
    assert at_b.value.code == "wrong_code"


def test_codes_are_six_digits_and_vary() -> None:
    codes = {new_code() for _ in range(50)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 40


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["code"])
def test_the_shared_vectors(vector: dict[str, Any]) -> None:
    """The values frontend-hook/test/pairing.test.ts checks its own implementation against."""
    code, room, sn, cn = (
        vector["code"],
        vector["room"],
        vector["server_nonce"],
        vector["client_nonce"],
    )
    assert channel_id(room).hex() == vector["ci"] and session_id(sn, cn).hex() == vector["sid"]
    assert (
        generator(code.encode(), channel_id(room), session_id(sn, cn)).hex() == vector["generator"]
    )
    a = Initiator(code, room, sn, cn, start=with_scalar(bytes.fromhex(vector["scalar_a"])))
    b = Responder(code, room, sn, cn, start=with_scalar(bytes.fromhex(vector["scalar_b"])))
    assert a.share == vector["share_a"]
    share_b, tag_b = b.hello(a.share)
    assert (share_b, tag_b) == (vector["share_b"], vector["tag_b"])
    assert a.reply(share_b, tag_b) == vector["tag_a"]
    assert b.confirm(vector["tag_a"], vector["room_key"]) == vector["sealed_room_key"]
    assert a.room_key(vector["sealed_room_key"]) == vector["room_key"]


def test_a_captured_exchange_holds_no_value_computable_from_the_code() -> None:
    """What an eavesdropper who guesses right could compute from the code and the
    public parts (the nonces, the room) must not appear in what it captured:
    otherwise it could test all 10^6 codes offline. See the argument in
    sidecar/core/pairing.py; the shares are y*G(code) with secret y, the tags and the
    sealed key are keyed by the Diffie-Hellman result."""
    code = "314159"
    _, frames = exchange(code, code)
    transcript = "".join(frames)
    sid = session_id(SN, CN)
    g = generator(code.encode(), channel_id(ROOM), sid)
    computable = [
        g,
        hashlib.sha512(code.encode()).digest(),
        hashlib.sha256(code.encode()).digest(),
        hmac.new(code.encode(), sid, hashlib.sha512).digest(),
        hmac.new(code.encode(), sid, hashlib.sha256).digest(),
        hmac.new(g, sid, hashlib.sha512).digest(),
        hashlib.sha512(g + sid).digest(),
    ]
    for value in computable:
        for form in (value, value[:32], value[:16]):
            for text in (b64(form), form.hex(), form.hex().upper()):
                assert text not in transcript
    assert code not in transcript
    # Two runs with the same code and nonces share nothing but the nonces: no
    # part of a capture is a function of the code alone.
    _, again = exchange(code, code)
    for first, second in zip(frames, again, strict=True):
        assert json.loads(first)["type"] == json.loads(second)["type"]
        assert first != second


# --------------------------------------------------------------- the window


def hello(
    desk: PairingDesk,
    conn: int,
    code: str,
    now: float = 0.0,
    address: str | None = None,
    secret: Literal["code", "token"] = "code",
) -> tuple[Initiator, Any]:
    """A `pair_hello` (from its own address unless `address` is given)."""
    a = Initiator(code, ROOM, SN, CN)
    msg = PairHello(room=ROOM, share=a.share, nonce=CN, secret=secret)
    outcome = desk.hello(conn, SN, msg, now, address or f"10.0.0.{conn % 250 + 2}")
    return a, outcome


def refused(outcome: Any) -> str:
    assert isinstance(outcome.reply, Refusal), outcome
    return str(outcome.reply.code)


def paired(desk: PairingDesk, conn: int, a: Initiator, outcome: Any) -> Any:
    """Confirm an exchange that was admitted: the outcome of the confirmation."""
    assert isinstance(outcome.reply, PairReply), outcome
    tag = a.reply(outcome.reply.share, outcome.reply.tag)
    return desk.confirm(conn, PairConfirm(tag=tag), "k" * 43, "10.0.0.9")


def test_each_hello_costs_a_try_and_the_window_closes_after_the_last() -> None:
    desk = PairingDesk(ROOM)
    desk.open(Window(code="111111", expires_at=100.0))
    for n in range(MAX_TRIES):
        _, outcome = hello(desk, n, "222222")
        assert isinstance(outcome.reply, PairReply)
        desk.forget(n)  # the guesser's confirmation fails; its connection ends
        assert (outcome.update, outcome.address) in {
            ("tried", f"10.0.0.{n + 2}"),
            ("exhausted", f"10.0.0.{n + 2}"),
        }
    assert outcome.update == "exhausted" and desk.window is None
    _, late = hello(desk, 99, "111111")  # the right code, too late
    assert refused(late) == "pairing_closed"


def test_one_address_spends_only_its_own_tries_and_another_still_pairs() -> None:
    desk = PairingDesk(ROOM)
    desk.open(Window(code="111111", expires_at=100.0))
    hello(desk, 0, "222222", address="10.0.0.66")
    _, held = hello(desk, 1, "222222", address="10.0.0.66")
    assert refused(held) == "pairing_busy"  # one exchange at a time per address
    desk.forget(0)
    for n in range(1, MAX_TRIES_PER_ADDRESS):
        _, outcome = hello(desk, n, "222222", address="10.0.0.66")
        assert isinstance(outcome.reply, PairReply)
        desk.forget(n)
    _, more = hello(desk, 50, "222222", address="10.0.0.66")
    assert refused(more) == "too_many_tries" and more.update is None  # no try taken
    assert desk.window is not None
    assert desk.window.tries_left == MAX_TRIES - MAX_TRIES_PER_ADDRESS
    a, outcome = hello(desk, 60, "111111", address="10.0.0.9")
    done = paired(desk, 60, a, outcome)
    assert isinstance(done.reply, PairKey) and (done.update, done.address) == ("paired", "10.0.0.9")


def test_a_pairing_link_token_works_once_and_the_code_still_works() -> None:
    desk = PairingDesk(ROOM)
    desk.open(Window(code="111111", expires_at=100.0, uses_left=3, token="t" * 22))
    a, outcome = hello(desk, 1, "t" * 22, secret="token")
    assert isinstance(paired(desk, 1, a, outcome).reply, PairKey)
    assert desk.window is not None and desk.window.token is None
    _, again = hello(desk, 2, "t" * 22, secret="token")
    assert refused(again) == "token_spent"
    b, by_code = hello(desk, 3, "111111")
    assert isinstance(paired(desk, 3, b, by_code).reply, PairKey)
    # A token is not the code: guessing with the code's password as a token fails.
    desk.open(Window(code="111111", expires_at=100.0, token="u" * 22))
    c, wrong = hello(desk, 4, "111111", secret="token")
    assert isinstance(wrong.reply, PairReply)
    with pytest.raises(PairingError):
        c.reply(wrong.reply.share, wrong.reply.tag)


def test_the_last_try_may_still_pair() -> None:
    desk = PairingDesk(ROOM)
    desk.open(Window(code="111111", expires_at=100.0, tries_left=1))
    a, outcome = hello(desk, 1, "111111")
    assert isinstance(outcome.reply, PairReply) and desk.window is None
    tag = a.reply(outcome.reply.share, outcome.reply.tag)
    done = desk.confirm(1, PairConfirm(tag=tag), "k" * 43)
    assert isinstance(done.reply, PairKey) and done.update == "paired"
    assert a.room_key(done.reply.sealed) == "k" * 43


def test_a_use_closes_a_single_use_window_and_expiry_closes_any() -> None:
    desk = PairingDesk(ROOM)
    desk.open(Window(code="111111", expires_at=100.0))
    a, outcome = hello(desk, 1, "111111")
    assert isinstance(outcome.reply, PairReply)
    done = desk.confirm(
        1, PairConfirm(tag=a.reply(outcome.reply.share, outcome.reply.tag)), "k" * 43
    )
    assert done.update == "paired" and desk.window is None
    desk.open(Window(code="333333", expires_at=100.0))
    assert not desk.expire(99.0) and desk.expire(100.0) and desk.window is None
    _, late = hello(desk, 2, "333333", now=101.0)
    assert isinstance(late.reply, Refusal)


def test_a_token_or_a_single_use_pairs_one_device_even_when_two_confirm_at_once() -> None:
    desk = PairingDesk(ROOM)
    desk.open(Window(code="111111", expires_at=100.0, uses_left=3, token="t" * 22))
    a, first = hello(desk, 1, "t" * 22, secret="token")  # the phone that scanned it
    b, second = hello(desk, 2, "t" * 22, secret="token")  # someone else who saw the QR code
    assert isinstance(paired(desk, 1, a, first).reply, PairKey)
    late = paired(desk, 2, b, second)
    assert isinstance(late.reply, Refusal) and late.reply.code == "token_spent"
    desk.open(Window(code="222222", expires_at=100.0, uses_left=1))
    c, one = hello(desk, 3, "222222")
    d, other = hello(desk, 4, "222222")
    assert isinstance(paired(desk, 3, c, one).reply, PairKey)
    assert desk.window is None  # its one use is spent
    refused_late = paired(desk, 4, d, other)
    assert isinstance(refused_late.reply, Refusal) and refused_late.reply.code == "pairing_closed"
