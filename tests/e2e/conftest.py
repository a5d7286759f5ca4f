"""Fixtures for end-to-end tests that run in the network-namespace test lab (tests/lab.py)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:  # make `tests.lab` importable however pytest was started
    sys.path.insert(0, _REPO)

from tests.browser.page import WEBRTC_ENGINES, Pages, browser_missing  # noqa: E402
from tests.e2e.room import Room  # noqa: E402
from tests.lab import Lab, lab_unavailable_reason, sweep_stale_labs  # noqa: E402


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    """An empty lab; ``h1, h2 = lab.hosts(2)`` adds hosts.  Skips where labs cannot run.

    Everything (processes, namespaces) is removed after the test, pass or fail.  The fixture
    is async so cleanup (``Lab.aclose``) runs while the test's event loop is still alive.
    """
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    sweep_stale_labs()
    the_lab = Lab()
    try:
        yield the_lab
    finally:
        await the_lab.aclose()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Lets fixtures see whether the test failed (item.rep_call), to dump logs.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def sidecar_logs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder for the sidecars' stderr; printed (tail) when the test fails."""
    yield tmp_path
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for log in sorted(tmp_path.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()
            print(f"\n===== {log.name} (last 60 lines) =====")
            print("\n".join(lines[-60:]))


@pytest.fixture
async def room(lab: Lab, sidecar_logs: Path) -> AsyncIterator[Room]:
    """Real sidecars in the lab, one host each; every one is closed afterwards."""
    the_room = Room(lab, sidecar_logs)
    try:
        yield the_room
    finally:
        await the_room.close()


@pytest.fixture(params=WEBRTC_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each browser engine with WebRTC: a test that opens pages runs once on each."""
    return str(request.param)


@pytest.fixture
async def pages(tmp_path: Path, engine: str) -> AsyncIterator[Pages]:
    """Browser pages a test opens (`await pages.open(host, url)`), of the engine under
    test; a screenshot of each is kept in the test's folder, then every one is closed."""
    if (missing := browser_missing(engine)) is not None:
        pytest.fail(missing)  # ./scripts/test installs it: its absence is a broken setup
    opened = Pages(engine)
    try:
        yield opened
    finally:
        for n, page in enumerate(opened):
            with contextlib.suppress(AssertionError):
                await page.screenshot(tmp_path / f"page-{n}.png")
            await page.close()
