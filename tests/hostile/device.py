"""Driving tests/hostile/attacker.py in a lab namespace: commands in, events out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.lab import Host

ATTACKER = Path(__file__).with_name("attacker.py")
Event = dict[str, Any]


class Hostile:
    """One attacker process on a lab host."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, host: Host, mode: str, **args: Any) -> Hostile:
        process = await host.spawn_async(
            [sys.executable, str(ATTACKER), mode, json.dumps(args)],
            stderr=asyncio.subprocess.DEVNULL,
            limit=8 * 1024 * 1024,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.events.append(json.loads(line))
            async with self._changed:
                self._changed.notify_all()

    async def command(self, **cmd: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(cmd).encode() + b"\n")
        await self.process.stdin.drain()

    async def wait(self, match: Callable[[Event], bool] | str, within: float = 10.0) -> Event:
        """The first event (already seen or coming) that matches."""
        test = (lambda e: e.get("event") == match) if isinstance(match, str) else match
        deadline = time.monotonic() + within
        async with self._changed:
            while True:
                found = next((e for e in self.events if test(e)), None)
                if found is not None:
                    return found
                if self._reader.done():
                    raise AssertionError(f"attacker exited; events: {self.events[-10:]}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching event in {within} s: {self.events[-10:]}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
