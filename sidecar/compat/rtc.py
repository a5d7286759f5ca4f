"""aiortc and aioice internals (see `sidecar.compat`): where ICE gathers, which
remote candidates it may check, and which candidate pair carries a connection.

The sidecar imports aiortc from here only: its media side is replaced by
stand-ins (`sidecar.compat.media`) before aiortc's first import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sidecar.compat import media

media.install()

import aioice.ice  # noqa: E402 (after the stand-ins)
import aioice.mdns  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp  # noqa: E402

__all__ = [
    "Path",
    "RTCConfiguration",
    "RTCDataChannel",
    "RTCIceServer",
    "RTCIceTransportPolicy",
    "RTCPeerConnection",
    "RTCSessionDescription",
    "candidate_from_sdp",
    "remote_sdp_for_aioice",
    "restrict_ice_gathering",
    "restrict_remote_candidates",
    "selected_path",
]

log = logging.getLogger("sidecar.net.channels")

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


_remote_allowed: list[Callable[[str], bool]] = []
MAX_REMOTE_CANDIDATES = 64
"""Remote candidates one ICE transport keeps (a browser offers a handful)."""


def restrict_remote_candidates(allowed: Callable[[str], bool]) -> None:
    """Make aioice drop every remote candidate whose address `allowed` refuses
    (call again to change the rule). A candidate comes from the network, in
    the other side's SDP: without this, ICE would send connectivity checks to
    whatever addresses it names. mDNS (`.local`) candidates are checked once
    resolved. One process runs one peer: a process-wide rule is right."""
    _remote_allowed[:] = [allowed]
    if getattr(aioice.ice.Connection, "_mw_original_add_remote", None) is None:
        original = aioice.ice.Connection._add_remote_candidate
        aioice.ice.Connection._mw_original_add_remote = original  # type: ignore[attr-defined]

        def add_remote(self: Any, remote_candidate: Any, network_host: str) -> None:
            if _remote_allowed and not _remote_allowed[0](network_host):
                log.info(
                    "ICE: ignoring a remote %s candidate at %s (neither on our networks "
                    "nor given to us)",
                    getattr(remote_candidate, "type", "?"),
                    network_host,
                )
                return
            original(self, remote_candidate, network_host)

        aioice.ice.Connection._add_remote_candidate = add_remote  # type: ignore[method-assign]

        # A check from an address the SDP never named makes aioice learn it as a
        # peer-reflexive candidate and send checks back (RFC 8445 §7.3.1.3): the same
        # rule applies there, and a transport learns at most MAX_REMOTE_CANDIDATES.
        # (In an open room the ICE password travels with the SDP, so anyone who reads
        # the signaling could otherwise make us check any address, without bound.)
        incoming = aioice.ice.Connection.check_incoming

        def check_incoming(self: Any, message: Any, addr: tuple[str, int], protocol: Any) -> None:
            known = any(
                c._network_host == addr[0] and c.port == addr[1] for c in self._remote_candidates
            )
            if not known:
                if _remote_allowed and not _remote_allowed[0](addr[0]):
                    log.info("ICE: ignoring a check from %s (not on our networks)", addr[0])
                    return
                if len(self._remote_candidates) >= MAX_REMOTE_CANDIDATES:
                    log.info("ICE: ignoring a check from %s (candidates full)", addr[0])
                    return
            incoming(self, message, addr, protocol)

        aioice.ice.Connection.check_incoming = check_incoming  # type: ignore[method-assign]


def _is_mdns_candidate(line: str) -> bool:
    # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ …
    fields = line.split()
    if not line.startswith("a=candidate:") or len(fields) < 5:
        return False
    return bool(aioice.mdns.is_mdns_hostname(fields[4]))


def remote_sdp_for_aioice(sdp: str, kind: str) -> str:
    """A browser's description, made safe for aioice 0.13 before aiortc reads it.

    Browsers hide their host addresses behind mDNS names (`<uuid>.local`), and
    Firefox answers the mDNS query for such a name only once it has the other
    side's description: in the lab a Firefox *offer*'s names never resolved
    (4 runs of 4, aioice gives up after 1 s), while a Firefox answer's did
    within 30 ms. aioice then prunes the component that has no resolved
    candidate at end-of-candidates, and because it gathers its own candidates
    per remaining component, an answer made after that carries no candidate at
    all: the browser has nothing to check, and the direct path never opens (5
    of 8 Firefox pages stayed relayed). So, for aioice:

    - `a=end-of-candidates` is dropped from any description with an mDNS
      candidate (no pruning; the checks run until the link's own deadline);
    - an offer's mDNS candidates are dropped (they cannot resolve yet, and
      waiting 1 s for each delays the answer): the browser's checks to our
      candidates reach us from its real address, a peer-reflexive candidate
      (RFC 8445 §7.3.1.3), as with Chromium's hidden ones.
    """
    lines = sdp.splitlines()  # as aiortc reads it: any line ending
    mdns = [n for n, line in enumerate(lines) if _is_mdns_candidate(line)]
    if not mdns:
        return sdp
    dropped = set(mdns) if kind == "offer" else set()
    kept = [
        line
        for n, line in enumerate(lines)
        if n not in dropped and line.strip() != "a=end-of-candidates"
    ]
    return "\r\n".join(kept) + "\r\n"
