"""The display page looks right from the back of the room (docs/api.md, "Web peers",
"What the display page shows"): a browser in its own lab namespace shows a real
controller's cues as text, as large as fits, at a projector's, a laptop's and a
phone's size, with the status small and worded for a volunteer. The screenshots are
kept in test-artifacts/browser/<test>/<engine>-<width>x<height>[-<cue>].png (headless
Firefox lays out no narrower than 500 px: its phone is 500x844)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.browser.page import Page, Pages
from tests.e2e.room import (
    CONTROLLER,
    LabPeer,
    Room,
    connected_ids,
    display,
    keyed_controller,
    notes,
)
from tests.e2e.test_browser import NO_UDP

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

SETUP_S = 10.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
SIZES = [(1920, 1080), (1280, 720), (390, 844)]
FIREFOX_MIN_WIDTH = 500
BAR = "return document.querySelector('.mw-display__bar').innerText;"


def says(text: str) -> str:
    """A page script: the status line reads `text`."""
    return (
        "const s = document.querySelector('.mw-summary');"
        f" return !!s && s.textContent === {json.dumps(text)};"
    )


LINES = [
    "Amazing grace, how sweet the sound",
    "That saved a wretch like me",
    "I once was lost, but now am found",
    "Was blind, but now I see",
]
LYRICS = {"title": "Amazing Grace", "lines": LINES, "slide": 7}  # slide: for apps, not shown
LONG = {
    "text": (
        "Welcome to our service this morning. Tea and coffee are served in the hall "
        "after the service, and everyone is invited to stay. The children's groups meet "
        "in the side rooms during the second hymn; parents can collect them at the end. "
        "Please remember to switch your phones to silent, and if you are visiting for the "
        "first time, do introduce yourself to one of the stewards at the door: we would "
        "love to meet you. Next Sunday the service starts half an hour earlier than usual, "
        "at half past nine, because of the parish meeting that follows it in the hall."
    )
}
OTHER = {"song": {"name": "Be Thou My Vision", "verse": 2}, "key": "D", "tags": ["hymn", "irish"]}

# Everything about the latest cue the checks need, and every other visible text.
MEASURE = """
const cue = document.getElementById('last-message');
if (!cue) return null;
const stage = cue.parentElement;
const box = (el) => { const r = el.getBoundingClientRect();
  return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, area: r.width * r.height}; };
const visible = (el) => !el.checkVisibility ||
  el.checkVisibility({visibilityProperty: true, checkVisibilityCSS: true});
