"""A private X server for a browser or a webview in a lab namespace (Xvfb), and the
environment that runs WebKitGTK in it (software rendering, XDG folders of its own)."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 30.0
XVFB = ["Xvfb", "-screen", "0", "1920x1200x24", "-nolisten", "tcp"]


def start_xvfb(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """An X server on a free display; returns it once it accepts clients."""
    read_end, write_end = os.pipe()
    with open(log, "ab") as out:
        xvfb = subprocess.Popen(
            [*XVFB, "-displayfd", str(write_end)],
            pass_fds=(write_end,),
            stdout=out,
            stderr=out,
        )
    os.close(write_end)
    number = b""
    deadline = time.monotonic() + START_TIMEOUT
    # Xvfb writes the display number and a newline once it is ready (the event to wait for)
    while not number.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([read_end], [], [], max(0.0, left))
        chunk = os.read(read_end, 16) if ready else b""
        if not chunk:
            xvfb.kill()
            raise RuntimeError(f"Xvfb did not start (see {log})")
        number += chunk
    os.close(read_end)
    return xvfb, f":{number.decode().strip()}"


def app_env(work: Path, display: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MW_")}
    for name in ("data", "config", "cache", "runtime"):
        (work / name).mkdir(parents=True, exist_ok=True)
    (work / "runtime").chmod(0o700)
    env.update(
        DISPLAY=display,
        XDG_DATA_HOME=str(work / "data"),
        XDG_CONFIG_HOME=str(work / "config"),
        XDG_CACHE_HOME=str(work / "cache"),
        XDG_RUNTIME_DIR=str(work / "runtime"),
        # software rendering in a headless X server, no accessibility bus
        WEBKIT_DISABLE_COMPOSITING_MODE="1",
        WEBKIT_DISABLE_DMABUF_RENDERER="1",
        LIBGL_ALWAYS_SOFTWARE="1",
        NO_AT_BRIDGE="1",
    )
    return env
