"""Fixtures of the webview suite: the example app in a lab namespace, next to a room of
real sidecars (tests/e2e/room.py) in others."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import lab, pytest_runtest_makereport, room, sidecar_logs  # noqa: F401
from tests.lab import Lab
from tests.webview.app import REPO, App, app_missing

ARTIFACTS = REPO / "test-artifacts" / "webview"


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where the test's screenshots and logs are kept (test-artifacts/webview/<test>/)."""
    path = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    yield path


@pytest.fixture
async def app(lab: Lab, artifacts: Path, request: pytest.FixtureRequest) -> AsyncIterator[App]:  # noqa: F811
    """The example app, launched in a namespace of its own; closed after the test (its
    screenshot and logs kept in `artifacts` when the test failed)."""
    if (missing := app_missing()) is not None:
        pytest.fail(missing)  # ./scripts/test builds and installs it: a broken setup
    the_app = await App.launch(lab.add_host("app"), artifacts)
    try:
        yield the_app
    finally:
        report = getattr(request.node, "rep_call", None)
        await the_app.close(failed=report is None or report.failed)
