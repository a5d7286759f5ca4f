"""Which local IPv4 addresses the peer announces and listens on (design.md, "Discovery").

mDNS must run on the interfaces in use, never on what the host name resolves
to (often 127.0.0.1). By default that is every IPv4 address of an interface
that is up, minus loopback; a link-local address (169.254/16) only on an
interface that has no other, since on a switch without DHCP that is all
the devices have; a host may name the addresses
itself, which are then checked against what is really assigned here.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path

import ifaddr

log = logging.getLogger(__name__)

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")

# Linux <net/if.h> interface flags, as /sys/class/net/<name>/flags shows them
# (without IFF_RUNNING: carrier is in `operstate`).
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8
_RUNNING_STATES = ("up", "unknown")  # "unknown": a link that does not report carrier
_SYS_NET = Path("/sys/class/net")


def _assigned_ipv4() -> list[tuple[str, str]]:
    """(interface name, address) for every IPv4 address assigned here."""
    found: list[tuple[str, str]] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str):
                found.append((adapter.name, ip.ip))
    return found


def _linux_state(name: str) -> tuple[int, str] | None:
    """The interface's flags and operstate, or None when they cannot be read."""
    base = _SYS_NET / name.split(":", 1)[0]  # an alias label such as eth0:1 is eth0's
    try:
        flags = int((base / "flags").read_text().strip(), 16)
        return flags, (base / "operstate").read_text().strip()
    except (OSError, ValueError):
        return None


def _is_up(name: str) -> bool:
    """Up with carrier, not loopback. Where that cannot be read (not Linux), an
    interface ifaddr lists with an IPv4 address is taken as up."""
    if not sys.platform.startswith("linux"):
        return True
    state = _linux_state(name)
    if state is None:
        return True
    flags, operstate = state
    return bool(flags & _IFF_UP) and not flags & _IFF_LOOPBACK and operstate in _RUNNING_STATES


def default_ipv4_addresses() -> list[str]:
    """IPv4 addresses of every non-loopback interface that is up, in the order
    the system lists them, each once; 169.254/16 only where an interface has
    no other IPv4 address (a venue network without DHCP)."""
    assigned = _assigned_ipv4()
    routable = {name for name, text in assigned if ipaddress.IPv4Address(text) not in _LINK_LOCAL}
    result: list[str] = []
    for name, text in assigned:
        addr = ipaddress.IPv4Address(text)
        if addr in _LOOPBACK or (addr in _LINK_LOCAL and name in routable):
            continue
        if not _is_up(name):
            log.debug("skipping %s on %s: interface not up", text, name)
            continue
        if text not in result:
            result.append(text)
    return result


def validate_interfaces(addrs: list[str]) -> list[str]:
    """Check that each requested IPv4 address is assigned to an interface here.

    Returns them normalised and without duplicates, in the given order. Raises
    ValueError naming the first address that is malformed or not assigned.
    """
    assigned = {text for _, text in _assigned_ipv4()}
    result: list[str] = []
    for raw in addrs:
        try:
            addr = str(ipaddress.IPv4Address(raw))
        except ValueError:
            raise ValueError(f"{raw!r} is not an IPv4 address") from None
        if addr not in assigned:
            raise ValueError(f"{addr} is not assigned to any interface of this host")
        if addr not in result:
            result.append(addr)
    return result
