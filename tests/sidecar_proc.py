"""Drive a real sidecar process over its stdio, as the Tauri bridge would.

`sidecar_argv()` is the command that starts the sidecar under test: the
source install by default, a frozen binary when MW_SIDECAR_BIN names one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from pathlib import Path

    from tests.lab import Host

START_TIMEOUT_S = 10.0


def sidecar_argv(*args: str) -> list[str]:
    override = os.environ.get("MW_SIDECAR_BIN")
    base = shlex.split(override) if override else [sys.executable, "-m", "sidecar"]
    return [*base, *args]


class RpcFailure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')} {error.get('data', '')}")
        self.code: int = error["code"]
        self.error = error


class SidecarClient:
    """JSON-RPC over a child's pipes: requests, raw lines, notifications."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin and process.stdout
        self.process = process
        self._ids = itertools.count(1)
        self._pending: dict[bytes, asyncio.Future[Any]] = {}
        self.notifications: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stdout_lines: list[bytes] = []  # every line, for "stdout is only protocol"
        self.history: list[tuple[float, dict[str, Any]]] = []  # (monotonic time, notification)
        self.latest: dict[str, dict[str, Any]] = {}  # method -> params of the last one
        self._changed = asyncio.Condition()
        self._reading = asyncio.Event()
        self._reading.set()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def spawn(cls, *args: str, **kwargs: Any) -> SidecarClient:
        process = await asyncio.create_subprocess_exec(
            *sidecar_argv(*args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=kwargs.pop("stderr", asyncio.subprocess.DEVNULL),
            limit=8 * 1024 * 1024,
            **kwargs,
        )
        return cls(process)

    @classmethod
    async def spawn_in(
        cls,
        host: Host,
        *args: str,
        log: Path | None = None,
        wrapper: Sequence[str] = (),
        limit: int = 8 * 1024 * 1024,
    ) -> SidecarClient:
        """A sidecar inside a test-lab host; its stderr goes to `log` when given.
        `wrapper` runs it (`prlimit --nofile=256:256`, say); `limit` bounds what
        the reader buffers when the test stops reading (see `pause_reading`)."""
        stderr: Any = asyncio.subprocess.DEVNULL
        if log is not None:
            stderr = log.open("ab")
        try:
            process = await host.spawn_async(
                [*wrapper, *sidecar_argv("--log-level", "debug", *args)],
                stderr=stderr,
                limit=limit,
            )
        finally:
            if log is not None:
                stderr.close()
        return cls(process)

    def pause_reading(self) -> None:
        """Stop reading stdout, as a frozen host would (after the current line)."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    async def _read(self) -> None:
        assert self.process.stdout
        while (await self._reading.wait()) and (line := await self.process.stdout.readline()):
            self.stdout_lines.append(line)
            message = msgspec.json.decode(line)  # a non-JSON line fails the test loudly
            for item in message if isinstance(message, list) else [message]:
                if "method" in item:
                    self.notifications.put_nowait(item)
                    self.history.append((time.monotonic(), item))
                    self.latest[item["method"]] = item["params"]
                    async with self._changed:
                        self._changed.notify_all()
                else:
                    future = self._future(item.get("id"))
                    if not future.done():
                        future.set_result(item)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(EOFError("sidecar closed stdout"))

    def _future(self, request_id: Any) -> asyncio.Future[Any]:
        # Whichever comes first, the answer or the wait for it, creates the slot.
        key = msgspec.json.encode(request_id)
        if key not in self._pending:
            self._pending[key] = asyncio.get_running_loop().create_future()
        return self._pending[key]

    def send_raw(self, data: bytes) -> None:
        assert self.process.stdin
        self.process.stdin.write(data)

    async def response(self, request_id: Any, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        return dict(await asyncio.wait_for(self._future(request_id), timeout))

    def forget(self, request_id: Any) -> None:
        """Drop a received answer, so the same id can be awaited again."""
        self._pending.pop(msgspec.json.encode(request_id), None)

    async def call_raw(
        self, method: str, params: Any = None, timeout: float = 10
    ) -> dict[str, Any]:
        request_id = next(self._ids)
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            body["params"] = params
        self.send_raw(msgspec.json.encode(body) + b"\n")
        return await self.response(request_id, timeout)

    async def call(self, method: str, params: Any = None, timeout: float = 10) -> Any:
        response = await self.call_raw(method, params, timeout)
        if "error" in response:
            raise RpcFailure(response["error"])
        return response["result"]

    async def next_notification(self, method: str, timeout: float) -> dict[str, Any]:
        """The params of the next notification named `method` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            item = await asyncio.wait_for(self.notifications.get(), max(remaining, 0.001))
            if item["method"] == method:
                return dict(item["params"])

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> None:
        """Wait until `condition` (over `latest`/`history`) holds after some notification."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(condition)

    @property
    def leader_id(self) -> str | None:
        """The leader named by the last webrtc:leader_changed."""
        return self.latest.get("webrtc:leader_changed", {}).get("leader_id")

    def peer_ids(self) -> set[str]:
        """The room as the last webrtc:peer_list_changed listed it."""
        peers = self.latest.get("webrtc:peer_list_changed", {}).get("peers", [])
        return {p["peer_id"] for p in peers}

    def close_stdin(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()

    async def wait_exit(self, timeout: float) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def aclose(self) -> None:
        """End the process however it is doing; never raises, never hangs."""
        with contextlib.suppress(Exception):
            self.close_stdin()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait(), 3)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.process.wait(), 3)
        self._reader.cancel()
