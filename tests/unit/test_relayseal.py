"""A relayed channel's end-to-end sealing (sidecar/core/relayseal.py): only the
two peers' own shares make its keys, so a leader in the middle (or anyone
with the room key) can neither put its own share in nor read, alter, replay
or reorder what it carries."""

from __future__ import annotations

import msgspec
import pytest

from sidecar.core.identity import Identity
from sidecar.core.relayseal import RelaySeal
from sidecar.core.roomkey import b64, unb64

LINK = "a1b2c3d4e5f60718"


def pair(epoch: int = 2) -> tuple[RelaySeal, RelaySeal, Identity, Identity]:
    a, b = Identity(), Identity()
    offering = RelaySeal(a, peer=b.peer_id, link=LINK, epoch=epoch, offerer=True)
    answering = RelaySeal(b, peer=a.peer_id, link=LINK, epoch=epoch, offerer=False)
    return offering, answering, a, b


def agreed() -> tuple[RelaySeal, RelaySeal]:
    offering, answering, _, _ = pair()
    assert answering.accept(offering.mine())
    assert offering.accept(answering.mine())
    return offering, answering


def test_the_two_ends_agree_and_each_opens_what_the_other_sealed() -> None:
    offering, answering = agreed()
    seq, box = offering.seal('{"type":"sync","received":0}')
    assert answering.open(seq, box) == '{"type":"sync","received":0}'
    seq, box = answering.seal("cue 12")
    assert offering.open(seq, box) == "cue 12"
    assert "cue" not in box


def test_a_leader_cannot_put_its_own_share_in_either_way() -> None:
    offering, answering, a, b = pair()
    leader = Identity()
    own = RelaySeal(leader, peer=b.peer_id, link=LINK, epoch=2, offerer=True)
    forged = msgspec.structs.replace(offering.mine(), share=own.mine().share)
    assert not answering.accept(forged)  # the offerer's signature covers its share
    assert not answering.accept(own.mine())  # the leader's key is not the offerer's id
    # Nor a share the offerer signed for another receiver or transport:
    other = RelaySeal(a, peer=leader.peer_id, link=LINK, epoch=2, offerer=True)
    assert not answering.accept(other.mine())
    later = RelaySeal(a, peer=b.peer_id, link=LINK, epoch=3, offerer=True)
    assert not answering.accept(later.mine())
    assert answering.accept(offering.mine())  # the real one still does


def test_an_answer_is_bound_to_the_offer_it_answers() -> None:
    offering, answering, a, b = pair()
    assert answering.accept(offering.mine())
    # The same offerer, another share for the same transport (spliced in by a
    # relay in the middle): the answer, signed over the first, does not fit.
    spliced = RelaySeal(a, peer=b.peer_id, link=LINK, epoch=2, offerer=True)
    assert not spliced.accept(answering.mine())
    assert offering.accept(answering.mine())


def test_a_frame_altered_replayed_or_sealed_in_the_wrong_direction_does_not_open() -> None:
    offering, answering = agreed()
    seq, box = offering.seal("one")
    raw = bytearray(unb64(box))
    raw[0] ^= 1
    assert answering.open(seq, b64(bytes(raw))) is None
    assert answering.open(seq + 1, box) is None  # its nonce is its number
    assert answering.open(seq, box) == "one"
    assert answering.open(seq, box) is None  # replayed
    back_seq, back = answering.seal("two")
    assert answering.open(back_seq + 1, back) is None  # our own frame is not the peer's


def test_a_frame_the_leader_dropped_leaves_a_gap_not_a_dead_transport() -> None:
    offering, answering = agreed()
    offering.seal("lost on the way")
    seq, box = offering.seal("next")
    assert answering.open(seq, box) == "next"
    assert answering.open(1, "") is None  # nothing older opens after


def test_nothing_seals_before_the_other_share_is_known() -> None:
    offering, _, _, _ = pair()
    with pytest.raises(RuntimeError):
        offering.seal("too early")
    assert offering.open(1, "x") is None
