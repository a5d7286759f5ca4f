"""Byte transport of the stdio protocol: lines in on fd 0, lines out on fd 1.

The inherited descriptors stay in blocking mode: asyncio's pipe transports
would switch them to O_NONBLOCK, which leaks into a terminal or a parent
sharing them. Yet the host's round trip is on the path of every cue, so
where the platform allows it the event loop does the I/O itself:

 * stdin: when it is a pipe or a socket (POSIX), the loop reads it once it is
   readable (a read of a readable pipe does not block); otherwise (Windows, a
   terminal, a file) a thread reads it. The thread costs ~0.2 ms a line in
   hand-offs, measured in bench/bench_channels.py.
 * stdout: a line of at most PIPE_BUF bytes is written by the loop when the
   pipe is writable and nothing is queued before it (such a write cannot
   block); anything else goes to a writer thread, so a slow host never
   stalls the loop.
 * A line may also be written `soon`: after the callbacks already scheduled
   on the loop. An answer to send_control_message is written that way, so
   aiortc's send (a task the request scheduled) reaches the wire before the
   write, which wakes the host and costs ~60 µs. Lines still leave in the
   order they were given.

`LineSplitter` is the sans-I/O part and is unit-tested on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import select
import stat
import sys
import threading
from collections import deque
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
"""Delivered after the last line of stdin."""

LineItem = bytes | Oversize | None
LineSink = Callable[[LineItem], None]
"""Takes each line, on the event loop's thread, in order."""


