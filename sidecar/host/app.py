"""The sidecar process: stdio in and out, the peer, and a clean exit.

The process ends (exit 0, within 3 s) on stdin EOF, SIGTERM, SIGINT, a closed
stdout, or the death of its parent: a sidecar must never outlive its app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading

from sidecar.host.rpc import RpcServer
from sidecar.host.service import Service
from sidecar.host.stdio import EOF_MARK, LineItem, StdinReader, StdoutWriter
from sidecar.node.node import CHANNEL_MODULES, ROOM_MODULES, import_modules

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256
"""Requests handled at once; beyond that we stop reading stdin (backpressure)."""

DRAIN_S = 0.8
"""On exit, time left for requests already read (a person piping JSON wants answers)."""

LEAVE_S = 1.7
"""On exit, time left for leaving the network cleanly."""

FLUSH_S = 0.3
"""On exit, time left for stdout to take what is queued."""

PARENT_POLL_S = 0.25


def preload_network_stack() -> None:
    """Import what start_peer needs (aiohttp, zeroconf, aiortc without its media side: about
    a second) on a daemon thread once the process is serving, so the first
    answer does not wait for it and a later start_peer does not either. A
    daemon thread: an exit right after start never waits for it."""

    def load() -> None:
        try:  # in the order start_peer needs them
            import_modules(*ROOM_MODULES, *CHANNEL_MODULES)
        except Exception:  # start_peer will report it where it matters
            log.debug("preloading the network stack failed", exc_info=True)

    threading.Thread(target=load, name="preload", daemon=True).start()


async def watch_parent() -> str:
    """Returns when the parent process has gone (we were re-parented).

    Polling getppid works on Linux and macOS alike. PR_SET_PDEATHSIG is not
    used: it fires when the parent *thread* that spawned us exits, which in a
    Tokio-based Tauri app can happen while the app lives on.
    """
    original = os.getppid()
    if original == 1:  # started by init itself: nothing to watch
        await asyncio.Event().wait()
    while os.getppid() == original:  # noqa: ASYNC110 (no event tells of a re-parenting)
        await asyncio.sleep(PARENT_POLL_S)
    return "parent process exited"


def _protocol_stdout() -> int:
    """A private descriptor for protocol output; fd 1 then points at stderr.

    Whatever a library prints by mistake lands in the log, never in the
    protocol stream.
    """
    out = os.dup(1)
    if sys.platform == "win32":  # bytes as they are: no CRLF translation on the pipe
        import msvcrt

        msvcrt.setmode(out, os.O_BINARY)
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


async def serve(in_fd: int = 0, out_fd: int | None = None) -> int:
    loop = asyncio.get_running_loop()
    out = _protocol_stdout() if out_fd is None else out_fd
    stop = asyncio.Event()
    stop_reason: list[str] = []

    def request_stop(reason: str) -> None:
        if not stop_reason:
            stop_reason.append(reason)
            log.info("shutting down: %s", reason)
        stop.set()

    def stdout_broken() -> None:  # called from the writer thread
        loop.call_soon_threadsafe(request_stop, "stdout closed")

    writer = StdoutWriter(out, stdout_broken, loop)
    server: RpcServer
    service = Service(
        notify=lambda method, params, soon=False: server.notify(method, params, soon=soon),
        host=writer,
    )
    server = RpcServer(service, writer.write_line)

    for signum in (signal.SIGTERM, signal.SIGINT):
        name = signal.Signals(signum).name
        try:
            loop.add_signal_handler(signum, request_stop, name)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            signal.signal(signum, lambda *_, n=name: loop.call_soon_threadsafe(request_stop, n))

    in_flight: set[asyncio.Task[None]] = set()

    def finished(task: asyncio.Task[None]) -> None:
        in_flight.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:  # a bug of ours
            log.error("a request failed without an answer", exc_info=exc)
        if len(in_flight) < MAX_IN_FLIGHT and not stop.is_set():
            reader.resume()

    def take_line(item: LineItem) -> None:
        # On the loop's thread, in input order: tasks start in the same order,
        # so requests read in order are handled in order.
        if item is EOF_MARK:
            request_stop("stdin closed")
            return
        if stop.is_set():
            return
        task = loop.create_task(server.handle_line(item))
        in_flight.add(task)
        task.add_done_callback(finished)
        if len(in_flight) >= MAX_IN_FLIGHT:
            reader.pause()

    reader = StdinReader(in_fd, loop, take_line)

    async def parent_gone() -> None:
        request_stop(await watch_parent())

    reader.start()
    background = [asyncio.create_task(parent_gone())]
    log.info("sidecar ready", extra={"pid": os.getpid()})
    preload_network_stack()
    await stop.wait()

    reader.stop()
    for task in background:
        task.cancel()
    if in_flight:
        _, pending = await asyncio.wait(set(in_flight), timeout=DRAIN_S)
        for task in pending:
            task.cancel()
    try:
        await asyncio.wait_for(service.stop(), LEAVE_S)
    except Exception:
        log.exception("leaving the network did not finish cleanly")
    if not writer.close(FLUSH_S):
        log.warning("stdout did not take all output before exit")
    with contextlib.suppress(Exception):
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return 0
