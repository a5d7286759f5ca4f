"""A peer carries data channels without the media side of aiortc (docs/architecture.md,
"No media side"): real sidecars in lab namespaces start, connect and exchange messages
both ways, and neither has PyAV or an FFmpeg library mapped into its memory. With the
stand-ins of sidecar/compat/media.py gone or incomplete, aiortc imports the real PyAV
and this fails; it runs against the frozen binary too (./scripts/test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.room import CONTROLLER, Room, connected, display, messages

pytestmark = pytest.mark.lab

SETUP_S = 10.0
NATIVE_MEDIA = ("/av/", "av.libs", "libavcodec", "libavformat", "libavutil", "libswscale")


def media_libraries(pid: int) -> list[str]:
    """The PyAV and FFmpeg files mapped into process `pid`."""
    mapped = {
        line.split()[-1]
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
        if "/" in line
    }
    return sorted(p for p in mapped if any(m in p for m in NATIVE_MEDIA))


async def test_peers_connect_and_exchange_messages_without_the_media_side(room: Room) -> None:
    ctrl, disp = await room.start(CONTROLLER, {**display("Stage", "stage"), "echo": True})
    await connected(
        [ctrl, disp], {ctrl.peer_id: {disp.peer_id}, disp.peer_id: {ctrl.peer_id}}, SETUP_S
    )
    sent = await ctrl.client.call("send_control_message", {"payload": {"slide": 3}})
    assert sent["sent_to"] == [disp.peer_id]
    await ctrl.client.wait_until(lambda: len(messages(ctrl, disp)) == 1, 5)
    assert messages(disp, ctrl)[0]["payload"] == {"slide": 3}
    assert messages(ctrl, disp)[0]["payload"] == {"slide": 3}  # the echo, back
    for peer in (ctrl, disp):
        assert media_libraries(peer.client.process.pid) == [], peer.params["name"]
