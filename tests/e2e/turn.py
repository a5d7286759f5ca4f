"""A TURN server (coturn, Debian's `coturn` package) in a lab host, for one test."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass

from tests.lab import Host

TURN_PORT = 3478
USER, PASSWORD, REALM = "mw", "psalm-150", "lab"


@dataclass
class Turn:
    host: Host
    address: str

    def ice_server(self, transport: str = "udp") -> dict[str, str]:
        return {
            "urls": f"turn:{self.address}:{TURN_PORT}?transport={transport}",
            "username": USER,
            "credential": PASSWORD,
        }


def coturn_missing() -> str | None:
    return None if shutil.which("turnserver") else "coturn is not installed (apt install coturn)"


async def start_turn(host: Host, timeout: float = 10.0) -> Turn:
    """coturn on `host`'s address, long-term credentials, no TLS; returns once it listens.
    The lab kills it with the host's namespace."""
    address = host.ip
    await host.spawn_async(
        [
            "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "--fingerprint",
            "--lt-cred-mech", f"--user={USER}:{PASSWORD}", f"--realm={REALM}",
            f"--listening-ip={address}", f"--relay-ip={address}",
            f"--listening-port={TURN_PORT}", "--min-port=49152", "--max-port=49452",
            "--no-software-attribute", "--log-file=stdout", "--simple-log",
            "--pidfile=",
        ]
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listening = host.run(["ss", "-Hlnu", f"sport = :{TURN_PORT}"]).stdout
        if address in listening:
            return Turn(host, address)
        await asyncio.sleep(0.05)  # polling a socket table: there is no event to await
    raise TimeoutError(f"coturn did not listen on {address}:{TURN_PORT} within {timeout} s")
