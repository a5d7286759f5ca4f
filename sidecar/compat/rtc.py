"""aiortc and aioice internals (see `sidecar.compat`): where ICE gathers, and
which candidate pair carries a connection."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aioice.ice

_allowed: set[str] = set()


def restrict_ice_gathering(addresses: Iterable[str]) -> None:
    """Make aioice gather host candidates only on `addresses` (call again when
    they change; connections made later use the new set).

    aioice enumerates every interface of the machine (VPNs and bridges too) and
    offers no parameter for this, so its module-level lookup is wrapped. One
    process runs one peer, so a process-wide setting is right.
    """
    _allowed.clear()
    _allowed.update(addresses)
    if getattr(aioice.ice, "_mw_original_get_host_addresses", None) is None:
        original = aioice.ice.get_host_addresses
        aioice.ice._mw_original_get_host_addresses = original  # type: ignore[attr-defined]

        def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return [a for a in original(use_ipv4, use_ipv6) if a in _allowed]

        aioice.ice.get_host_addresses = host_addresses


@dataclass(frozen=True, slots=True)
class Path:
    """The candidate pair a connection sends on: addresses and candidate types."""

    local: str
    local_type: str
    remote: str
    remote_type: str


def selected_path(pc: Any) -> Path | None:
    """The nominated pair of an aiortc RTCPeerConnection's data transport, or
    None when there is none (yet) or the internals moved."""
    try:
        connection = pc.sctp.transport.transport._connection
        pair = connection._nominated.get(1)
        if pair is None:
            return None
        local, remote = pair.local_candidate, pair.remote_candidate
        return Path(str(local.host), str(local.type), str(remote.host), str(remote.type))
    except AttributeError:
        return None
