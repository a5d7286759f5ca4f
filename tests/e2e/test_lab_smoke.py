"""Smoke tests for the network-namespace test lab itself (tests/lab.py)."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
from typing import Literal

import pytest

from tests.lab import (
    Host,
    Lab,
    LabFeatureUnavailable,
    expect_line,
    lab_unavailable_reason,
    netem_available,
    nft_available,
    sweep_stale_labs,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(30)]

PY = sys.executable
MCAST_GROUP = "239.255.77.77"
MCAST_PORT = 47777
UDP_PORT = 47000

TCP_ECHO_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    with c:
        c.sendall(b"echo:" + c.recv(1024))
"""

TCP_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:
    c.sendall(b"hello")
    print(c.recv(1024).decode(), flush=True)
"""

# Prints "<source ip> <payload>" per datagram.  Optional multicast group + interface address.
UDP_RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", int(sys.argv[1])))
if len(sys.argv) > 2:
    mreq = socket.inet_aton(sys.argv[2]) + socket.inet_aton(sys.argv[3])
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print("ready", flush=True)
while True:
    data, (src, _) = s.recvfrom(65535)
    print(src, data.decode(), flush=True)
"""

# Reads "<dest ip> <port> <payload>" lines from stdin and sends each as one datagram.
# Optional argument: multicast interface address.
UDP_SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if len(sys.argv) > 1:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
print("ready", flush=True)
while line := sys.stdin.readline():
    dest, port, payload = line.split()
    try:
        s.sendto(payload.encode(), (dest, int(port)))
    except OSError as e:
        print("error", e, flush=True)
"""


async def start(host: Host, script: str, *args: str) -> asyncio.subprocess.Process:
    proc = await host.spawn_async([PY, "-c", script, *args], stderr=subprocess.DEVNULL)
    await expect_line(proc.stdout, "ready", within=10)
    return proc


async def send(sender: asyncio.subprocess.Process, dest: str, port: int, payload: str) -> None:
    assert sender.stdin is not None
    sender.stdin.write(f"{dest} {port} {payload}\n".encode())
    await sender.stdin.drain()


async def next_line(proc: asyncio.subprocess.Process, within: float) -> str | None:
    assert proc.stdout is not None
    try:
        raw = await asyncio.wait_for(proc.stdout.readline(), within)
    except TimeoutError:
        return None
    return raw.decode().strip()


async def send_until_received(
    sender: asyncio.subprocess.Process,
    receiver: asyncio.subprocess.Process,
    dest: str,
    port: int,
    tag: str,
    within: float = 5.0,
) -> str:
    """Send ``tag-<i>`` every 100 ms until the receiver reports one; return that line."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    i = 0
    while loop.time() < deadline:
        await send(sender, dest, port, f"{tag}-{i}")
        i += 1
        line = await next_line(receiver, 0.1)
        if line is not None and tag in line:
            return line
    raise AssertionError(f"no {tag} datagram arrived within {within}s")


async def assert_silence(
    sender: asyncio.subprocess.Process,
    receiver: asyncio.subprocess.Process,
    dest: str,
    port: int,
    count: int = 10,
    quiet: float = 0.5,
) -> None:
    for i in range(count):
        await send(sender, dest, port, f"lost-{i}")
    line = await next_line(receiver, quiet)
    assert line is None, f"datagram arrived although it should not: {line!r}"


def _lab_namespaces_listed(lab: Lab) -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    return sorted(listed & set(lab.namespaces))


def _pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie (of a non-reaping init) is dead too


# --------------------------------------------------------------------------------------------


def test_hosts_are_isolated(lab: Lab) -> None:
    root_links_before = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    h1, h2 = lab.hosts(2)
    assert (h1.ip, h2.ip) == ("10.77.0.1", "10.77.0.2")
    for h in (h1, h2):
        assert h.link_up()
        for family in ("-4", "-6"):
            assert h.run(["ip", family, "route", "show", "default"]).stdout.strip() == ""
        # a route lookup only (no packet is sent): outside the lab is unreachable
        probe = h.run(["ip", "route", "get", "192.0.2.1"])
        assert probe.returncode != 0
        assert "unreachable" in probe.stderr.lower()
    root_links_after = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    assert root_links_after == root_links_before  # nothing was created in the root netns


