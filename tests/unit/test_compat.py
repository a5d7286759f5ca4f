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
