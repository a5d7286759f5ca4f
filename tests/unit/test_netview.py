"""Which addresses the peer uses, and what it does when they change (sans I/O)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.netview import (
    Attach,
    Iface,
    NetView,
    Offline,
    Online,
    check_interfaces,
    subnets,
    usable,
)

ETH = Iface("eth0", "10.77.0.2")
WIFI = Iface("wlan0", "192.168.1.20")
LO = Iface("lo", "127.0.0.1", 8)


def test_default_is_every_up_non_loopback_address_in_system_order() -> None:
    assert usable([LO, ETH, WIFI]) == ("10.77.0.2", "192.168.1.20")
    down = Iface("eth0", "10.77.0.2", up=False)
    assert usable([LO, down, WIFI]) == ("192.168.1.20",)


def test_link_local_only_where_an_interface_has_nothing_else() -> None:
    ll_eth = Iface("eth0", "169.254.3.4", 16)
    ll_usb = Iface("usb0", "169.254.9.9", 16)
    assert usable([ETH, ll_eth, ll_usb]) == ("10.77.0.2", "169.254.9.9")


def test_named_addresses_are_used_when_and_while_they_exist() -> None:
    wanted = ("192.168.1.20", "10.77.0.5")
    assert usable([ETH, WIFI], wanted) == ("192.168.1.20",)
    assert usable([ETH], wanted) == ()
    assert usable([Iface("wlan0", "192.168.1.20", up=False)], wanted) == ()


def test_interfaces_are_checked_for_form_only() -> None:
    assert check_interfaces(["10.0.0.1", "10.0.0.1", "192.168.1.2"]) == ("10.0.0.1", "192.168.1.2")
    for bad in ("eth0", "10.0.0", "::1", "", "10.0.0.1 "):
        with pytest.raises(ValueError, match="not an IPv4 address"):
            check_interfaces([bad])
    for unusable in ("127.0.0.1", "224.0.0.251", "0.0.0.0"):
        with pytest.raises(ValueError, match="cannot be used"):
            check_interfaces([unusable])


def test_subnets_come_from_the_prefixes() -> None:
    snap = [ETH, Iface("wlan0", "192.168.1.20", 16)]
    assert subnets(snap, ["192.168.1.20"]) == (ipaddress.IPv4Network("192.168.0.0/16"),)


def test_a_peer_started_offline_attaches_when_an_address_comes() -> None:
    view = NetView()
    assert view.observe([LO]) == []
    assert not view.online
    assert view.observe([LO, ETH]) == [Attach(("10.77.0.2",))]
    assert view.observe([LO, ETH]) == []


def test_link_down_and_up_with_the_same_address_keeps_the_binding() -> None:
    view = NetView()
    view.observe([ETH])
    assert view.observe([Iface("eth0", "10.77.0.2", up=False)]) == [Offline()]
    assert view.observe([]) == []
    assert view.observe([ETH]) == [Online()]
    assert view.attached == ("10.77.0.2",)


def test_a_new_address_rebinds_and_names_what_was_lost() -> None:
    view = NetView()
    view.observe([ETH])
    moved = Iface("eth0", "10.77.0.102")
    assert view.observe([moved]) == [Attach(("10.77.0.102",), lost=("10.77.0.2",))]
    view.observe([])
    assert view.observe([ETH]) == [Attach(("10.77.0.2",), lost=("10.77.0.102",))]


def test_dual_homed_losing_one_keeps_the_other() -> None:
    view = NetView()
    view.observe([ETH, WIFI])
    assert view.observe([WIFI]) == [Attach(("192.168.1.20",), lost=("10.77.0.2",))]
    assert view.observe([WIFI, ETH]) == [Attach(("192.168.1.20", "10.77.0.2"))]
    assert view.observe([ETH, WIFI]) == []  # the order alone is no change


def test_a_failed_binding_is_retried_at_the_next_reading() -> None:
    view = NetView()
    view.observe([ETH])
    view.attach_failed()
    assert view.observe([ETH]) == [Attach(("10.77.0.2",))]


_ADDRS = st.sampled_from(["10.0.0.1", "10.0.0.2", "192.168.1.5", "169.254.1.1", "127.0.0.1"])
_IFACES = st.builds(Iface, st.sampled_from(["eth0", "wlan0"]), _ADDRS, st.just(24), st.booleans())


@given(st.lists(st.lists(_IFACES, max_size=4), max_size=12))
def test_the_view_always_tells_what_it_is_bound_to_and_whether_that_works(
    readings: list[list[Iface]],
) -> None:
    view = NetView()
    for reading in readings:
        changes = view.observe(reading)
        now = usable(reading)
        assert len(changes) <= 1
        assert view.online == bool(now)
        if now:
            assert set(view.attached) == set(now)
        for change in changes:
            if isinstance(change, Attach):
                assert change.addresses == view.attached
            assert isinstance(change, Attach | Offline | Online)
