"""Byte transport of the stdio protocol: lines in on fd 0, lines out on fd 1.

Reading and writing happen on two plain threads doing blocking I/O, so
 * the event loop never blocks on a slow reader of our stdout, and
 * we never switch the inherited descriptors to O_NONBLOCK (asyncio pipe
   transports do), which would leak into a terminal or a parent sharing them.
`LineSplitter` is the sans-I/O part and is unit-tested on its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 1024 * 1024
"""Longest accepted input line; a 64 KiB payload plus envelope fits many times."""


@dataclass(frozen=True, slots=True)
class Oversize:
    """Stands for an input line that exceeded the limit and was discarded."""

    length: int


class LineSplitter:
    """Splits a byte stream into `\\n`-terminated lines, whatever the chunking.

    A trailing `\\r` is dropped (CRLF tolerated). A line longer than
    `max_line` is discarded up to its newline and reported once as Oversize,
    so a runaway writer costs bounded memory.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max = max_line
        self._buf = bytearray()
        self._discarding = 0  # bytes dropped so far of an oversize line, 0 when not

    def feed(self, data: bytes) -> list[bytes | Oversize]:
        out: list[bytes | Oversize] = []
        start = 0
        while start < len(data):
            nl = data.find(b"\n", start)
            end = len(data) if nl < 0 else nl
            piece = data[start:end]
            if self._discarding:
                self._discarding += len(piece)
            elif len(self._buf) + len(piece) > self._max:
                self._discarding = len(self._buf) + len(piece)
                self._buf.clear()
            else:
                self._buf += piece
            if nl < 0:
                break
            out.append(self._take())
            start = nl + 1
        return out

    def finish(self) -> list[bytes | Oversize]:
        """At end of input: an unterminated last line still counts."""
        if self._buf or self._discarding:
            return [self._take()]
        return []

    def _take(self) -> bytes | Oversize:
        if self._discarding:
            dropped, self._discarding = self._discarding, 0
            return Oversize(dropped)
        line = bytes(self._buf)
        self._buf.clear()
        return line[:-1] if line.endswith(b"\r") else line


EOF_MARK = None
"""Put on the line queue after the last line of stdin."""

LineItem = bytes | Oversize | None


class StdinReader:
    """Reads fd `fd` on a daemon thread and feeds lines into an asyncio queue.

    The queue is bounded, so a host that floods us is slowed down by the pipe
    instead of growing our memory.
    """

    def __init__(
        self, fd: int, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[LineItem]
    ) -> None:
        self._fd = fd
        self._loop = loop
        self._lines = lines
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stdin-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _deliver(self, item: LineItem) -> bool:
        future = asyncio.run_coroutine_threadsafe(self._lines.put(item), self._loop)
        while not self._stopping.is_set():
            try:
                future.result(timeout=0.5)
                return True
            except TimeoutError:
                continue
            except Exception:  # loop closed or shutting down
                return False
        future.cancel()
        return False

    def _run(self) -> None:
        splitter = LineSplitter()
        while not self._stopping.is_set():
            try:
                chunk = os.read(self._fd, 65536)
            except OSError as exc:
                log.warning("stdin read failed: %s", exc)
                chunk = b""
            if not chunk:
                for item in splitter.finish():
                    self._deliver(item)
                self._deliver(EOF_MARK)
                return
            for item in splitter.feed(chunk):
                if not self._deliver(item):
                    return


class StdoutWriter:
    """Writes whole lines to fd `fd` from a thread, in the order they were queued.

    `write_line` never blocks. When the reader is gone (EPIPE) `on_broken` is
    called once from the writer thread and later lines are dropped, since
    nobody can read them.
    """

    BACKLOG_WARNING_BYTES = 8 * 1024 * 1024

    def __init__(self, fd: int, on_broken: Callable[[], None]) -> None:
        self._fd = fd
        self._on_broken = on_broken
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._backlog = 0
        self._lock = threading.Lock()
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="stdout-writer", daemon=True)
        self._thread.start()

    def write_line(self, data: bytes) -> None:
        with self._lock:
            self._backlog += len(data) + 1
            if self._backlog > self.BACKLOG_WARNING_BYTES and not self._warned:
                self._warned = True
                log.warning("stdout reader is slow: %d bytes waiting", self._backlog)
        self._queue.put(data + b"\n")

    def close(self, timeout: float) -> bool:
        """Write what is queued (up to `timeout` seconds); True when all was written."""
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        broken = False
        while True:
            item = self._queue.get()
            if item is None:
                return
            chunk = [item]
            # Coalesce what is already queued into one write syscall.
            while sum(map(len, chunk)) < 65536:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                chunk.append(more)
            data = b"".join(chunk)
            with self._lock:
                self._backlog -= len(data)
                if self._backlog < self.BACKLOG_WARNING_BYTES // 2:
                    self._warned = False
            if broken:
                continue
            try:
                view = memoryview(data)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
            except OSError as exc:  # EPIPE and friends: the host is gone
                broken = True
                log.info("stdout closed (%s): stopping", exc.strerror)
                self._on_broken()
