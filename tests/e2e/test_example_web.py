"""The example app's page with no sidecar: what a Tauri iOS or Android build of it runs
(tauri-bridge/README.md, "On iOS and Android: the web peer"). Its web build is served
as a plain page inside a phone's lab namespace, at the origin a Tauri Android app's
webview has, `http://tauri.localhost` (port 80 of the phone's own loopback: browsers
resolve `*.localhost` there themselves), and opened in Chromium and Firefox. The page
picks a web peer by itself (no Tauri in the page) and joins real sidecars in other
namespaces; every check reads what a person sees, through the desktop webview suite's
selectors (tests/webview/app.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.page import Page, Pages
from tests.e2e.room import (
    CONTROLLER,
    LabPeer,
    Room,
    connected_ids,
    display,
    keyed_controller,
    messages,
    notes,
    via,
)
from tests.lab import HOST_IFACE, Host, expect_line
from tests.webview.app import REPO, App

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

EXAMPLE = REPO / "tauri-bridge" / "example"
APP_ORIGIN = "http://tauri.localhost"  # a Tauri v2 app's page on Android (and Windows)
SETUP_S = 15.0


def kept(device: str) -> str:
    """The key the page keeps for the default room joined through `device` (host:port)."""
    return f"return localStorage.getItem('mobile-worship:room-key:{device}|default');"


def js(value: object) -> str:
    return json.dumps(value)


@pytest.fixture(scope="session")
def example_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's web build, made once per session from the sources under test (into a
    folder of its own: example/dist is what the desktop app embeds, built by its stage)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed (Node.js 20.19 or newer builds the example's page)")
    if not (EXAMPLE / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=EXAMPLE, check=True, timeout=600)
    out = tmp_path_factory.mktemp("example-web")
    # No VITE_PEER, no TAURI_ENV_PLATFORM: the page decides at run time (no Tauri: web).
    env = {k: v for k, v in os.environ.items() if k not in ("VITE_PEER", "TAURI_ENV_PLATFORM")}
    built = subprocess.run(
        [npm, "run", "--silent", "build", "--", "--outDir", str(out), "--emptyOutDir"],
        cwd=EXAMPLE,
        env=env,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, f"the example's page did not build:\n{built.stdout}{built.stderr}"
    assert (out / "index.html").is_file()
    return out


async def serve(host: Host, dist: Path) -> None:
    """The page at http://tauri.localhost/ for browsers in `host` (a static server on its
    loopback, port 80: the origin has no port), until the lab closes."""
    server = await host.spawn_async(
        [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "80"],
        cwd=dist,
        stderr=subprocess.DEVNULL,  # its access log
    )
    await expect_line(server.stdout, "Serving HTTP", 10)


async def open_app(room: Room, pages: Pages, dist: Path, tmp_path: Path, url: str) -> App:
    """A phone with the example's page open at `url` (under http://tauri.localhost)."""
    phone = room.lab.add_host("phone")
    # A default route, as a phone on a Wi-Fi has (lab hosts have none; the lab has no
    # uplink, so nothing leaves). Firefox takes its ICE candidates from the interface of
    # the default route, or without one from the route to the page's host: the loopback
    # here, which gives none, and no channel could open directly.
    phone.run(["ip", "route", "add", "default", "dev", HOST_IFACE], check=True)
    await serve(phone, dist)
    page: Page = await pages.open(phone, APP_ORIGIN + url)
    return App(phone, page, tmp_path, tmp_path / "artifacts")


def through(peer: LabPeer) -> str:
    """JS condition: the page says it joins the room through `peer`'s device."""
    device = f"{peer.host.ip}:3010"
    return (
        "const p = document.getElementById('web-peer');"
        f" return !!p && p.querySelector('.device').textContent === {js(device)};"
    )


def shows(sender: LabPeer, payload: object) -> str:
    """JS condition: "Last messages" lists `payload` from `sender` (the page's line)."""
    line = f"{sender.peer_id[:8]}: {json.dumps(payload, separators=(',', ':'))}"
    return f"s.messages.some((m) => m.includes({js(line)}))"


async def room_choices(app: App) -> list[str]:
    return list(
        await app.page.eval(
            "return [...document.querySelectorAll(\"#start select[aria-label='room'] option\")]"
            ".map((o) => o.value);"
        )
    )


async def self_id(app: App) -> str:
    (me,) = [r["id"] for r in (await app.snapshot())["rows"] if r["state"] == "This device"]
    return str(me)