const texts = [];
for (const el of document.body.querySelectorAll('*')) {
  const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !visible(el)) continue;
  const b = box(el);
  if (b.right - b.left <= 1 || b.bottom - b.top <= 1) continue;  // nothing, or visually hidden
  texts.push({text: el.textContent.slice(0, 50), in_cue: cue.contains(el), area: b.area,
              font: parseFloat(getComputedStyle(el).fontSize)});
}
return {
  id: cue.dataset.cue, fit: cue.dataset.fit || null, viewport: [innerWidth, innerHeight],
  cue: box(cue), text: cue.innerText,
  cue_scroll: [cue.scrollWidth, cue.clientWidth, cue.scrollHeight, cue.clientHeight],
  stage_scroll: [stage.scrollWidth, stage.clientWidth, stage.scrollHeight, stage.clientHeight],
  texts, status: document.querySelector('.mw-display__bar').innerText,
};
"""


def fitted(message_id: str) -> str:
    """A page script: the cue `message_id` is shown and fitted to the present viewport."""
    return (
        "const e = document.getElementById('last-message');"
        f" return !!e && e.dataset.cue === {json.dumps(message_id)}"
        " && e.dataset.fit === `${e.dataset.cue}@${innerWidth}x${innerHeight}`;"
    )


def artifacts(request: pytest.FixtureRequest) -> Path:
    folder = ARTIFACTS / str(request.node.originalname)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def show(ctrl: LabPeer, page: Page, to: str, payload: Any) -> dict[str, Any]:
    """Send `payload` to the page; what the page measures once it is shown and fitted."""
    sent = await ctrl.client.call("send_control_message", {"payload": payload, "to": to})
    await page.wait(fitted(sent["message_id"]), 5)
    return dict(await page.eval(MEASURE))


def assert_large_and_whole(m: dict[str, Any], where: str) -> float:
    """The cue is on screen, not clipped, and the largest text of the page: its font size."""
    width, height = m["viewport"]
    cue = m["cue"]
    assert cue["left"] >= -0.5 and cue["top"] >= -0.5, (where, cue)
    assert cue["right"] <= width + 0.5, (where, cue, width)
    assert cue["bottom"] <= height + 0.5, (where, cue, height)
    sw, cw, sh, ch = m["cue_scroll"]
    assert sw <= cw and sh <= ch, (where, "the cue overflows its box", m["cue_scroll"])
    sw, cw, sh, ch = m["stage_scroll"]
    assert sw <= cw and sh <= ch, (where, "the cue overflows the screen", m["stage_scroll"])
    inside = [t for t in m["texts"] if t["in_cue"]]
    outside = [t for t in m["texts"] if not t["in_cue"]]
    assert inside, (where, "no visible text in the cue", m)
    smallest_in = min(t["font"] for t in inside)
    largest_out = max((t["font"] for t in outside), default=0.0)
    assert smallest_in > largest_out, (where, "a text outside the cue is as large", m["texts"])
    assert all(cue["area"] > t["area"] for t in outside), (where, cue, outside)
    largest_in = max(t["font"] for t in inside)
    assert largest_in >= 2 * largest_out, (where, "the cue is not much larger", m["texts"])
    return float(largest_in)


async def test_the_cue_is_the_largest_thing_on_the_page_at_each_size(
    room: Room, pages: Pages, request: pytest.FixtureRequest
) -> None:
    ctrl, key = await keyed_controller(room)
    url = f"http://{ctrl.host.ip}:3010/#name=Projector&key={key}"
    page = await pages.open(room.lab.add_host("tv"), url)
    tv = await page.joined(SETUP_S)
    await ctrl.client.wait_until(lambda: tv in connected_ids(ctrl), SETUP_S)
    await page.wait(says("Connected to the booth"), SETUP_S)
    folder = artifacts(request)
    for asked in SIZES:
        width, height = await page.size(*asked)
        if [width, height] != list(asked):
            # Headless Firefox keeps a window at least 500 px wide: the narrowest it gives
            # stands in for the phone (tests/browser/page_driver.py sizes the window).
            assert pages.engine == "firefox" and asked[0] < FIREFOX_MIN_WIDTH, (asked, width)
            assert [width, height] == [FIREFOX_MIN_WIDTH, asked[1]], (asked, width, height)
        where = f"{pages.engine} {width}x{height}"

        lyrics = await show(ctrl, page, tv, LYRICS)
        await page.screenshot(folder / f"{pages.engine}-{width}x{height}.png")
        font = assert_large_and_whole(lyrics, where)
        shown = lyrics["text"]
        assert shown.split("\n")[0] == "Amazing Grace", shown
        for line in LINES:
            assert " ".join(line.split()) in " ".join(shown.split()), (line, shown)
        assert "7" not in shown and not set('{}"[]') & set(shown), shown
        assert font >= 0.04 * height, (where, "too small to read from the back", font)
        # the status is one quiet line: the booth heard, nothing alarming
        assert "Connected to the booth" in lyrics["status"], lyrics["status"]
        for alarm in ("Not connected", "Error", "Cannot", "Lost"):
            assert alarm not in lyrics["status"], lyrics["status"]

        long = await show(ctrl, page, tv, LONG)
        await page.screenshot(folder / f"{pages.engine}-{width}x{height}-long.png")
        font = assert_large_and_whole(long, f"{where} (long text)")
        assert " ".join(long["text"].split()) == LONG["text"]
        assert font >= 0.025 * height, (where, "the long text became unreadable", font)

    # Any other payload reads as words: no braces, no quotes.
    other = await show(ctrl, page, tv, OTHER)
    await page.screenshot(folder / f"{pages.engine}-other.png")
    assert_large_and_whole(other, "other payload")
    assert other["text"].split("\n") == [
        "song name: Be Thou My Vision",
        "song verse: 2",
        "key: D",
        "tags: hymn, irish",
    ]
    # a string is shown exactly
    sent = await ctrl.client.call("send_control_message", {"payload": "Verse 1", "to": tv})
    await page.wait(fitted(sent["message_id"]), 5)
    assert await page.eval("return document.getElementById('last-message').textContent;") == (
        "Verse 1"
    )


async def test_the_status_waits_for_the_booth_quietly_then_says_it_is_relayed(
    room: Room, pages: Pages, request: pytest.FixtureRequest
) -> None:
    # The lobby TV's sidecar is switched on first: a display alone, leading the room.
    (lobby,) = await room.start({**display("Lobby TV", "lobby"), "create_room_key": True})
    (created,) = notes(lobby, "webrtc:room_key")
    key = str(created["room_key"])
    await lobby.client.wait_until(lambda: lobby.client.leader_id == lobby.peer_id, SETUP_S)
    phone_host = room.lab.add_host("phone")
    phone_host.run(["nft", "-f", "-"], input=NO_UDP, check=True)  # no direct path: the relay
    page = await pages.open(phone_host, f"http://{lobby.host.ip}:3010/#name=Phone&key={key}")
    phone = await page.joined(SETUP_S)
    await lobby.client.wait_until(lambda: phone in lobby.client.peer_ids(), SETUP_S)
    # Only displays: nothing is wrong, nothing is amber; the page waits for the booth.
    await page.wait(says("Waiting for the booth"), SETUP_S)
    status = str(await page.eval(BAR))
    for alarm in ("Not connected", "Error", "Cannot", "Lost", "relay"):
        assert alarm not in status, status
    assert await page.eval("return document.querySelector('.mw-display--attention') === null;")
    row = json.dumps(f".mw-peers tr[data-peer-id='{lobby.peer_id}'] .mw-state")
    lobby_row = f"const r = document.querySelector({row}); return r && r.textContent;"
    assert await page.wait(lobby_row, SETUP_S) == "No link needed"
    # An http page from a LAN address is no secure context: no wake lock, and it says so.
    assert "Screen may sleep: this page cannot keep it awake" in status, status
    folder = artifacts(request)
    await page.size(1280, 720)
    await page.screenshot(folder / f"{pages.engine}-waiting.png")

    # The booth arrives and leads; with its UDP blocked the phone hears it through the relay.
    booth = await room.spawn({**CONTROLLER, "room_key": key})
    await booth.start()
    await booth.client.wait_until(lambda: phone in connected_ids(booth), 3 * SETUP_S)
    await page.wait(
        "const t = document.querySelector('.mw-display__bar').innerText;"
        " return t.includes('Connected to the booth') && t.includes(\"Via the booth's relay\");",
        SETUP_S,
    )
    status = str(await page.eval(BAR))
    for alarm in ("Not connected", "Error", "Cannot", "Lost"):
        assert alarm not in status, status
    assert await page.eval("return document.querySelector('.mw-display--attention') === null;")
    # The details, opened by hand: the booth's channel goes through the leader (itself).
    await page.click(".mw-status__details > summary")
    row = json.dumps(f".mw-peers tr[data-peer-id='{booth.peer_id}'] td:last-child")
    booth_row = f"const r = document.querySelector({row}); return r && r.innerText;"
    assert await page.wait(booth_row, SETUP_S) == "Connected (relayed by the leader)"
    await page.screenshot(folder / f"{pages.engine}-relayed-details.png")


@pytest.mark.parametrize("engine", ["webkit"])  # the `pages` of this test: no RTCPeerConnection
async def test_a_browser_without_webrtc_says_discreetly_that_it_is_relayed(
    room: Room, pages: Pages, request: pytest.FixtureRequest
) -> None:
    ctrl, key = await keyed_controller(room)
    page = await pages.open(
        room.lab.add_host("tv"), f"http://{ctrl.host.ip}:3010/#name=Lobby%20TV&key={key}"
    )
    assert await page.eval("return typeof RTCPeerConnection;") == "undefined"
    tv = await page.joined(SETUP_S)
    await ctrl.client.wait_until(lambda: tv in connected_ids(ctrl), SETUP_S)
    await page.wait(says("Connected to the booth"), SETUP_S)
    status = str(await page.eval(BAR))
    assert "Via the booth's relay (this browser cannot link directly)" in status, status
    assert await page.eval("return document.querySelector('.mw-display--attention') === null;")
    width, height = await page.size(1280, 720)
    lyrics = await show(ctrl, page, tv, LYRICS)
    await page.screenshot(artifacts(request) / f"webkit-{width}x{height}.png")
    assert_large_and_whole(lyrics, f"webkit {width}x{height}")
