"""Runs inside a lab namespace: one browser on one page, driven by JSON lines on
stdin, through Selenium and the engine's own WebDriver:

- ``chromium``: Debian's chromium and chromedriver, headless;
- ``firefox``: Debian's firefox-esr and geckodriver (crates.io), headless;
- ``webkit``: WebKitGTK's MiniBrowser and WebKitWebDriver (Debian's
  webkit2gtk-driver) under a private Xvfb. It has no RTCPeerConnection: it
  stands for the TV browsers and kiosk webviews without WebRTC.

    python page_driver.py <url> <scratch-dir> [chromium|firefox|webkit]

Prints {"event": "ready"} once the page is loaded, then answers each command
with one line: {"id", "ok", "value" | "error"}. Commands: {"op": "eval", "js"}
(the script's return value), {"op": "wait", "js", "timeout"} (until the
script returns something truthy; polled in the page every 100 ms),
{"op": "tab", "url"} (another page in a new tab), {"op": "screenshot", "path"},
{"op": "click", "css"}, {"op": "type", "css", "text"}, {"op": "select", "css",
"value"} (through the UI, as a person would), {"op": "size", "width", "height"}
(the page's viewport, in CSS pixels), {"op": "cdp", "method", "params"} (a
DevTools command: Chromium only), {"op": "close_window"}, {"op": "quit"}.
tests/browser/app_driver.py serves the same commands for the Tauri app.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.firefox.service import Service as GeckoService
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from selenium.webdriver.webkitgtk.service import Service as WebKitService

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script, in a namespace
from tests.browser.xserver import app_env, start_xvfb

ENGINES = ("chromium", "firefox", "webkit")
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"

FLAGS = [
    "--headless=new",
    "--no-sandbox",  # root in a test namespace
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--metrics-recording-only",
    "--window-size=1280,800",
    # every tab is a display, visible or not: no throttling of background tabs
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


REPAINT = """
let n = 0;
const tick = () => {
  document.body.style.opacity = n % 2 ? "0.999" : "1";
  if (++n < 120) requestAnimationFrame(tick);
  else document.body.style.opacity = "";
};
requestAnimationFrame(tick);
"""


def say(**what: Any) -> None:
    sys.stdout.write(json.dumps(what) + "\n")
    sys.stdout.flush()


def geckodriver() -> str:
    found = shutil.which("geckodriver") or str(Path.home() / ".cargo/bin/geckodriver")
    return found


def chromium(scratch: Path) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={scratch}")
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def firefox(scratch: Path) -> WebDriver:
    options = webdriver.FirefoxOptions()
    options.binary_location = "/usr/bin/firefox-esr"
    options.add_argument("-headless")
    options.add_argument("--width=1280")
    options.add_argument("--height=800")
    # a test profile makes no request of its own (updates, telemetry, safe browsing)
    for pref, value in {
        "app.update.enabled": False,
        "browser.safebrowsing.malware.enabled": False,
        "browser.safebrowsing.phishing.enabled": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.enabled": False,
        "network.captive-portal-service.enabled": False,
        "network.connectivity-service.enabled": False,
        "extensions.update.enabled": False,
        # every tab is a display, visible or not: no throttling of background tabs
        "dom.min_background_timeout_value": 4,
        "dom.timeout.enable_budget_timer_throttling": False,
    }.items():
        options.set_preference(pref, value)
    env = {**os.environ, "HOME": str(scratch), "TMPDIR": str(scratch)}
    service = GeckoService(geckodriver(), log_output=str(scratch / "geckodriver.log"), env=env)
    return webdriver.Firefox(service=service, options=options)


def webkit(scratch: Path) -> tuple[WebDriver, subprocess.Popen[bytes]]:
    xvfb, display = start_xvfb(scratch / "xvfb.log")
    os.environ.update(app_env(scratch, display))  # WebKitWebDriver starts MiniBrowser with it
    options = webdriver.WebKitGTKOptions()
    options.binary_location = MINIBROWSER
    options.add_argument("--automation")
    try:
        service = WebKitService("/usr/bin/WebKitWebDriver", log_output=str(scratch / "wd.log"))
        return webdriver.WebKitGTK(service=service, options=options), xvfb
    except BaseException:
        xvfb.kill()
        raise


def main() -> None:
    url, scratch = sys.argv[1], Path(sys.argv[2])
    engine = sys.argv[3] if len(sys.argv) > 3 else "chromium"
    xvfb: subprocess.Popen[bytes] | None = None
    if engine == "firefox":
        driver = firefox(scratch)
    elif engine == "webkit":
        driver, xvfb = webkit(scratch)
    else:
        driver = chromium(scratch)
    try:
        driver.set_script_timeout(30)
        driver.get(url)
        say(event="ready")
        serve(driver)
    finally:
        driver.quit()
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)


def serve(driver: WebDriver) -> None:
    """Answers the commands on stdin (see the module's docstring) until quit or EOF."""
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.get("op")
        try:
            if op == "quit":
                say(id=cmd.get("id"), ok=True, value=None)
                return
            value = do(driver, op, cmd)
            say(id=cmd.get("id"), ok=True, value=value)
        except Exception as exc:  # reported to the test, which decides
            say(id=cmd.get("id"), ok=False, error=f"{type(exc).__name__}: {exc}")


def do(driver: WebDriver, op: str | None, cmd: dict[str, Any]) -> Any:
    if op == "eval":
        return driver.execute_script(cmd["js"])
    if op == "wait":
        return wait(driver, cmd["js"], float(cmd.get("timeout", 10)))
    if op == "tab":  # another page in a new tab (the first stays the one driven)
        first = driver.current_window_handle
        driver.switch_to.new_window("tab")
        driver.get(cmd["url"])
        handle = driver.current_window_handle
        driver.switch_to.window(first)
        return handle
    if op == "screenshot":
        # WebKitGTK takes a screenshot at the page's next presentation update, and an idle
        # page has none: repaint for about two seconds (an invisible flicker) meanwhile.
        driver.execute_script(REPAINT)
        return driver.save_screenshot(cmd["path"])
    # Through the UI, as a person would: a click, typing into a field, a choice in a list.
    if op == "click":
        driver.find_element(By.CSS_SELECTOR, cmd["css"]).click()
        return None
    if op == "type":
        field = driver.find_element(By.CSS_SELECTOR, cmd["css"])
        # keystrokes, not clear(): a React field only follows input events
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.DELETE)
        field.send_keys(cmd["text"])
        return None
    if op == "select":
        Select(driver.find_element(By.CSS_SELECTOR, cmd["css"])).select_by_value(cmd["value"])
        return None
    if op == "size":  # the viewport (what the page lays out in), not the window
        width, height = int(cmd["width"]), int(cmd["height"])
        driver.set_window_size(width, height)
        inner = driver.execute_script("return [innerWidth, innerHeight];")
        driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
        return driver.execute_script("return [innerWidth, innerHeight];")
    if op == "cdp":
        return driver.execute_cdp_cmd(cmd["method"], cmd.get("params") or {})
    if op == "close_window":
        driver.close()
        return None
    raise ValueError(f"unknown op {op!r}")


def wait(driver: WebDriver, js: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(js)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} s: {js[:200]}")
        time.sleep(0.1)  # the page's state, polled: there is no event to await from here


if __name__ == "__main__":
    main()
