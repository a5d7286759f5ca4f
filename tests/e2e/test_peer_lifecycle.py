"""start_peer / stop_peer on a real sidecar inside a test-lab host."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.lab import Lab
from tests.sidecar_proc import RpcFailure, SidecarClient

pytestmark = pytest.mark.lab

DISPLAY = {"name": "Lobby TV", "peer_type": "display", "display_class": "lobby"}


async def test_start_peer_returns_this_peer_and_refuses_a_second_start(
    lab: Lab, tmp_path: Path
) -> None:
    (host,) = lab.hosts(1)
    sidecar = await SidecarClient.spawn_in(host, log=tmp_path / "sidecar.log")
    try:
        before_ms = time.time() * 1000
        me = await sidecar.call("start_peer", {**DISPLAY, "signaling_port": 0})
        assert me["name"] == "Lobby TV"
        assert (me["peer_type"], me["display_class"]) == ("display", "lobby")
        assert me["connection_state"] == "self"
        assert abs(me["started_at"] - before_ms) < 10_000
        with pytest.raises(RpcFailure) as again:
            await sidecar.call("start_peer", {**DISPLAY, "signaling_port": 0})
        assert again.value.code == -32002
        assert await sidecar.call("stop_peer") is None
        status = await sidecar.call("get_leader_status")
        assert status["state"] == "idle"
        restarted = await sidecar.call("start_peer", {**DISPLAY, "signaling_port": 0})
        assert restarted["peer_id"] != me["peer_id"]
    finally:
        await sidecar.aclose()


@pytest.mark.parametrize("how", ["eof", "sigterm"])
async def test_a_started_peer_exits_cleanly_within_3_s(lab: Lab, tmp_path: Path, how: str) -> None:
    (host,) = lab.hosts(1)
    sidecar = await SidecarClient.spawn_in(host, log=tmp_path / "sidecar.log")
    try:
        await sidecar.call("start_peer", {**DISPLAY, "signaling_port": 0})
        started = time.monotonic()
        if how == "eof":
            sidecar.close_stdin()
        else:
            sidecar.process.send_signal(signal.SIGTERM)
        assert await sidecar.wait_exit(3.0) == 0
        assert time.monotonic() - started < 3.0
    finally:
        await sidecar.aclose()
