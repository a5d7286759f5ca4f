"""A rendezvous target as the host writes it: `host[:port]`, an IPv4 address
or a host name (docs/api.md, "Finding the room"). Part of the contract:
`start_peer` refuses a target this does not parse."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MAX_TARGETS = 8
DEFAULT_PORT = 3010

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST = re.compile(rf"^{_LABEL}(\.{_LABEL})*\.?$")


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int

    @property
    def text(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_address(self) -> bool:
        return _ipv4(self.host) is not None


def parse_target(text: str) -> Target:
    """`host[:port]` (IPv4 or a host name); raises ValueError with the reason."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"{text[:80]!r}: no host")
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{text[:80]!r}: the port is 1-65535")
        port = int(port_text)
    ip = _ipv4(host)
    if ip is not None:
        if ip.is_multicast or ip.is_unspecified or ip == ipaddress.IPv4Address("255.255.255.255"):
            raise ValueError(f"{text[:80]!r}: not a unicast address")
        return Target(str(ip), port)
    if len(host) > 253 or not _HOST.match(host) or host.replace(".", "").isdigit():
        raise ValueError(f"{text[:80]!r}: not an IPv4 address or a host name")
    return Target(host.lower().rstrip("."), port)


def parse_targets(texts: list[str]) -> tuple[Target, ...]:
    if len(texts) > MAX_TARGETS:
        raise ValueError(f"at most {MAX_TARGETS}")
    targets: list[Target] = []
    for n, text in enumerate(texts):
        try:
            target = parse_target(text)
        except ValueError as exc:
            raise ValueError(f"[{n}] {exc}") from None
        if target not in targets:
            targets.append(target)
    return tuple(targets)


def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None
