"""The third-party internals of sidecar/compat were checked against the installed
versions: an upgrade outside the tested range fails here, before it fails in a room."""

from __future__ import annotations

from importlib.metadata import version

from sidecar.compat import TESTED


def _key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def test_installed_versions_are_within_what_compat_was_checked_against() -> None:
    for dist, (lowest, beyond) in TESTED.items():
        installed = version(dist)
        assert _key(lowest) <= _key(installed) < _key(beyond), (dist, installed, lowest, beyond)


def test_the_internals_are_where_compat_expects_them() -> None:
    from sidecar.compat import rtc, zc  # first: aiortc without its media side

    # isort: split
    import aioice.ice
    from aiortc import RTCPeerConnection
    from zeroconf._services.registry import ServiceRegistry

    assert callable(aioice.ice.get_host_addresses)
    assert callable(aioice.ice.Connection.check_incoming)
    assert isinstance(aioice.ice.Connection(ice_controlling=True)._remote_candidates, list)
    assert callable(ServiceRegistry.async_remove)
    assert callable(ServiceRegistry.async_get_service_infos)
    assert isinstance(RTCPeerConnection.sctp, property)
    assert rtc.selected_path(object()) is None  # moved internals read as "unknown"
    assert zc.ptr_query("_x._tcp.local.").questions


JSONRPC_PROBE = """
import json, sys
import sidecar.host.rpc  # imports jsonrpcserver through sidecar.compat.jsonrpc
before = {m: m in sys.modules for m in ("jsonrpcserver", "jsonschema", "http.server")}
import http.server, jsonschema.validators
print(json.dumps({
    "before": before,
    "real_after": [
        hasattr(jsonschema.validators, "Draft7Validator"),
        hasattr(http.server, "SimpleHTTPRequestHandler"),
    ],
}))
"""


def test_jsonrpcserver_loads_without_jsonschema_or_http_server_which_stay_importable() -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", JSONRPC_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    seen = json.loads(out)
    assert seen["before"] == {"jsonrpcserver": True, "jsonschema": False, "http.server": False}
    assert seen["real_after"] == [True, True]


FIREFOX_OFFER = "\r\n".join(
    [
        "v=0",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "a=candidate:0 1 UDP 2122252543 6dd8063a-910b-4264-93b3-6b43e9a81c69.local 33525 typ host",
        "a=candidate:1 1 TCP 2105524479 6dd8063a-910b-4264-93b3-6b43e9a81c69.local 9 typ host"
        " tcptype active",
        "a=candidate:2 1 UDP 1686052607 10.0.0.9 40000 typ srflx raddr 0.0.0.0 rport 0",
        "a=end-of-candidates",
        "a=ice-ufrag:30c03bee",
        "",
    ]
)


def test_a_browser_offer_loses_its_mdns_candidates_and_its_end_of_candidates() -> None:
    from sidecar.compat.rtc import remote_sdp_for_aioice

    offer = remote_sdp_for_aioice(FIREFOX_OFFER, "offer")
    assert ".local" not in offer
    assert "a=end-of-candidates" not in offer
    assert "10.0.0.9 40000 typ srflx" in offer  # an address it gave is kept
    assert offer.endswith("a=ice-ufrag:30c03bee\r\n")


def test_an_answer_keeps_its_mdns_candidates_but_not_its_end_of_candidates() -> None:
    from sidecar.compat.rtc import remote_sdp_for_aioice

    answer = remote_sdp_for_aioice(FIREFOX_OFFER, "answer")
    assert answer.count(".local") == 2  # they resolve once the browser has our offer
    assert "a=end-of-candidates" not in answer


def test_a_description_without_mdns_candidates_is_left_alone() -> None:
    from sidecar.compat.rtc import remote_sdp_for_aioice

    plain = FIREFOX_OFFER.replace("6dd8063a-910b-4264-93b3-6b43e9a81c69.local", "10.0.0.8")
    assert remote_sdp_for_aioice(plain, "offer") == plain


def test_a_description_with_bare_line_feeds_is_read_as_aiortc_reads_it() -> None:
    from sidecar.compat.rtc import remote_sdp_for_aioice

    offer = remote_sdp_for_aioice(FIREFOX_OFFER.replace("\r\n", "\n"), "offer")
    assert ".local" not in offer
    assert "a=end-of-candidates" not in offer


def test_a_check_from_an_address_refused_teaches_ice_no_candidate() -> None:
    import types

    import aioice.ice

    from sidecar.compat.rtc import MAX_REMOTE_CANDIDATES, restrict_remote_candidates

    restrict_remote_candidates(lambda address: address.startswith("10.77."))
    try:
        conn = aioice.ice.Connection(ice_controlling=False)
        protocol = types.SimpleNamespace(local_candidate=types.SimpleNamespace(component=1))
        message = types.SimpleNamespace(attributes={"PRIORITY": 1})
        conn.check_incoming(message, ("203.0.113.5", 9), protocol)  # type: ignore[arg-type]
        assert conn._remote_candidates == []
        assert conn._check_list == []
        # A full list learns nothing more, even from an allowed address.
        conn._remote_candidates = [
            aioice.Candidate("f", 1, "udp", 1, f"10.77.0.{n}", 9, "host")
            for n in range(MAX_REMOTE_CANDIDATES)
        ]
        for candidate in conn._remote_candidates:
            candidate._network_host = candidate.host
        conn.check_incoming(message, ("10.77.1.1", 9), protocol)  # type: ignore[arg-type]
        assert len(conn._remote_candidates) == MAX_REMOTE_CANDIDATES
        assert conn._check_list == []
    finally:
        restrict_remote_candidates(lambda address: True)
