"""What a listener on the room's network reads (docs/api.md, "What is encrypted,
and by what key"): tcpdump on the lab bridge records a keyed room through two
pairings (a code and a pairing link), a browser whose channel is relayed by
the leader, cues and retained values, and a rotation that revokes a display
that stays online and listening. Nothing secret may be in the capture: not the
room key, not the new key, not one cue or retained value, in any UDP payload,
TCP stream or (unmasked) WebSocket message."""

from __future__ import annotations

import functools
import json
import secrets
import signal
from pathlib import Path

import pytest

from tests.browser.page import Pages
from tests.e2e.room import (
    LabPeer,
    Room,
    display,
    keyed_controller,
    messages,
    notes,
    via,
)
from tests.e2e.test_browser import NO_UDP
from tests.e2e.wire_capture import Capture

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

SETUP_S = 15.0


async def paired_display(room: Room, ctrl: LabPeer, name: str) -> LabPeer:
    window = await ctrl.client.call("open_pairing", {})
    peer = await room.spawn({**display(name, "stage"), "pairing_code": window["code"]})
    await peer.start()
    return peer


def shows(text: str) -> str:
    """A page script: the page shows `text` as its latest cue."""
    return (
        "const e = document.getElementById('last-message');"
        f" return e && e.textContent === {json.dumps(text)};"
    )


def got(peer: LabPeer, payloads: list[str]) -> bool:
    return {m["payload"] for m in messages(peer)} >= set(payloads)


async def cues(ctrl: LabPeer, n: int, tag: str) -> tuple[list[str], list[str]]:
    """`n` cues to everyone, every fifth also the room's value of `song`: the
    texts sent, and the values retained."""
    texts, values = [], []
    for i in range(n):
        text = f"{tag} cue {i} {secrets.token_hex(6)}"
        params: dict[str, object] = {"payload": text}
        if i % 5 == 0:
            params["retain"] = "song"
            values.append(text)
        await ctrl.client.call("send_control_message", params)
        texts.append(text)
    return texts, values


# Also WebKitGTK: a page without WebRTC, relayed from its first offer (webrtc: false).
@pytest.mark.parametrize("engine", ["chromium", "firefox", "webkit"])
async def test_a_listener_reads_no_key_no_cue_and_no_value(
    room: Room, pages: Pages, tmp_path: Path
) -> None:
    pcap = tmp_path / "room.pcap"
    tcpdump = room.lab.capture(pcap)
    ctrl, key = await keyed_controller(room)
    stage = await paired_display(room, ctrl, "Stage")
    tablet = await paired_display(room, ctrl, "Lost tablet")
    # A phone on a network that drops its UDP opens the pairing link: relayed.
    window = await ctrl.client.call("open_pairing", {})
    phone_host = room.lab.add_host("phone")
    phone_host.run(["nft", "-f", "-"], input=NO_UDP, check=True)
    page = await pages.open(phone_host, window["pair_url"])
    phone = await page.joined(SETUP_S)
    await ctrl.client.wait_until(
        lambda: any(n["peer"]["peer_id"] == phone for n in notes(ctrl, "webrtc:connected")), SETUP_S
    )
    assert await via(ctrl, phone) == "relay"

    before, kept_before = await cues(ctrl, 50, "before")
    for peer in (stage, tablet):
        await peer.client.wait_until(functools.partial(got, peer, before), SETUP_S)
    await page.wait(shows(before[-1]), SETUP_S)

    # The tablet is lost: revoked. It stays online, with the old key, listening.
    outcome = await ctrl.client.call("rotate_room_key", {"revoke": [tablet.peer_id]})
    assert outcome["revoked"] == [tablet.peer_id]
    new_key = notes(ctrl, "webrtc:room_key")[-1]["room_key"]
    after, kept_after = await cues(ctrl, 50, "after")
    await stage.client.wait_until(functools.partial(got, stage, after), SETUP_S)
    await page.wait(shows(after[-1]), SETUP_S)
    assert not any(m["payload"] in after for m in messages(tablet))

    tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(timeout=10)
    capture = Capture.read(pcap)
    # The capture is a real one: it holds the room's traffic, in the forms a
    # listener reads (mDNS in clear, sealed signaling frames unmasked).
    assert capture.holds("Lost tablet")  # its name, in an mDNS record
    sealed = [m for m in capture.ws_messages if m.startswith(b'{"type":"sealed"')]
    assert len(sealed) > 50 and not capture.compressed
    for secret in (key, new_key, *before, *after, *kept_before, *kept_after):
        assert not capture.holds(secret), secret