async def test_two_hosts_reach_each_other(lab: Lab) -> None:
    a, b = lab.hosts(2)
    await start(a, TCP_ECHO_SERVER, a.ip, "7777")
    result = b.run([PY, "-c", TCP_CLIENT, a.ip, "7777"], timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "echo:hello"


async def test_multicast_crosses_the_bridge(lab: Lab) -> None:
    a, b, c = lab.hosts(3)
    rx_a = await start(a, UDP_RECEIVER, str(MCAST_PORT), MCAST_GROUP, a.ip)
    rx_c = await start(c, UDP_RECEIVER, str(MCAST_PORT), MCAST_GROUP, c.ip)
    tx_b = await start(b, UDP_SENDER, b.ip)
    line = await send_until_received(tx_b, rx_a, MCAST_GROUP, MCAST_PORT, "mcast")
    src, payload = line.split()
    assert src == b.ip
    assert payload.startswith("mcast-")
    # flooded to every port, not just one
    line_c = await next_line(rx_c, 5.0)
    assert line_c is not None and line_c.split()[0] == b.ip


async def test_cut_is_silent_and_heal_restores(lab: Lab) -> None:
    a, b = lab.hosts(2)
    rx = await start(a, UDP_RECEIVER, str(UDP_PORT))
    tx = await start(b, UDP_SENDER)
    await send_until_received(tx, rx, a.ip, UDP_PORT, "before")

    b.cut()
    assert b.is_cut
    await assert_silence(tx, rx, a.ip, UDP_PORT)
    assert b.link_up(), "a cut must not be visible as a link change on the host"
    assert tx.returncode is None and rx.returncode is None

    b.heal()
    line = await send_until_received(tx, rx, a.ip, UDP_PORT, "after")
    assert line.split()[0] == b.ip


@pytest.mark.parametrize("backend", ["netem", "nft"])
async def test_loss(lab: Lab, backend: Literal["netem", "nft"]) -> None:
    if backend == "netem" and not netem_available():
        pytest.skip("tc netem not available in this kernel")
    if backend == "nft" and not nft_available():
        pytest.skip("nftables (bridge family, numgen) not available")
    a, b = lab.hosts(2)
    rx_a = await start(a, UDP_RECEIVER, str(UDP_PORT))
    rx_b = await start(b, UDP_RECEIVER, str(UDP_PORT))
    tx_a = await start(a, UDP_SENDER)
    tx_b = await start(b, UDP_SENDER)
    await send_until_received(tx_b, rx_a, a.ip, UDP_PORT, "warmup")
    await send_until_received(tx_a, rx_b, b.ip, UDP_PORT, "warmup")

    assert b.set_loss(100, backend=backend) == backend
    await assert_silence(tx_b, rx_a, a.ip, UDP_PORT)  # out of b
    await assert_silence(tx_a, rx_b, b.ip, UDP_PORT)  # into b

    b.set_loss(50, backend=backend)
    for i in range(200):
        await send(tx_b, a.ip, UDP_PORT, f"half-{i}")
    b.clear_impairments()
    # count the "half-" datagrams that arrive before a "fin" sent after clearing the loss
    # (one path, so order is kept)
    received = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    finished = False
    while not finished and loop.time() < deadline:
        await send(tx_b, a.ip, UDP_PORT, "fin")
        while (line := await next_line(rx_a, 0.2)) is not None:
            if "half-" in line:
                received += 1
            elif "fin" in line:
                finished = True
                break
    assert finished, "nothing arrived after clear_impairments()"
    await send_until_received(tx_a, rx_b, b.ip, UDP_PORT, "healed")
    # binomial(200, 0.5): mean 100, sd ~7
    assert 40 <= received <= 160, f"{received}/200 arrived at 50 % loss"


async def test_auto_loss_backend_or_skip(lab: Lab) -> None:
    (h,) = lab.hosts(1)
    try:
        used = h.set_loss(10)
    except LabFeatureUnavailable as exc:
        pytest.skip(str(exc))
    assert used == ("netem" if netem_available() else "nft")
    h.clear_impairments()


async def test_delay(lab: Lab) -> None:
    a, b = lab.hosts(2)
    if not netem_available():
        with pytest.raises(LabFeatureUnavailable) as info:
            b.set_delay(100)
        pytest.skip(str(info.value))
    await start(a, TCP_ECHO_SERVER, a.ip, "7777")
    b.set_delay(100)
    script = (
        "import socket, sys, time\n"
        "t = time.monotonic()\n"
        "c = socket.create_connection((sys.argv[1], 7777), timeout=5)\n"
        "print(time.monotonic() - t)\n"
    )
    result = b.run([PY, "-c", script, a.ip], timeout=10)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) >= 0.19  # SYN out + SYN/ACK in, 100 ms each way
    b.clear_impairments()


class _Boom(Exception):
    pass


def _wait_line_sync(proc: subprocess.Popen[bytes], within: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], within)
    assert ready, f"no output within {within}s"
    return proc.stdout.readline().decode().strip()


def test_cleanup_even_when_the_body_raises() -> None:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    sweep_stale_labs()
    with pytest.raises(_Boom), Lab(2) as lab:
        h1, h2 = lab.hosts()
        names = lab.namespaces
        assert len(names) == 3
        assert _lab_namespaces_listed(lab) == sorted(names)
        sleeper = h1.spawn(["sleep", "300"])
        stubborn = h1.spawn(
            [
                PY,
                "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                " print('ready', flush=True); time.sleep(300)",
            ]
        )
        assert _wait_line_sync(stubborn, 10) == "ready"
        # an untracked orphan, only findable through its namespace
        orphan = h2.run(
            [
                PY,
                "-c",
                "import subprocess as s; p = s.Popen(['sleep', '300'], start_new_session=True,"
                " stdin=s.DEVNULL, stdout=s.DEVNULL, stderr=s.DEVNULL); print(p.pid)",
            ],
            timeout=10,
        )
        orphan_pid = int(orphan.stdout)
        assert not _pid_gone(orphan_pid)
        raise _Boom
    assert lab.closed
    assert _lab_namespaces_listed(lab) == []
    assert sleeper.poll() is not None
    assert stubborn.poll() == -9  # ignored SIGTERM, got SIGKILL
    assert _pid_gone(orphan_pid)
    assert lab.cleanup_errors == []
    lab.close()  # idempotent


async def test_async_processes_are_cleaned_up() -> None:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    async with Lab(1) as lab:
        (h,) = lab.hosts()
        proc = await h.spawn_async(["sleep", "300"])
        pid = proc.pid
    assert _lab_namespaces_listed(lab) == []
    assert proc.returncode == -15
    assert _pid_gone(pid)


def test_sweep_removes_labs_of_dead_processes() -> None:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=10)
    assert dead.pid != os.getpid()
    name = f"mwl{dead.pid}x1br"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        assert name in sweep_stale_labs()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    assert name not in out.stdout
