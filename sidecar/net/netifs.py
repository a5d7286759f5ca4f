"""Reads this host's IPv4 interfaces, and tells when they may have changed.

The I/O half of `sidecar.core.netview` (which decides what to do with a reading):

* `snapshot()` lists every IPv4 address with its interface, prefix and
  whether the interface is up with carrier (`ifaddr`, plus `/sys/class/net`
  on Linux; elsewhere an interface listed with an address counts as up).
* `ChangeSignal` is a kernel socket that becomes readable when an address or
  a link changes: rtnetlink on Linux, the routing socket on macOS and the
  BSDs. Where neither exists, the caller's polling alone finds changes.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from pathlib import Path

import ifaddr

from sidecar.core.netview import Iface

log = logging.getLogger(__name__)

# Linux <net/if.h> interface flags, as /sys/class/net/<name>/flags shows them
# (without IFF_RUNNING: carrier is in `operstate`).
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8
_RUNNING_STATES = ("up", "unknown")  # "unknown": a link that does not report carrier
_SYS_NET = Path("/sys/class/net")

# <linux/rtnetlink.h> multicast groups: links, IPv4 addresses, IPv4 routes.
_RTMGRP_LINK = 0x1
_RTMGRP_IPV4_IFADDR = 0x10
_RTMGRP_IPV4_ROUTE = 0x40


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


def snapshot() -> list[Iface]:
    """Every IPv4 address assigned here, in the order the system lists them."""
    found: list[Iface] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str):
                found.append(Iface(adapter.name, ip.ip, ip.network_prefix, _is_up(adapter.name)))
    return found


class ChangeSignal:
    """A non-blocking socket that is readable after an interface change.

    `fileno()` is for the event loop's reader; `drain()` empties it (the
    messages themselves are not parsed: any of them means "read again").
    `None` from `open()` where the system offers no such socket.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    def open(cls) -> ChangeSignal | None:
        try:
            if sys.platform.startswith("linux"):
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
                try:
                    sock.bind((0, _RTMGRP_LINK | _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV4_ROUTE))
                except OSError:
                    sock.close()
                    raise
            elif hasattr(socket, "AF_ROUTE"):  # macOS, the BSDs
                sock = socket.socket(socket.AF_ROUTE, socket.SOCK_RAW, socket.AF_UNSPEC)
            else:
                return None
        except OSError as exc:
            log.info("no interface-change socket (%s): polling only", exc)
            return None
        sock.setblocking(False)
        return cls(sock)

    def fileno(self) -> int:
        return self._sock.fileno()

    def drain(self) -> None:
        for _ in range(256):  # bounded: a storm of changes is one reading anyway
            try:
                if not self._sock.recv(65536):
                    return
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ENOBUFS after an overflow: the next reading sees all
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
