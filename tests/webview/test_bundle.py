"""The example app as people install it: the `.deb` the Tauri CLI builds
(`npm run tauri bundle -- --debug --bundles deb` in tauri-bridge/example, run by
./scripts/test), unpacked into a root of its own as dpkg would install it, then run
from there in a lab namespace through its page, next to real sidecars in others.

It fails when anything the sidecar needs is left out of the bundle (the support
folder's entry in src-tauri/tauri.linux.conf.json, say): the bundled sidecar
would not start, and the app would never lead."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.room import Room
from tests.lab import Lab
from tests.webview.app import REPO, App, app_missing

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

BUNDLES = REPO / "tauri-bridge" / "target" / "debug" / "bundle" / "deb"
SETUP_S = 15.0
FIRST = {"jsonrpc": "2.0", "method": "get_leader_status", "id": 1}


def the_deb() -> Path:
    found = sorted(BUNDLES.glob("*.deb"))
    if os.environ.get("MW_DEB"):
        return Path(os.environ["MW_DEB"])
    if not found:
        pytest.fail(f"no .deb in {BUNDLES}: ./scripts/test builds it with the Tauri CLI")
    return found[-1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The root the `.deb` unpacks into (what `dpkg -i` writes under /)."""
    root = tmp_path_factory.mktemp("installed")
    subprocess.run(["dpkg-deb", "-x", str(the_deb()), str(root)], check=True, timeout=60)
    yield root


@pytest.fixture
async def bundled_app(
    lab: Lab, installed: Path, artifacts: Path, request: pytest.FixtureRequest
) -> AsyncIterator[App]:
    binary = installed / "usr" / "bin" / "mobile-worship-example"
    if (missing := app_missing()) is not None:
        pytest.fail(missing)
    the_app = await App.launch(lab.add_host("app"), artifacts, binary=binary)
    try:
        yield the_app
    finally:
        report = getattr(request.node, "rep_call", None)
        await the_app.close(failed=report is None or report.failed)


def test_the_deb_holds_the_app_the_sidecar_and_its_support_folder(installed: Path) -> None:
    bin_dir = installed / "usr" / "bin"
    assert (bin_dir / "mobile-worship-example").is_file()
    assert (bin_dir / "mobile-worship-sidecar").is_file()
    support = bin_dir / "mobile-worship-sidecar-internal"
    assert support.is_dir(), "the sidecar's support folder is not in the bundle"
    assert list(support.glob("libpython3*.so*")), sorted(p.name for p in support.iterdir())


async def test_the_bundled_sidecar_answers_its_first_request(lab: Lab, installed: Path) -> None:
    host = lab.add_host("sidecar")
    sidecar = installed / "usr" / "bin" / "mobile-worship-sidecar"
    done = host.run([str(sidecar)], input=json.dumps(FIRST) + "\n", timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.splitlines()[0])
    assert answer["id"] == 1 and answer["result"]["state"] == "idle", answer


async def test_the_installed_app_leads_a_display_joins_and_the_echo_shows(
    bundled_app: App, room: Room
) -> None:
    app = bundled_app
    await app.leads_and_a_display_echoes(room, SETUP_S)
    # Closing the window leaves no process behind (the app's nor its sidecar's).
    assert app.sidecar_pids(), app.processes()
    await app.page.close_window()
    left = await app.gone(10.0)
    assert left == {}, f"still running 10 s after the window closed: {left}"
