"""The real sidecar process over real pipes: bad input, protocol hygiene, exits.

Runs in the root namespace, so it never calls a successful `start_peer`
(that would start mDNS and WebRTC on the real interface): peer behaviour is
tested in the test lab (tests/e2e).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sidecar_proc import SidecarClient, sidecar_argv

EXIT_BOUND_S = 3.0  # docs/api.md: exit 0 within 3 s


@pytest.fixture
async def sidecar() -> AsyncIterator[SidecarClient]:
    client = await SidecarClient.spawn()
    try:
        yield client
    finally:
        await client.aclose()


def run_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(sidecar_argv(*args), input=stdin, capture_output=True, timeout=30)


def test_version_and_help() -> None:
    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.decode().startswith("mobile-worship-sidecar ")
    usage = run_cli("--help")
    assert usage.returncode == 0
    for word in ("--log-level", "--log-format", "schema", "stdin"):
        assert word in usage.stdout.decode()


def test_schema_command_prints_the_json_schema() -> None:
    result = run_cli("schema")
    assert result.returncode == 0
    schema = msgspec.json.decode(result.stdout)
    assert {"PeerInfo", "StartPeerParams", "SignalMessage", "ControlEnvelope"} <= set(
        schema["$defs"]
    )


def test_piped_request_is_answered_before_the_exit_at_eof() -> None:
    # What a person does by hand: pipe a line in, read the answer, done.
    line = b'{"jsonrpc":"2.0","method":"get_leader_status","id":1}\n'
    started = time.monotonic()
    result = run_cli(stdin=line)
    assert result.returncode == 0
    assert time.monotonic() - started < 10
    (answer,) = result.stdout.splitlines()
    assert msgspec.json.decode(answer)["result"]["state"] == "idle"


BAD_LINES = [  # (line, expected code, expected id of the answer)
    (b"{", -32700, None),
    (b'{"jsonrpc":"2.0","method":"get_leader_status","id":"b"\x00}', -32700, None),
    (b'{"jsonrpc":"2.0","method":"get_leader_status\xff\xfe","id":"b"}', -32700, None),
    (b"[" * 200_000 + b"]" * 200_000, -32700, None),
    (b"x" * (2 * 1024 * 1024), -32600, None),
    (b"[]", -32600, None),
    (b'{"jsonrpc":"2.0","id":"b"}', -32600, "b"),
    (b'{"jsonrpc":"2.0","method":"warp_drive","id":"b"}', -32601, "b"),
    (b'{"jsonrpc":"2.0","method":"start_peer","params":{"name":"A"},"id":"b"}', -32602, "b"),
    (
        b'{"jsonrpc":"2.0","method":"send_control_message","params":{"payload":1},"id":"b"}',
        -32001,
        "b",
    ),
]


async def test_every_bad_input_is_answered_and_the_process_lives_on(
    sidecar: SidecarClient,
) -> None:
    for line, code, answer_id in BAD_LINES:
        sidecar.send_raw(line + b"\n")
        answer = await sidecar.response(answer_id)
        assert answer["error"]["code"] == code, (line[:60], answer)
        sidecar.forget(answer_id)
        # ... and the very next request is served normally.
        assert (await sidecar.call("get_leader_status"))["state"] == "idle"
    assert sidecar.process.returncode is None


async def test_crlf_and_blank_lines_are_tolerated(sidecar: SidecarClient) -> None:
    sidecar.send_raw(b"\n\r\n   \n")
    sidecar.send_raw(b'{"jsonrpc":"2.0","method":"get_connected_peers","id":"crlf"}\r\n')
    assert (await sidecar.response("crlf"))["result"] == []


async def test_requests_split_across_writes_are_reassembled(sidecar: SidecarClient) -> None:
    line = b'{"jsonrpc":"2.0","method":"get_leader_status","id":"split"}\n'
    for i in range(0, len(line), 7):
        sidecar.send_raw(line[i : i + 7])
        assert sidecar.process.stdin is not None
        await sidecar.process.stdin.drain()
    assert (await sidecar.response("split"))["result"]["state"] == "idle"


async def test_a_batch_is_answered_as_one_array(sidecar: SidecarClient) -> None:
    sidecar.send_raw(
        b'[{"jsonrpc":"2.0","method":"get_leader_status","id":"b1"},'
        b'{"jsonrpc":"2.0","method":"get_connected_peers","id":"b2"}]\n'
    )
    await sidecar.response("b2")
    batch = msgspec.json.decode(sidecar.stdout_lines[-1])
    assert [r["id"] for r in batch] == ["b1", "b2"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
request_like = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0", 2])},
    optional={
        "method": st.sampled_from(
            ["get_leader_status", "start_peer", "send_control_message", "ping_peer", "x"]
        )
        | st.text(max_size=10),
        "params": json_values,
        "id": json_values,
    },
).map(msgspec.json.encode)
random_lines = (
    st.binary(max_size=300)
    | json_values.map(msgspec.json.encode)
    | request_like
    | st.lists(request_like, max_size=3).map(lambda xs: b"[" + b",".join(xs) + b"]")
).map(lambda b: b.replace(b"\n", b" "))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(lines=st.lists(random_lines, min_size=1, max_size=5))
async def test_random_lines_never_kill_the_server_nor_break_stdout(
    sidecar: SidecarClient, lines: list[bytes]
) -> None:
    # A start_peer that happens to be valid must not start networking here.
    lines = [line for line in lines if b"start_peer" not in line or b"peer_type" not in line]
    for line in lines:
        sidecar.send_raw(line + b"\n")
    # Every line written so far decoded as JSON (the reader fails otherwise);
    # a probe request proves the process still answers. Its id is one no
    # random line can carry (they may well reuse the client's small integers).
    probe = f"probe-{uuid.uuid4()}"
    sidecar.send_raw(
        b'{"jsonrpc":"2.0","method":"get_connected_peers","id":"%s"}\n' % probe.encode()
    )
    assert isinstance((await sidecar.response(probe, 10))["result"], list)
    assert sidecar.process.returncode is None


async def test_stdout_carries_only_protocol_and_json_logs_go_to_stderr() -> None:
    client = await SidecarClient.spawn(
        "--log-format", "json", "--log-level", "debug", stderr=asyncio.subprocess.PIPE
    )
    try:
        await client.call("get_leader_status")
        client.send_raw(b"garbage\n")
        await client.response(None)
        client.close_stdin()
        assert await client.wait_exit(EXIT_BOUND_S) == 0
        assert client.process.stderr is not None
        log_lines = (await client.process.stderr.read()).splitlines()
    finally:
        await client.aclose()
    assert len(client.stdout_lines) == 2
    for line in client.stdout_lines:
        assert msgspec.json.decode(line)["jsonrpc"] == "2.0"
    logs = [msgspec.json.decode(line) for line in log_lines]
    assert any(entry["msg"] == "sidecar ready" for entry in logs)
    assert all({"ts", "level", "logger", "msg"} <= set(entry) for entry in logs)


async def test_stdin_eof_exits_zero_within_bound(sidecar: SidecarClient) -> None:
    await sidecar.call("get_leader_status")
    started = time.monotonic()
    sidecar.close_stdin()
    assert await sidecar.wait_exit(EXIT_BOUND_S) == 0
    assert time.monotonic() - started < EXIT_BOUND_S


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_exits_zero_within_bound(sidecar: SidecarClient, signum: int) -> None:
    await sidecar.call("get_leader_status")  # fully up, handlers installed
    started = time.monotonic()
    sidecar.process.send_signal(signum)
    assert await sidecar.wait_exit(EXIT_BOUND_S) == 0
    assert time.monotonic() - started < EXIT_BOUND_S


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_parent_takes_the_sidecar_with_it(tmp_path: Path) -> None:
    # The parent hands the sidecar pipes that *the test* keeps open, so only
    # the parent's death (not EOF, not EPIPE) can end the sidecar.
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    parent_code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen({sidecar_argv()!r}, stdin={stdin_r}, stdout={stdout_w},
                                 stderr=subprocess.DEVNULL)
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        stdout=subprocess.PIPE,
        pass_fds=(stdin_r, stdout_w),
    )
    child_pid = 0
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        os.write(stdin_w, b'{"jsonrpc":"2.0","method":"get_leader_status","id":1}\n')
        assert b'"id":1' in os.read(stdout_r, 65536)  # up and serving
        started = time.monotonic()
        parent.kill()
        parent.wait(5)
        deadline = started + EXIT_BOUND_S
        while not _gone(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling /proc: no event tells us of a non-child's exit
        assert _gone(child_pid), "sidecar outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)
        if child_pid and not _gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)
        for fd in (stdin_r, stdin_w, stdout_r, stdout_w):
            os.close(fd)


def test_a_host_that_stops_reading_stdout_cannot_wedge_the_sidecar() -> None:
    # Far more output than a pipe buffers, never read: the writer thread blocks,
    # the event loop must not, so SIGTERM is still honoured in time.
    process = subprocess.Popen(
        sidecar_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdin is not None
        request = b'{"jsonrpc":"2.0","method":"get_leader_status","id":1}\n'
        process.stdin.write(request * 3000)
        process.stdin.flush()
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(EXIT_BOUND_S) == 0
        assert time.monotonic() - started < EXIT_BOUND_S
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def pipelined_requests(count: int) -> tuple[bytes, list[str]]:
    """`count` requests; every third has an id long enough that its answer
    exceeds PIPE_BUF (written by the writer thread, not the event loop)."""
    ids = [f"{n}-" + ("x" * 6000 if n % 3 == 0 else "") for n in range(count)]
    lines = b"".join(
        b'{"jsonrpc":"2.0","method":"get_leader_status","id":"%s"}\n' % i.encode() for i in ids
    )
    return lines, ids


def answered_ids(output: bytes) -> list[str]:
    return [msgspec.json.decode(line)["id"] for line in output.splitlines()]


@pytest.mark.parametrize("transport", ["pipe", "socket", "file"])
def test_pipelined_requests_are_answered_once_each_in_order(transport: str, tmp_path: Path) -> None:
    """Pipes and sockets (libuv hosts such as Node use socket pairs) are read
    and written by the event loop, files by threads: the answers are the same."""
    requests, ids = pipelined_requests(1500)  # several times MAX_IN_FLIGHT
    if transport == "file":
        (tmp_path / "in").write_bytes(requests)
        with (tmp_path / "in").open("rb") as stdin, (tmp_path / "out").open("wb") as stdout:
            result = subprocess.run(
                sidecar_argv(), stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL, timeout=60
            )
        assert result.returncode == 0
        assert answered_ids((tmp_path / "out").read_bytes()) == ids
        return
    if transport == "pipe":
        result = subprocess.run(sidecar_argv(), input=requests, capture_output=True, timeout=60)
        assert result.returncode == 0
        assert answered_ids(result.stdout) == ids
        return
    ours, theirs = socket.socketpair()
    with ours, theirs:
        process = subprocess.Popen(
            sidecar_argv(), stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=subprocess.DEVNULL
        )
        theirs.close()
        try:
            output = bytearray()
            ours.settimeout(60)

            def feed() -> None:
                ours.sendall(requests)
                ours.shutdown(socket.SHUT_WR)  # EOF on the sidecar's stdin

            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
            while chunk := ours.recv(65536):
                output += chunk
            writer.join(10)
            assert process.wait(EXIT_BOUND_S) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
    assert answered_ids(bytes(output)) == ids