async def test_the_example_page_pairs_with_a_code_and_works_over_a_web_peer(
    room: Room, pages: Pages, example_dist: Path, tmp_path: Path
) -> None:
    ctrl, key = await keyed_controller(room)
    stage = await room.spawn({**display("Stage", "stage"), "room_key": key, "echo": True})
    await stage.start()
    window = await ctrl.client.call("open_pairing", {})

    # Nothing tells the page where the room is: it asks for a device's address.
    app = await open_app(room, pages, example_dist, tmp_path, "/")
    await app.expect("return !!document.getElementById('device-address');", "the address form")
    await app.page.type("#device-address input", f"http://{ctrl.host.ip}:3010/")
    await app.page.click("#device-address button[type='submit']")
    await app.expect(through(ctrl), "joining through the booth")
    # A web peer cannot start a room (it never leads): it is not offered.
    assert await room_choices(app) == ["code", "open"]

    # The six digits the booth shows, typed as a person would, as a controller.
    await app.start("Phone", "controller", room="code", code=window["code"])
    await app.see(
        "s.role === 'Follower' && s.leader === 'Booth' && s.room && s.room.startsWith('Keyed')"
        " && s.connected === '2 of 2 other devices'",
        "in the booth's keyed room, connected to the booth and the stage",
        SETUP_S,
    )
    # Kept in the app's own storage, for this device only: a link naming another
    # device (maybe a stranger's) finds no key there and cannot replace this one.
    assert await app.page.eval(kept(f"{ctrl.host.ip}:3010")) == key
    assert await app.page.eval(kept("10.77.0.250:3010")) is None
    phone = await self_id(app)

    # A cue from the booth shows on the phone.
    await ctrl.client.wait_until(lambda: phone in connected_ids(ctrl), SETUP_S)
    assert await via(ctrl, phone) == "direct"  # the phone's own WebRTC, not the relay
    await ctrl.client.call("send_control_message", {"payload": {"slide": 3}, "to": phone})
    await app.see(
        shows(ctrl, {"slide": 3}),
        "the booth's cue",
    )
    # A cue from the phone's page reaches the booth and the stage, whose echo shows.
    await app.send_cue('{"slide": 4}')
    await app.see(
        shows(stage, {"slide": 4})
        + " && s.log.some((l) => !l.error && l.text.includes('to 2 peer(s)'))",
        "the stage's echo of the phone's cue",
    )
    await ctrl.client.wait_until(
        lambda: {"slide": 4} in [m["payload"] for m in messages(ctrl) if m["from"] == phone], 5
    )

    # The app opened again (no address, no code): the device and the key it kept.
    await app.page.eval("window.mwOld = true; setTimeout(() => location.assign('/'), 0); return 1;")
    await app.expect(
        "const room = document.querySelector(\"#start select[aria-label='room']\");"
        " return !window.mwOld && !!room && room.value === 'saved';",
        "the app opened again, with the saved room offered",
        SETUP_S,
    )
    await app.expect(through(ctrl), "the booth remembered")
    await app.start("Phone", "controller", room="saved")
    await app.see(
        f"s.role === 'Follower' && s.leader === 'Booth' && s.room.startsWith('Keyed')"
        f" && s.rows.some((r) => r.state === 'This device' && r.id !== {js(phone)})"
        " && s.connected === '2 of 2 other devices'",
        "back in the room without a code",
        SETUP_S,
    )
    assert [n["reason"] for n in notes(ctrl, "webrtc:pairing")].count("paired") == 1


async def test_the_example_page_named_by_its_address_joins_an_open_room_as_a_display(
    room: Room, pages: Pages, example_dist: Path, tmp_path: Path
) -> None:
    (ctrl,) = await room.start(CONTROLLER)
    await ctrl.client.wait_until(lambda: ctrl.client.leader_id == ctrl.peer_id, SETUP_S)
    app = await open_app(
        room, pages, example_dist, tmp_path, f"/#signal=ws://{ctrl.host.ip}:3010/signal"
    )
    await app.expect(through(ctrl), "joining through the booth")
    await app.start("Lobby phone", "display", "lobby", room="open")
    await app.see(
        "s.role === 'Follower' && s.leader === 'Booth' && s.room.startsWith('Open')"
        " && s.connected === '1 of 1 other device'",
        "in the booth's open room",
        SETUP_S,
    )
    # It warns about the open room, and offers the booth's display page for screens.
    said = str(await app.page.eval("return document.body.innerText;"))
    assert "any device on this network can join" in said
    assert f"http://{ctrl.host.ip}:3010/" in said
    lobby = await self_id(app)
    await ctrl.client.wait_until(lambda: lobby in connected_ids(ctrl), SETUP_S)
    assert await via(ctrl, lobby) == "direct"
    sent = await ctrl.client.call(
        "send_control_message", {"payload": "Welcome", "display_class": "lobby"}
    )
    assert sent["sent_to"] == [lobby]
    await app.see(
        shows(ctrl, "Welcome"),
        "the booth's cue to the lobby",
    )
