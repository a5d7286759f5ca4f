"""Runs inside a lab namespace: the Tauri example app in a real webview (WebKitGTK),
driven through WebDriver, as its users see it.

    python app_driver.py <app-binary> <work-dir>

Starts a private X server (Xvfb; the display number it picks is read from its
-displayfd pipe), then `tauri-driver` (crates.io) in front of WebKitWebDriver
(Debian's webkit2gtk-driver), then a WebDriver session that launches the app.
The app's environment points XDG_* into <work-dir>, so its log folder is
<work-dir>/data/org.mobileworship.example/logs; tauri-driver's output (the
app's stdout and stderr included) goes to <work-dir>/tauri-driver.log.

Prints {"event": "ready"} once the app's page is loaded, then serves the
commands of page_driver.py on stdin.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.options import ArgOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script, in a namespace
from tests.browser.page_driver import say, serve
from tests.browser.xserver import START_TIMEOUT, app_env, start_xvfb

WEBDRIVER_PORT = 4444  # on the namespace's own loopback: no clash with other hosts
NATIVE_PORT = 4445


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    """Until `port` on loopback accepts a connection (bounded; fails if `process` died)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} is not listening on port {port}")
        time.sleep(0.05)  # a port to poll: the driver prints nothing when it is ready


def main() -> None:
    app, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    xvfb, display = start_xvfb(work / "xvfb.log")
    driver_log = open(work / "tauri-driver.log", "ab")  # noqa: SIM115 (closed below)
    tauri_driver = subprocess.Popen(
        [
            os.environ.get("TAURI_DRIVER", "tauri-driver"),
            "--port",
            str(WEBDRIVER_PORT),
            "--native-port",
            str(NATIVE_PORT),
            "--native-driver",
            "/usr/bin/WebKitWebDriver",
        ],
        env=app_env(work, display),
        stdout=driver_log,
        stderr=driver_log,
    )
    driver: webdriver.Remote | None = None
    try:
        # tauri-driver starts WebKitWebDriver and forwards to it without waiting for it
        wait_for_port(WEBDRIVER_PORT, tauri_driver, "tauri-driver")
        wait_for_port(NATIVE_PORT, tauri_driver, "WebKitWebDriver")
        options = ArgOptions()
        options.set_capability("browserName", "wry")
        options.set_capability("tauri:options", {"application": app})
        driver = webdriver.Remote(
            command_executor=f"http://127.0.0.1:{WEBDRIVER_PORT}", options=options
        )
        driver.set_script_timeout(30)
        say(event="ready")
        serve(driver)
    finally:
        if driver is not None:
            with contextlib.suppress(Exception):  # the window may be closed already
                driver.quit()
        for process in (tauri_driver, xvfb):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        driver_log.close()


if __name__ == "__main__":
    main()
