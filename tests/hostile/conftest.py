"""The hostile-device suite runs in the test lab like the end-to-end suites."""

from tests.e2e.conftest import engine, lab, pages, pytest_runtest_makereport, room, sidecar_logs

__all__ = ["engine", "lab", "pages", "pytest_runtest_makereport", "room", "sidecar_logs"]
