"""Which local IPv4 addresses the peer uses, and what to do when they change.

Sans I/O: `sidecar.net.netifs` reads the interfaces (and wakes us on a change);
this module decides. A peer's network is not a snapshot taken at start: a
lobby TV starts before its Wi-Fi has associated, a laptop roams from
Ethernet to Wi-Fi, a DHCP lease brings a new address. So the peer keeps a
`NetView`, feeds it every reading of the interfaces, and carries out what it
answers:

* `Attach(addresses, lost)`: bind mDNS and the signaling server to this new
  address set (the first one, or a changed one; `lost` were in the old set).
* `Offline()`: no usable address is left. The sockets stay as they are (a
  link that comes back with the same address resumes them); the election
  pauses, and the host sees the state "offline".
* `Online()`: the addresses in use are usable again, unchanged.

Which addresses are usable: by default every IPv4 address of an interface
that is up, minus loopback, and a link-local address (169.254/16) only on an
interface that has no other (on a switch without DHCP that is all the devices
have). A host may name the addresses itself (`interfaces`); those are used
when and while they are assigned to an interface that is up, so a list naming
an address that does not exist yet waits for it instead of failing.

The interfaces are read about once a second, and at once when the operating
system reports a change (netlink on Linux): `SETTLE_S` after such a report,
so the two halves of an address change (`del`, then `add`) are read as one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

POLL_S = 1.0
"""Interfaces are read this often even when no change is reported."""

SETTLE_S = 0.15
"""Delay between a reported change and the reading it triggers."""

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")


@dataclass(frozen=True, slots=True)
class Iface:
    """One IPv4 address of one interface, as read from the system."""

    name: str
    address: str
    prefix: int = 24
    up: bool = True
    """Administratively up with carrier (where that can be read)."""


@dataclass(frozen=True, slots=True)
class Attach:
    addresses: tuple[str, ...]
    lost: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Offline:
    pass


@dataclass(frozen=True, slots=True)
class Online:
    pass


NetChange = Attach | Offline | Online


def check_interfaces(raw: Iterable[str]) -> tuple[str, ...]:
    """Normalise a host's `interfaces` list: dotted-quad IPv4, each once, in
    order. Raises ValueError naming the first entry that is not one. Whether
    the addresses exist is not checked: a missing one is waited for."""
    result: list[str] = []
    for entry in raw:
        try:
            address = ipaddress.IPv4Address(entry)
        except ValueError:
            raise ValueError(f"{entry!r} is not an IPv4 address") from None
        if address in _LOOPBACK or address.is_multicast or address.is_unspecified:
            raise ValueError(f"{entry} cannot be used: loopback, multicast or unspecified")
        if str(address) not in result:
            result.append(str(address))
    return tuple(result)


def usable(snapshot: Sequence[Iface], wanted: Sequence[str] | None = None) -> tuple[str, ...]:
    """The addresses to use now, in the system's order (or `wanted`'s)."""
    live = [i for i in snapshot if i.up and ipaddress.IPv4Address(i.address) not in _LOOPBACK]
    if wanted is not None:
        present = {i.address for i in live}
        return tuple(a for a in wanted if a in present)
    routable = {i.name for i in live if ipaddress.IPv4Address(i.address) not in _LINK_LOCAL}
    result: list[str] = []
    for iface in live:
        if ipaddress.IPv4Address(iface.address) in _LINK_LOCAL and iface.name in routable:
            continue
        if iface.address not in result:
            result.append(iface.address)
    return tuple(result)


def subnets(
    snapshot: Sequence[Iface], addresses: Iterable[str]
) -> tuple[ipaddress.IPv4Network, ...]:
    """The networks that `addresses` belong to, from their interfaces' prefixes."""
    wanted = set(addresses)
    found: list[ipaddress.IPv4Network] = []
    for iface in snapshot:
        if iface.address in wanted:
            net = ipaddress.IPv4Network(f"{iface.address}/{iface.prefix}", strict=False)
            if net not in found:
                found.append(net)
    return tuple(found)


class NetView:
    """The addresses the peer is bound to, and whether they are usable now."""

    def __init__(self, wanted: Sequence[str] | None = None) -> None:
        self.wanted = tuple(wanted) if wanted is not None else None
        self.attached: tuple[str, ...] = ()
        """What mDNS and the signaling server are bound to (empty: never bound)."""
        self.online = False
        """Whether `attached` is usable now."""

    def observe(self, snapshot: Sequence[Iface]) -> list[NetChange]:
        """A reading of the interfaces; returns what to do about it."""
        now = usable(snapshot, self.wanted)
        if not now:
            if self.online:
                self.online = False
                return [Offline()]
            return []
        if set(now) != set(self.attached):
            lost = tuple(a for a in self.attached if a not in now)
            self.attached, self.online = now, True
            return [Attach(now, lost)]
        if not self.online:
            self.online = True
            return [Online()]
        return []

    def attach_failed(self) -> None:
        """Binding to `attached` failed: the next reading tries again."""
        self.attached, self.online = (), False