def _is_pipe_or_socket(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def loop_can_poll(fd: int) -> bool:
    """Whether the event loop can do this descriptor's I/O (see the module doc)."""
    return sys.platform != "win32" and _is_pipe_or_socket(fd)


class StdinReader:
    """Reads fd `fd` and hands each line to `sink` on the loop's thread.

    `pause` stops reading (the pipe then slows the host down: backpressure),
    `resume` goes on. At end of input the sink gets EOF_MARK, once.
    """

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop, sink: LineSink) -> None:
        self._fd = fd
        self._loop = loop
        self._sink = sink
        self._splitter = LineSplitter()
        self._on_loop = loop_can_poll(fd)
        self._reading = False
        self._paused = False
        self._ended = False
        self._unread: deque[LineItem] = deque()
        """Loop mode: lines read, not yet handed over because the sink paused us."""
        # Thread mode only: set while the thread may read.
        self._may_read = threading.Event()
        self._stopping = threading.Event()

    def start(self) -> None:
        if self._on_loop:
            try:
                self.resume()
                return
            except (OSError, ValueError, NotImplementedError) as exc:
                log.debug("stdin cannot be polled (%s): reading it on a thread", exc)
                self._on_loop = False
        self._may_read.set()
        threading.Thread(target=self._run_thread, name="stdin-reader", daemon=True).start()

    def pause(self) -> None:
        if self._on_loop:
            self._paused = True
            self._stop_polling()
        else:
            self._may_read.clear()

    def resume(self) -> None:
        if self._on_loop:
            self._paused = False
            self._hand_over()
            if not self._paused and not self._ended and not self._reading:
                self._loop.add_reader(self._fd, self._on_readable)
                self._reading = True
        else:
            self._may_read.set()

    def _stop_polling(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def stop(self) -> None:
        self._stopping.set()
        self._may_read.set()
        if self._on_loop:
            self._paused = True
            self._unread.clear()
            self._stop_polling()

    # -------------------------------------------------------- on the loop

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("stdin read failed: %s", exc)
            chunk = b""
        if chunk:
            self._unread.extend(self._splitter.feed(chunk))
        else:
            self._stop_polling()
            self._ended = True
            self._unread.extend([*self._splitter.finish(), EOF_MARK])
        self._hand_over()

    def _hand_over(self) -> None:
        """Lines to the sink until it pauses us (the rest wait for resume)."""
        while self._unread and not self._paused:
            self._sink(self._unread.popleft())

    # -------------------------------------------------------- on a thread

    def _run_thread(self) -> None:
        while not self._stopping.is_set():
            if not self._may_read.wait(0.5):
                continue
            try:
                chunk = os.read(self._fd, 65536)
            except OSError as exc:
                log.warning("stdin read failed: %s", exc)
                chunk = b""
            items: list[LineItem] = [*self._splitter.feed(chunk)]
            if not chunk:
                items += [*self._splitter.finish(), EOF_MARK]
            try:
                for item in items:
                    self._loop.call_soon_threadsafe(self._sink, item)
            except RuntimeError:  # the loop is closed: nobody to read for
                return
            if not chunk:
                return


class StdoutWriter:
    """Writes whole lines to fd `fd`, in the order they were given.

    `write_line` never blocks: short lines are written at once when the pipe
    has room (see the module doc), the rest by a thread. When the reader is
    gone (EPIPE) `on_broken` is called once and later lines are dropped,
    since nobody can read them.
    """

    BACKLOG_WARNING_BYTES = 8 * 1024 * 1024
    BUSY_BYTES = 1024 * 1024
    """Past this much output waiting for the host, the host counts as busy: the
    data channels stop acknowledging, so the senders wait (sidecar/net/link.py)."""
    CALM_BYTES = 256 * 1024
    """... until the backlog is back below this."""

    def __init__(
        self,
        fd: int,
        on_broken: Callable[[], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._fd = fd
        self._on_broken = on_broken
        self._loop = loop
        self._soon: list[bytes] = []
        """Lines written `soon` and not yet flushed (and any given after them)."""
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._backlog = 0
        """Bytes handed to the thread and not yet written (guarded by _lock)."""
        self._lock = threading.Lock()
        self._warned = False
        self._busy = False
        self._drained_listeners: list[Callable[[], None]] = []
        self._broken = False
        self._direct_limit = select.PIPE_BUF if loop_can_poll(fd) else 0
        self._thread = threading.Thread(target=self._run, name="stdout-writer", daemon=True)
        self._thread.start()

    def write_line(self, data: bytes, *, soon: bool = False) -> None:
        """Write `data` and a newline; `soon`: once the loop's ready callbacks ran."""
        if self._broken:
            return
        if (soon or self._soon) and self._loop is not None:
            if not self._soon:
                self._loop.call_soon(self._flush_soon)
            self._soon.append(data)
            return
        self._write(data + b"\n")

    def _flush_soon(self) -> None:
        lines, self._soon = self._soon, []
        if not self._broken:
            self._write(b"".join(line + b"\n" for line in lines))

    def _write(self, lines: bytes) -> None:
        if len(lines) <= self._direct_limit and self._backlog == 0 and self._writable():
            self._write_now(lines)
            return
        self._enqueue(lines)

    @property
    def busy(self) -> bool:
        """The host is not keeping up with what we write (see BUSY_BYTES)."""
        if not self._busy:
            waiting = self._backlog + sum(map(len, self._soon))
            self._busy = waiting > self.BUSY_BYTES
        return self._busy

    def on_drained(self, listener: Callable[[], None]) -> None:
        """Call `listener` on the loop when a busy host has caught up."""
        self._drained_listeners.append(listener)

    def _caught_up(self) -> None:
        for listener in self._drained_listeners:
            try:
                listener()
            except Exception:
                log.exception("stdout: a drained listener failed")

    def close(self, timeout: float) -> bool:
        """Write what is queued (up to `timeout` seconds); True when all was written."""
        if self._soon:
            self._flush_soon()
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _writable(self) -> bool:
        try:
            _, ready, _ = select.select([], [self._fd], [], 0)
        except (OSError, ValueError):  # e.g. a descriptor beyond FD_SETSIZE
            self._direct_limit = 0
            return False
        return bool(ready)

    def _write_now(self, line: bytes) -> None:
        try:
            written = os.write(self._fd, line)
        except OSError as exc:
            self._broke(exc)
            return
        if written < len(line):  # interrupted: the thread writes the rest, in order
            self._enqueue(line[written:])

    def _broke(self, exc: OSError) -> None:
        if not self._broken:
            self._broken = True
            log.info("stdout closed (%s): stopping", exc.strerror)
            self._on_broken()

    def _enqueue(self, line: bytes) -> None:
        with self._lock:
            self._backlog += len(line)
            if self._backlog > self.BACKLOG_WARNING_BYTES and not self._warned:
                self._warned = True
                log.warning("stdout reader is slow: %d bytes waiting", self._backlog)
        self._queue.put(line)

    def _run(self) -> None:
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
            if not self._broken:
                try:
                    view = memoryview(data)
                    while view:
                        written = os.write(self._fd, view)
                        view = view[written:]
                except OSError as exc:  # EPIPE and friends: the host is gone
                    self._broke(exc)
            # Only now: a direct write must not overtake what is being written.
            with self._lock:
                self._backlog -= len(data)
                calm = self._busy and self._backlog < self.CALM_BYTES
                if calm:
                    self._busy = False
            if calm and self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    self._loop.call_soon_threadsafe(self._caught_up)
                if self._backlog < self.BACKLOG_WARNING_BYTES // 2:
                    self._warned = False
