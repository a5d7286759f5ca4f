"""The pure decisions of the data-channel layer: who connects, who offers, retry delays."""

from __future__ import annotations

import aioice.ice
from hypothesis import given
from hypothesis import strategies as st

from sidecar.compat.rtc import restrict_ice_gathering
from sidecar.contract import IceServer, PeerType, SignalPeer
from sidecar.core.mesh import backoff_s, is_offerer, make_room_for, wants
from sidecar.net.transport import rtc_configuration


def peer(peer_id: str, peer_type: PeerType) -> SignalPeer:
    return SignalPeer(
        peer_id=peer_id,
        name=peer_id,
        peer_type=peer_type,
        display_class="stage" if peer_type == "display" else None,
        started_at=1,
    )


def test_default_mesh_connects_only_pairs_with_a_controller() -> None:
    c, d1, d2 = peer("c", "controller"), peer("d1", "display"), peer("d2", "display")
    assert wants("controllers", c, d1) and wants("controllers", d1, c)
    assert not wants("controllers", d1, d2)
    assert wants("controllers", c, peer("c2", "controller"))


def test_at_the_cap_a_controller_takes_the_place_of_a_pair_of_displays() -> None:
    me, booth = peer("d0", "display"), peer("c", "controller")
    displays = [peer(f"d{n}", "display") for n in range(1, 65)]
    assert make_room_for(me, booth, displays) == "d9"  # the highest id: deterministic
    assert make_room_for(me, peer("d99", "display"), displays) is None  # only a controller
    assert make_room_for(me, booth, [booth] * 64) is None  # nothing to give up
    assert make_room_for(booth, peer("c2", "controller"), displays) is None  # all its pairs


def test_full_mesh_connects_every_pair() -> None:
    assert wants("full", peer("d1", "display"), peer("d2", "display"))


@given(st.uuids(), st.uuids())
def test_exactly_one_side_of_a_pair_offers(a: object, b: object) -> None:
    x, y = str(a), str(b)
    if x != y:
        assert is_offerer(x, y) != is_offerer(y, x)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n) for n in range(1, 8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_no_ice_server_unless_asked_never_aiortcs_public_stun() -> None:
    assert rtc_configuration([]).iceServers == []
    (server,) = rtc_configuration([IceServer(urls="stun:10.0.0.1:3478")]).iceServers or []
    assert server.urls == "stun:10.0.0.1:3478"


def test_ice_gathers_only_on_the_given_interfaces() -> None:
    original = aioice.ice.get_host_addresses
    try:
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["10.0.0.1", "192.168.9.9"]
        restrict_ice_gathering(["10.0.0.1"])
        assert aioice.ice.get_host_addresses(True, False) == ["10.0.0.1"]
        restrict_ice_gathering(["192.168.9.9"])  # a later peer of this process
        assert aioice.ice.get_host_addresses(True, False) == ["192.168.9.9"]
    finally:
        aioice.ice.get_host_addresses = original
        if hasattr(aioice.ice, "_mw_original_get_host_addresses"):
            del aioice.ice._mw_original_get_host_addresses
