"""The protocol cores are plain code: importing them in a fresh interpreter loads
neither asyncio nor any network library."""

from __future__ import annotations

import json
import subprocess
import sys

CORES = (
    "sidecar.election",
    "sidecar.netview",
    "sidecar.delivery",
    "sidecar.flow",
    "sidecar.priority",
    "sidecar.clock",
    "sidecar.messages",
    "sidecar.roomkey",
    "sidecar.txt",
    "sidecar.state",
    "sidecar.rendezvous",
    "sidecar.pairing",
    "sidecar.signaling.pairdesk",
    "sidecar.replica",
    "sidecar.signaling.protocol",
    "sidecar.signaling.registry",
)
NETWORK_STACK = ("asyncio", "aiohttp", "zeroconf", "aiortc", "aioice", "av")


def test_the_cores_load_no_event_loop_and_no_network_library() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import {m}\n" for m in CORES)
        + f"print(json.dumps([m for m in {NETWORK_STACK!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
