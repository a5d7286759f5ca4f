"""StdoutWriter: order of lines, and lines written `soon`, over a real pipe."""

from __future__ import annotations

import asyncio
import os
import select
from collections.abc import Iterator

import pytest

from sidecar.host.stdio import StdoutWriter


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


async def test_a_line_written_soon_waits_for_ready_callbacks_and_keeps_its_place(
    pipe: tuple[int, int],
) -> None:
    r, w = pipe
    loop = asyncio.get_running_loop()
    writer = StdoutWriter(w, lambda: None, loop)
    seen_before_write: list[bool] = []
    loop.call_soon(lambda: seen_before_write.append(readable(r)))
    writer.write_line(b'{"id":1}', soon=True)
    writer.write_line(b'{"note":2}')  # given after it: must not overtake it
    assert not readable(r)
    await asyncio.sleep(0)
    assert seen_before_write == [False]  # the callback scheduled first ran first
    assert os.read(r, 1000) == b'{"id":1}\n{"note":2}\n'
    writer.write_line(b'{"note":3}')  # nothing pending: written at once
    assert os.read(r, 1000) == b'{"note":3}\n'
    assert writer.close(1.0)


async def test_long_lines_go_through_the_thread_in_order(pipe: tuple[int, int]) -> None:
    r, w = pipe
    writer = StdoutWriter(w, lambda: None, asyncio.get_running_loop())
    lines = [(b"%d:" % n) + b"x" * (n % 3 * 5000) for n in range(30)]
    for line in lines:
        writer.write_line(line, soon=line.endswith(b"0"))
    await asyncio.sleep(0)
    expected = b"".join(line + b"\n" for line in lines)
    received = bytearray()
    while len(received) < len(expected):
        received += os.read(r, 65536)
    assert bytes(received) == expected
    assert writer.close(1.0)
